import LumenAPI
import RPCSupport
import SharedRules
import Synchronization

/// The ledger's group commit as the gateway's `HoldMeter`, for a gateway in the same process:
/// each operation goes straight into the batch being gathered, with the rules and the
/// durability of the `Meter` stream (which stays for a gateway elsewhere) and without its
/// protobuf encoding, streams and hops. Trusted wiring: no caller is checked.
struct LocalHoldMeter: HoldMeter {
    let ledger: LedgerService

    var isConnected: Bool { true }

    func place(_ request: Lumen_Ledger_V1_ReserveRequest) async throws -> Reservation {
        let operation = try await ledger.reserveOperation(request)
        let durability = HoldDurability()
        // Decided here when the book keeps what the decision reads; else in the next batch.
        let resolve: @Sendable (Result<Metering.Outcome, ServiceError>) -> Void = { durability.resolve($0.map { _ in () }) }
        if let decided = try ledger.decideAtOnce(operation, completion: resolve) {
            guard case .reserved(_, let rate, let capture) = decided else { return Reservation(durability: durability) }
            return Reservation(rate: rate, capture: capture, durability: durability)
        }
        let answered = Mutex(false)
        let outcome = await withCheckedContinuation { (continuation: CheckedContinuation<Result<Metering.Outcome, ServiceError>, Never>) in
            @Sendable func answer(_ result: Result<Metering.Outcome, ServiceError>) {
                if answered.withLock({ answered in defer { answered = true }; return !answered }) { continuation.resume(returning: result) }
            }
            ledger.commit(operation, decided: { answer(.success($0)) }) { result in
                answer(result)
                durability.resolve(result.map { _ in () })
            }
        }
        guard case .reserved(_, let rate, let capture) = try outcome.get() else { return Reservation(durability: durability) }
        return Reservation(rate: rate, capture: capture, durability: durability)
    }

    func settle(
        _ request: Lumen_Ledger_V1_SettleRequest, completion: @escaping @Sendable (Result<Void, ServiceError>) -> Void
    ) {
        ledger.commit(.settle(request)) { completion($0.map { _ in () }) }
    }

    func release(_ request: Lumen_Ledger_V1_ReleaseRequest) async throws {
        _ = try await ledger.meter(.release(request))
    }
}

extension LedgerService {
    /// This ledger as the hold meter of a gateway in the same process.
    public var localMeter: any HoldMeter { LocalHoldMeter(ledger: self) }
}
