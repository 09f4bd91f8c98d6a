import LumenAPI
import SharedRules
import Synchronization

/// Where the gateway places, settles and releases a request's hold on the ledger: the
/// ledger's `Meter` stream when the ledger runs elsewhere (the gateway's `LedgerMeter`), or
/// the ledger's group commit directly when it runs in the same process
/// (`LedgerService.localMeter`) — the same rules and the same durability, without the
/// protobuf encoding, the streams and the hops in between.
///
/// A hold is placed in two steps: `place` returns as soon as the ledger has decided it (in its
/// book, its batch not yet committed), so that the upstream call starts at once, and its
/// `Reservation.durability` tells when it is durable — the gateway sends its caller nothing
/// before (README, "Durability"). `reserve` does both. A release returns once durable; a
/// refusal (`insufficient_quota`, …) is a `ServiceError`. A settlement is queued and the caller goes
/// on (it answers its own caller meanwhile): it becomes durable with the next batch, and
/// `completion` hears how it went. Should the process die in between, the durable hold is
/// settled at its estimate by the ledger's reconciler.
public protocol HoldMeter: Sendable {
    /// Whether operations can be sent now (the stream is open; always true in-process).
    var isConnected: Bool { get }
    /// Places a hold and returns once it is decided; for a key with per-minute limits, with its
    /// minute with the request counted (a refusal by them carries it in
    /// `ServiceError.rateWindow`), whether to capture the request's prompt and answer, and its
    /// `durability`, resolved once the hold is durable (or has failed to become so).
    func place(_ request: Lumen_Ledger_V1_ReserveRequest) async throws -> Reservation
    /// Queues the settlement of a hold with the actual usage; `completion` is called once it
    /// is durable or has failed, on whatever thread that happened.
    func settle(
        _ request: Lumen_Ledger_V1_SettleRequest, completion: @escaping @Sendable (Result<Void, ServiceError>) -> Void)
    /// Drops a hold; nothing was produced. The request's line stays, FAILED, with how it ended.
    func release(_ request: Lumen_Ledger_V1_ReleaseRequest) async throws
}

/// What a placed hold tells the gateway besides that it is placed.
public struct Reservation: Sendable {
    /// The key's minute, for a key with per-minute limits.
    public var rate: RateWindow?
    /// How to capture the request, when it is captured.
    public var capture: Lumen_Ledger_V1_CaptureSettings?
    /// When the hold is durable.
    public var durability: HoldDurability

    public init(
        rate: RateWindow? = nil, capture: Lumen_Ledger_V1_CaptureSettings? = nil, durability: HoldDurability = .durable
    ) {
        self.rate = rate
        self.capture = capture
        self.durability = durability
    }
}

/// Whether a decided hold has become durable: resolved once by the ledger's answer, awaited by
/// any number of callers (each gets the same result, at once if it is in).
public final class HoldDurability: Sendable {
    private enum State {
        case pending([CheckedContinuation<Result<Void, ServiceError>, Never>])
        case resolved(Result<Void, ServiceError>)
    }

    private let state: Mutex<State>

    /// A hold not yet durable.
    public init() { state = Mutex(.pending([])) }

    private init(_ result: Result<Void, ServiceError>) { state = Mutex(.resolved(result)) }

    /// A hold already durable (a ledger that answers once).
    public static let durable = HoldDurability(.success(()))

    /// Records the ledger's answer and wakes whoever waits; a second call changes nothing.
    public func resolve(_ result: Result<Void, ServiceError>) {
        let waiting = state.withLock { state -> [CheckedContinuation<Result<Void, ServiceError>, Never>] in
            guard case .pending(let waiting) = state else { return [] }
            state = .resolved(result)
            return waiting
        }
        for continuation in waiting { continuation.resume(returning: result) }
    }

    /// Returns once the hold is durable, or with why it is not (then there is no hold).
    public func wait() async -> Result<Void, ServiceError> {
        if case .resolved(let result) = state.withLock({ $0 }) { return result }
        return await withCheckedContinuation { continuation in
            let result = state.withLock { state -> Result<Void, ServiceError>? in
                switch state {
                case .resolved(let result): return result
                case .pending(var waiting):
                    waiting.append(continuation)
                    state = .pending(waiting)
                    return nil
                }
            }
            if let result { continuation.resume(returning: result) }
        }
    }
}

extension HoldMeter {
    /// Places a hold and returns once it is durable (`place`, then its durability).
    @discardableResult
    public func reserve(_ request: Lumen_Ledger_V1_ReserveRequest) async throws -> Reservation {
        let reservation = try await place(request)
        try await reservation.durability.wait().get()
        return reservation
    }

    /// Settles a hold and returns once the settlement is durable.
    public func settle(_ request: Lumen_Ledger_V1_SettleRequest) async throws {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            settle(request) { continuation.resume(with: $0.mapError { $0 }) }
        }
    }
}
