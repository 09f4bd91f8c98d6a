import Foundation
import GRDB
import GRPCCore
import Ledger
import LumenAPI
import LumenTesting
import Storage
import Testing

/// Until v16 an open hold was a PENDING usage line; v16 moves it into `usage_holds`.
@Suite("Open holds: moved into a table of their own on upgrade")
struct OpenHoldsMigrationTests {
    @Test("A hold kept as a pending line before v16 still counts, is settled once after it, and the ledger checks clean")
    func upgrade() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("lumen-ledger-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try await TestServices.run(location: .directory(directory)) { services in
            _ = try await services.ledger.reserve(
                MeteringTests.reserve("req_open", estimate: 700, cap: 1_000), metadata: services.asInternal)
            _ = try await services.ledger.reserve(
                MeteringTests.reserve("req_done", estimate: 200, cap: 1_000), metadata: services.asInternal)
            _ = try await services.ledger.settle(MeteringTests.settle("req_done", cost: 150), metadata: services.asInternal)
        }
        // The tables as v15 left them: the open hold a pending line, found by its partial index.
        do {
            let queue = try DatabaseQueue(path: directory + "/ledger.sqlite")
            try await queue.write { db in
                try db.execute(
                    sql: """
                        INSERT INTO usage_lines (request_id, created_at, organization_id, key_id, owner_type, owner_id, logical_model,
                            model_vendor, scene, access_channel, cost_micros, status, origin)
                        SELECT request_id, created_at, organization_id, key_id, owner_type, owner_id, logical_model, model_vendor, scene,
                            access_channel, estimate_micros, 1, origin FROM usage_holds;
                        DROP TABLE usage_holds;
                        CREATE INDEX usage_pending ON usage_lines(created_at) WHERE status = 1;
                        DELETE FROM grdb_migrations WHERE identifier LIKE 'v16:%';
                        """)
            }
            try queue.close()
        }
        try await TestServices.run(location: .directory(directory)) { services in
            var pool = try await MeteringTests.keyPool(services)
            #expect(pool.reservedMicros == 700 && pool.spentMicros == 150)
            // Still counted against the cap, still there to settle — once.
            await #expect(throws: RPCError.self) {
                _ = try await services.ledger.reserve(
                    MeteringTests.reserve("req_more", estimate: 400, cap: 1_000), metadata: services.asInternal)
            }
            let line = try await services.ledger.settle(MeteringTests.settle("req_open", cost: 300), metadata: services.asInternal).line
            #expect(line.status == .settled && line.costMicros == 300 && line.logicalModel == "gpt-test")
            let again = try await services.ledger.settle(MeteringTests.settle("req_open", cost: 999), metadata: services.asInternal).line
            #expect(again.costMicros == 300 && again.billingTransactionID == line.billingTransactionID)
            pool = try await MeteringTests.keyPool(services)
            #expect(pool.reservedMicros == 0 && pool.spentMicros == 450)
        }
        let report = try await LedgerCheck.run(location: .directory(directory))
        #expect(report.ok && report.openHolds == 0)
        let statuses = try await DatabaseQueue(path: directory + "/ledger.sqlite").read { db in
            try Int.fetchAll(db, sql: "SELECT status FROM usage_lines ORDER BY request_id")
        }
        #expect(statuses == [2, 2])
    }
}
