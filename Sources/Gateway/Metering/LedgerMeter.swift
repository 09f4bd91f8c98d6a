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
/// A gateway in the ledger's own process uses the ledger directly (`GatewayServices.meter`).
///
/// A reserve asks to be answered twice (`answer_when_decided`): `place` returns on the first
/// answer (the hold decided) and its durability is resolved by the second (durable).
///
/// The stream is reopened with a backoff when it fails; operations in flight then fail with
/// 503 `ledger_unavailable`, a decided hold's durability too (a hold whose settle was lost
/// expires and is settled at its estimate by the ledger).
public final class LedgerMeter: HoldMeter, Service, Sendable {
    private struct State {
        var outbox: AsyncStream<Lumen_Ledger_V1_MeterRequest>.Continuation?
        var generation = 0
        /// Who waits for each answer, by request id.
        var waiting: [String: Waiter] = [:]
    }

    private struct Waiter {
        /// Hears the first answer (or the stream's failure before it).
        let answered: @Sendable (Result<Lumen_Ledger_V1_MeterResponse, ServiceError>) -> Void
        /// A reserve's durability: resolved by its last answer.
        let durability: HoldDurability?
        /// Whether the first of two answers came (the hold decided).
        var decided = false
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

    /// Places a hold, returning once decided; `insufficient_quota` and other refusals come back
    /// as `ServiceError`.
    public func place(_ request: Lumen_Ledger_V1_ReserveRequest) async throws -> Reservation {
        let durability = HoldDurability()
        let message = Lumen_Ledger_V1_MeterRequest.with {
            $0.reserve = request
            $0.answerWhenDecided = true
        }
        let answer = try await withCheckedThrowingContinuation { continuation in
            send(message, id: request.requestID, durability: durability) { continuation.resume(with: $0.mapError { $0 }) }
        }
        return Reservation(
            rate: answer.hasRateLimit ? RateWindow(answer.rateLimit) : nil, capture: answer.hasCapture ? answer.capture : nil,
            durability: durability)
    }

    /// Queues the settlement of a hold; `completion` hears the ledger's answer.
    public func settle(
        _ request: Lumen_Ledger_V1_SettleRequest, completion: @escaping @Sendable (Result<Void, ServiceError>) -> Void
    ) {
        send(.with { $0.settle = request }, id: request.requestID) { completion($0.map { _ in () }) }
    }

    /// Drops a hold; nothing was produced.
    public func release(_ request: Lumen_Ledger_V1_ReleaseRequest) async throws {
        _ = try await send(.with { $0.release = request }, id: request.requestID)
    }

    private func send(_ message: Lumen_Ledger_V1_MeterRequest, id: String) async throws -> Lumen_Ledger_V1_MeterResponse {
        try await withCheckedThrowingContinuation { continuation in
            send(message, id: id) { continuation.resume(with: $0.mapError { $0 }) }
        }
    }

    /// Sends `message` and hands its (first) answer — or the refusal in it, or the stream's
    /// failure — to `completion`; a reserve's last answer resolves `durability`.
    private func send(
        _ message: Lumen_Ledger_V1_MeterRequest, id: String, durability: HoldDurability? = nil,
        completion: @escaping @Sendable (Result<Lumen_Ledger_V1_MeterResponse, ServiceError>) -> Void
    ) {
        let waiter = Waiter(answered: { completion($0.flatMap(Self.outcome)) }, durability: durability)
        let refusal = state.withLock { state -> ServiceError? in
            guard let outbox = state.outbox else { return Self.unavailable }
            guard state.waiting[id] == nil else {
                return ServiceError(.alreadyExists, "duplicate_request_id", "request \(id) already has an operation in flight")
            }
            state.waiting[id] = waiter
            outbox.yield(message)
            return nil
        }
        if let refusal {
            completion(.failure(refusal))
            durability?.resolve(.failure(refusal))
        }
    }

    /// An answer, or the refusal it carries.
    private static func outcome(_ answer: Lumen_Ledger_V1_MeterResponse) -> Result<Lumen_Ledger_V1_MeterResponse, ServiceError> {
        guard answer.statusCode != 0 else { return .success(answer) }
        var error = ServiceError(
            Status.Code(rawValue: Int(answer.statusCode)).flatMap { RPCError.Code($0) } ?? .unknown, answer.reason,
            answer.message, retryAfter: answer.retryAfterSeconds > 0 ? answer.retryAfterSeconds : nil)
        if answer.hasRateLimit { error.rateWindow = RateWindow(answer.rateLimit) }
        return .failure(error)
    }

    static let unavailable = ServiceError(
        .unavailable, "ledger_unavailable", "the ledger cannot be reached right now; try again shortly")

    private func deliver(_ answer: Lumen_Ledger_V1_MeterResponse) {
        // The waiter as it was, and whether this is its last answer.
        let (waiter, last) = state.withLock { state -> (Waiter?, Bool) in
            if answer.decided, let waiter = state.waiting[answer.requestID], !waiter.decided {
                state.waiting[answer.requestID]?.decided = true
                return (waiter, false)
            }
            return (state.waiting.removeValue(forKey: answer.requestID), true)
        }
        guard let waiter else { return }
        if !waiter.decided { waiter.answered(.success(answer)) }
        if last { waiter.durability?.resolve(Self.outcome(answer).map { _ in () }) }
    }

    private func disconnect(generation: Int) {
        let waiters = state.withLock { state -> [Waiter] in
            guard state.generation == generation else { return [] }
            state.outbox?.finish()
            state.outbox = nil
            defer { state.waiting = [:] }
            return Array(state.waiting.values)
        }
        for waiter in waiters {
            if !waiter.decided { waiter.answered(.failure(Self.unavailable)) }
            waiter.durability?.resolve(.failure(Self.unavailable))
        }
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
