import Foundation
import LumenAPI
import LumenTesting
import RPCSupport
import SharedRules
import Storage
import Testing

@testable import Ledger

/// Holds decided on the caller's thread (`Metering.decide`): as exact as those a batch decides,
/// and the tables never count a hold whose line is not written.
@Suite("Ledger: holds decided on the caller's thread")
struct DecidedHoldsTests {
    /// The `.reserve` operation of `request`, as the in-process meter builds it.
    static func prices(_ ledger: LedgerService, _ request: Lumen_Ledger_V1_ReserveRequest) async throws -> Lumen_Registry_V1_Prices {
        guard case .reserve(_, let prices, _) = try await ledger.reserveOperation(request) else {
            Issue.record("not a reserve")
            return .init()
        }
        return prices
    }

    /// A completion that resolves `durability`.
    static func resolving(_ durability: HoldDurability) -> @Sendable (Result<Metering.Outcome, ServiceError>) -> Void {
        { result in durability.resolve(result.map { _ in () }) }
    }

    /// Decides `request` on the book without queueing its write (as if its batch had not come yet).
    static func decideOnly(_ ledger: LedgerService, _ request: Lumen_Ledger_V1_ReserveRequest) async throws -> Book.Decision? {
        let prices = try await prices(ledger, request)
        return try ledger.book.lock.withLock {
            try Metering.decide(ledger.book, request, prices: prices, now: ledger.clock.nowMillis)
        }
    }

    @Test("Once the book keeps the pools, holds are decided at once; 200 at once against room for 100 place exactly 100", arguments: TestStore.available)
    func concurrentDecisions(store: TestStore) async throws {
        try await TestServices.run(store: store) { services in
            let ledger = services.ledgerService
            let first = MeteringTests.reserve("req_first", estimate: 10, cap: 1_010)
            // A cold book (no holds read, no pool kept): the batch decides.
            #expect(try ledger.decideAtOnce(try await ledger.reserveOperation(first), completion: { _ in }) == nil)
            try await ledger.localMeter.reserve(first)
            // Warm: decided here, its write queued.
            let second = MeteringTests.reserve("req_second", estimate: 10, cap: 1_010)
            let durable = HoldDurability()
            let outcome = try ledger.decideAtOnce(try await ledger.reserveOperation(second), completion: Self.resolving(durable))
            guard case .reserved = outcome else {
                Issue.record("not decided at once: \(String(describing: outcome))")
                return
            }
            try await durable.wait().get()

            let placed = await withTaskGroup(of: Bool.self) { group in
                for index in 0..<200 {
                    group.addTask {
                        (try? await ledger.localMeter.reserve(MeteringTests.reserve("req_\(index)", estimate: 10, cap: 1_010))) != nil
                    }
                }
                return await group.reduce(0) { $0 + ($1 ? 1 : 0) }
            }
            #expect(placed == 99)
            let pool = try await MeteringTests.keyPool(services)
            #expect(pool.reservedMicros == 1_010)
            let report = try await LedgerService.check(ledger.store)
            #expect(report.ok, "\(report)")
        }
    }

    @Test("A batch written while a hold is decided but not written leaves it out of the tables' pools", arguments: TestStore.available)
    func undeliveredHoldsStayOutOfTheTables(store: TestStore) async throws {
        try await TestServices.run(store: store) { services in
            let ledger = services.ledgerService
            try await ledger.localMeter.reserve(MeteringTests.reserve("req_a", estimate: 300, cap: 1_000))
            let request = MeteringTests.reserve("req_b", estimate: 600, cap: 1_000)
            let decision = try #require(try await Self.decideOnly(ledger, request))
            // The book counts it: a third does not fit beside it.
            await #expect(throws: ServiceError.self) {
                try await ledger.localMeter.reserve(MeteringTests.reserve("req_c", estimate: 200, cap: 1_000))
            }
            // A batch that writes the pool (req_a settled) before the decision's line is written.
            try await ledger.localMeter.settle(MeteringTests.settle("req_a", cost: 100))
            var report = try await LedgerService.check(ledger.store)
            #expect(report.ok, "the tables' pool counts only written holds: \(report)")
            _ = try await ledger.meter(.decided(request, decision, capture: nil))
            report = try await LedgerService.check(ledger.store)
            #expect(report.ok, "\(report)")
            let pool = try await MeteringTests.keyPool(services)
            #expect(pool.reservedMicros == 600 && pool.spentMicros == 100)
        }
    }

    @Test("A hold decided before a batch rolled back is checked again when written; none is decided at once until then", arguments: TestStore.available)
    func staleDecisionsAreCheckedAgain(store: TestStore) async throws {
        try await TestServices.run(store: store) { services in
            let ledger = services.ledgerService
            try await ledger.localMeter.reserve(MeteringTests.reserve("req_a", estimate: 300, cap: 1_000))
            let fits = MeteringTests.reserve("req_fits", estimate: 100, cap: 1_000)
            let late = MeteringTests.reserve("req_late", estimate: 600, cap: 1_000)
            let fitsDecision = try #require(try await Self.decideOnly(ledger, fits))
            let lateDecision = try #require(try await Self.decideOnly(ledger, late))
            // What a batch that rolls back does (FailedBatchTests fails real ones).
            ledger.book.lock.withLock { ledger.book.reset() }
            // Two decisions not written yet: the pools read again do not count them, so the
            // batches decide until they have come.
            let other = MeteringTests.reserve("req_other", estimate: 300, cap: 1_000)
            #expect(try ledger.decideAtOnce(try await ledger.reserveOperation(other), completion: { _ in }) == nil)
            try await ledger.localMeter.reserve(other)
            // Checked again: 300 + 300 + 100 fits, then 600 more does not.
            _ = try await ledger.meter(.decided(fits, fitsDecision, capture: nil))
            await #expect {
                _ = try await ledger.meter(.decided(late, lateDecision, capture: nil))
            } throws: { error in
                (error as? ServiceError)?.code == "insufficient_quota"
            }
            let pool = try await MeteringTests.keyPool(services)
            #expect(pool.reservedMicros == 700)
            let report = try await LedgerService.check(ledger.store)
            #expect(report.ok, "\(report)")
            // Both have come: holds are decided at once again.
            let next = MeteringTests.reserve("req_next", estimate: 10, cap: 1_000)
            let durable = HoldDurability()
            #expect(try ledger.decideAtOnce(try await ledger.reserveOperation(next), completion: Self.resolving(durable)) != nil)
            try await durable.wait().get()
        }
    }
}
