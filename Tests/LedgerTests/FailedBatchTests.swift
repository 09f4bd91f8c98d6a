import Foundation
import LumenAPI
import LumenTesting
import RPCSupport
import Storage
import Testing

@testable import Ledger

/// A batch that fails to commit while others are queued behind it — on PostgreSQL the next batch
/// is already applied to the book while it commits — takes its own operations with it (and, on
/// PostgreSQL, the batch applied after it); the book is read again from the tables, so every
/// hold that was answered is in the pool and every one that failed is nowhere.
@Suite("Ledger: a failed batch among overlapping ones")
struct FailedBatchTests {
    @Test("Holds around batches that fail to commit: the pool holds exactly the holds that were answered", arguments: TestStore.available)
    func failedBatchAmongOthers(store: TestStore) async throws {
        try await TestServices.run(store: store) { services in
            let ledger = services.ledgerService
            // A write no database can run: SQLite refuses it in its batch, PostgreSQL at the commit
            // of its batch (the writes go out then), failing the whole batch.
            let broken = Metering.Operation.write(
                [AlertRules.Write(statement: .insert(into: "no_such_table", [.text("id")]), rows: [[.text("x")]])], audit: nil)
            let answered = await withTaskGroup(of: String?.self) { group in
                for index in 0..<80 {
                    group.addTask {
                        if index % 25 == 10 {
                            _ = try? await ledger.meter(broken)
                            return nil
                        }
                        let request = MeteringTests.reserve("req_\(index)", estimate: 10, cap: 100_000)
                        return (try? await ledger.localMeter.reserve(request)) != nil ? request.requestID : nil
                    }
                }
                var placed: [String] = []
                for await requestID in group { if let requestID { placed.append(requestID) } }
                return placed
            }
            #expect(answered.count >= 40, "most holds were placed: \(answered.count)")
            // One more after the failures: the book reads the tables again and goes on.
            _ = try await ledger.localMeter.reserve(MeteringTests.reserve("req_after", estimate: 10, cap: 100_000))
            let pool = try await MeteringTests.keyPool(services)
            #expect(pool.reservedMicros == Int64(answered.count + 1) * 10)
            let lines = try await services.ledger.listUsage(
                .with {
                    $0.filter = .with { $0.organizationID = "org_1"; $0.keyID = "key_1" }
                    $0.page = .with { $0.limit = 100 }
                }, metadata: services.asInternal)
            #expect(Set(lines.lines.map(\.requestID)) == Set(answered + ["req_after"]))
            let report = try await LedgerService.check(ledger.store)
            #expect(report.ok, "\(report)")
        }
    }
}
