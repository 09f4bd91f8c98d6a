import GRPCCore
import Logging
import LumenAPI
import RPCSupport
import SharedRules
import ServiceLifecycle
import Synchronization

/// The gateway's end of the ledger's `Meter` stream: one long-lived bidirectional stream over
/// which every reserve, settle and release travels, many in flight at once, each answered by
/// request id. No unary RPC per request (DESIGN.md, "Hot path").
///
/// The stream is reopened with a backoff when it fails; operations in flight then fail with
/// 503 `ledger_unavailable` (a hold whose settle was lost expires and is settled at its
/// estimate by the ledger).
public final class LedgerMeter: Service, Sendable {
    private struct State {
        var outbox: AsyncStream<Lumen_Ledger_V1_MeterRequest>.Continuation?
        var generation = 0
        var waiting: [String: CheckedContinuation<Lumen_Ledger_V1_MeterResponse, any Error>] = [:]
    }

    private let state = Mutex(State())
    private let ledger: any Lumen_Ledger_V1_LedgerService.ClientProtocol
    private let internalToken: String
    private let logger: Logger

    public init(ledger: any Lumen_Ledger_V1_LedgerService.ClientProtocol, internalToken: String, logger: Logger) {
        self.ledger = ledger
        self.internalToken = internalToken
        self.logger = logger
    }

    /// Whether the stream is open (operations can be sent).
    public var isConnected: Bool { state.withLock { $0.outbox != nil } }

    /// Places a hold; `insufficient_quota` and other refusals come back as `ServiceError`.
    public func reserve(_ request: Lumen_Ledger_V1_ReserveRequest) async throws {
        _ = try await send(.with { $0.reserve = request }, id: request.requestID)
    }

    /// Settles a hold with the actual usage.
    public func settle(_ request: Lumen_Ledger_V1_SettleRequest) async throws {
        _ = try await send(.with { $0.settle = request }, id: request.requestID)
    }

    /// Drops a hold; nothing was produced.
    public func release(requestID: String) async throws {
        _ = try await send(.with { $0.release = .with { $0.requestID = requestID } }, id: requestID)
    }

    private func send(_ message: Lumen_Ledger_V1_MeterRequest, id: String) async throws -> Lumen_Ledger_V1_MeterResponse {
        let answer = try await withCheckedThrowingContinuation { continuation in
            let refusal = state.withLock { state -> ServiceError? in
                guard let outbox = state.outbox else { return Self.unavailable }
                guard state.waiting[id] == nil else {
                    return ServiceError(.alreadyExists, "duplicate_request_id", "request \(id) already has an operation in flight")
                }
                state.waiting[id] = continuation
                outbox.yield(message)
                return nil
            }
            if let refusal { continuation.resume(throwing: refusal) }
        }
        guard answer.statusCode == 0 else {
            throw ServiceError(
                Status.Code(rawValue: Int(answer.statusCode)).flatMap { RPCError.Code($0) } ?? .unknown, answer.reason, answer.message)
        }
        return answer
    }

    static let unavailable = ServiceError(
        .unavailable, "ledger_unavailable", "the ledger cannot be reached right now; try again shortly")

    private func deliver(_ answer: Lumen_Ledger_V1_MeterResponse) {
        let waiter = state.withLock { $0.waiting.removeValue(forKey: answer.requestID) }
        waiter?.resume(returning: answer)
    }

    private func disconnect(generation: Int) {
        let waiters = state.withLock { state -> [CheckedContinuation<Lumen_Ledger_V1_MeterResponse, any Error>] in
            guard state.generation == generation else { return [] }
            state.outbox?.finish()
            state.outbox = nil
            defer { state.waiting = [:] }
            return Array(state.waiting.values)
        }
        for waiter in waiters { waiter.resume(throwing: Self.unavailable) }
    }

    public func run() async throws {
        await WatchLoop.run("ledger meter", logger: logger, onDisconnect: {}) {
            let (requests, outbox) = AsyncStream.makeStream(of: Lumen_Ledger_V1_MeterRequest.self)
            let generation = self.state.withLock { state in
                state.generation += 1
                state.outbox = outbox
                return state.generation
            }
            defer { self.disconnect(generation: generation) }
            try await self.ledger.meter(
                request: StreamingClientRequest(metadata: .bearer(self.internalToken)) { writer in
                    for await request in requests { try await writer.write(request) }
                }
            ) { response in
                for try await answer in response.messages { self.deliver(answer) }
            }
        }
    }
}
