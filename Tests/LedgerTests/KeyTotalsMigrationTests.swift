import Foundation
import GRDB
@testable import Ledger
import RPCSupport
import SharedRules
import Storage
import Testing

/// A ledger written before key totals existed gets them from its records on upgrade.
@Suite("Key totals: backfilled on upgrade from the rollups and lines")
struct KeyTotalsMigrationTests {
    @Test("Migration v5 sums each key's settled lines and takes its latest line's time")
    func backfill() async throws {
        let queue = try DatabaseQueue()
        let migrator = LedgerStore.migrator
        try migrator.migrate(queue, upTo: "v4: grants, usage rollups, usage pages in index order")
        try await queue.write { db in
            // Two settled lines and one pending for key_a, one settled for key_b (org_2); lines are
            // written with their rollups, as v4's settling did.
            let lines: [(String, String, String, Int64, Int64, Int64, Int64, Int)] = [
                ("req_1", "org_1", "key_a", 1_000, 10, 20, 300, 2),
                ("req_2", "org_1", "key_a", 90_000_000, 5, 7, 120, 2),
                ("req_3", "org_1", "key_a", 95_000_000, 0, 0, 999, 1),
                ("req_4", "org_2", "key_b", 2_000, 1, 1, 42, 2),
            ]
            for (id, org, key, created, input, output, cost, status) in lines {
                try db.execute(
                    sql: """
                        INSERT INTO usage_lines (request_id, created_at, organization_id, key_id, owner_type, owner_id,
                            logical_model, model_vendor, scene, access_channel, input_tokens, output_tokens, cost_micros, status)
                        VALUES (?, ?, ?, ?, 1, ?, 'm', 'v', 1, 1, ?, ?, ?, ?)
                        """, arguments: [id, created, org, key, org, input, output, cost, status])
                guard status == 2 else { continue }
                for span in [Rollups.hour, Rollups.day] {
                    try db.execute(
                        sql: """
                            INSERT INTO usage_rollups VALUES (?, ?, ?, ?, 'm', 'v', 1, 1, 1, ?, 0, ?, ?)
                            ON CONFLICT DO UPDATE SET requests = requests + 1, input_tokens = input_tokens + excluded.input_tokens,
                                output_tokens = output_tokens + excluded.output_tokens, cost_micros = cost_micros + excluded.cost_micros
                            """, arguments: [org, key, span, created - created % span, input, output, cost])
                }
            }
        }
        try migrator.migrate(queue)
        let store = SQLiteStore(reading: queue)
        let totals = try await store.read { db in
            (
                try await KeyTotals.fetch(db, organizationID: "org_1", keyIDs: ["key_a", "key_b"]),
                try await KeyTotals.fetch(db, organizationID: "org_2", keyIDs: ["key_b"])
            )
        }
        let a = totals.0[0]
        #expect(a.requests == 2 && a.inputTokens == 15 && a.outputTokens == 27 && a.costMicros == 420)
        #expect(a.lastUsedAt.millis == 90_000_000)
        #expect(totals.0[1].requests == 0)  // key_b is org_2's
        #expect(totals.1[0].requests == 1 && totals.1[0].costMicros == 42)

        // Any id text is looked up as it is (quotes and backslashes too), repeats and order kept.
        let odd = try await store.read { db in
            try await KeyTotals.fetch(db, organizationID: "org_1", keyIDs: ["key_a", #"k"ey\"#, "", "key_a"])
        }
        #expect(odd.map(\.keyID) == ["key_a", #"k"ey\"#, "", "key_a"])
        #expect(odd.map(\.requests) == [2, 0, 0, 2])
        #expect(try await store.read { db in try await KeyTotals.fetch(db, organizationID: "org_1", keyIDs: []) }.isEmpty)
    }
}
