import LumenAPI
import SharedRules

/// Where the gateway places, settles and releases a request's hold on the ledger: the
/// ledger's `Meter` stream when the ledger runs elsewhere (the gateway's `LedgerMeter`), or
/// the ledger's group commit directly when it runs in the same process
/// (`LedgerService.localMeter`) — the same rules and the same durability, without the
/// protobuf encoding, the streams and the hops in between.
///
/// A reserve or a release returns once the transaction holding it is durable; a refusal
/// (`insufficient_quota`, …) is a `ServiceError`. A settlement is queued and the caller goes
/// on (it answers its own caller meanwhile): it becomes durable with the next batch, and
/// `completion` hears how it went. Should the process die in between, the durable hold is
/// settled at its estimate by the ledger's reconciler.
public protocol HoldMeter: Sendable {
    /// Whether operations can be sent now (the stream is open; always true in-process).
    var isConnected: Bool { get }
    /// Places a hold; for a key with per-minute limits, returns its minute with the request
    /// counted (a refusal by them carries it in `ServiceError.rateWindow`), and whether to
    /// capture the request's prompt and answer.
    @discardableResult
    func reserve(_ request: Lumen_Ledger_V1_ReserveRequest) async throws -> Reservation
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

    public init(rate: RateWindow? = nil, capture: Lumen_Ledger_V1_CaptureSettings? = nil) {
        self.rate = rate
        self.capture = capture
    }
}

extension HoldMeter {
    /// Settles a hold and returns once the settlement is durable.
    public func settle(_ request: Lumen_Ledger_V1_SettleRequest) async throws {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            settle(request) { continuation.resume(with: $0.mapError { $0 }) }
        }
    }
}
