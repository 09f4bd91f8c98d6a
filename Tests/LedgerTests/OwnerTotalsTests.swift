import Foundation
import GRDB
import GRPCCore
@testable import Ledger
import LumenAPI
import LumenTesting
import RPCSupport
import SharedRules
import Storage
import Testing

/// What each user and client used of each model, kept as lines settle and backfilled on
/// upgrade: always the sums of the lines behind it.
@Suite("Owner totals by model")
struct OwnerTotalsTests {
    static func reserve(
        _ id: String, key: String, owner: Lumen_Common_V1_PrincipalRef, model: String, origin: Lumen_Common_V1_UsageOrigin = .unspecified
    ) -> Lumen_Ledger_V1_ReserveRequest {
        .with {
            $0.origin = origin
            $0.requestID = id
            $0.organizationID = "org_1"
            $0.keyID = key
            $0.owner = owner
            $0.inputBoundTokens = 10_000  // at a micro-dollar a token (`TestServices.registerMeteredModels`)
            $0.logicalModel = model
            $0.modelVendor = "v"
            $0.scene = .chat
            $0.accessChannel = .platform
        }
    }

    @Test("GetOwnerUsage equals the sums of the owner's settled lines, by model, most used first", arguments: TestStore.available)
    func live(store: TestStore) async throws {
        try await TestServices.run(store: store) { services in
            let ledger = services.ledger
            let lumen = services.asInternal
            try await services.registerMeteredModels(["small", "large"])
            let ada = Lumen_Common_V1_PrincipalRef.user("usr_ada")
            let ci = Lumen_Common_V1_PrincipalRef.client("cli_ci")
            // (request, key, owner, model, input, output); req_6 stays pending. At a micro-dollar a
            // token, a request costs its tokens.
            let requests: [(String, String, Lumen_Common_V1_PrincipalRef, String, Int64, Int64)] = [
                ("req_1", "key_a", ada, "small", 10, 5), ("req_2", "key_a", ada, "large", 7, 3),
                ("req_3", "key_b", ada, "small", 1, 1), ("req_4", "key_c", ci, "small", 100, 50),
                ("req_5", "key_o", .with { $0.type = .organization; $0.id = "org_1" }, "small", 1, 1),
            ]
            for (id, key, owner, model, input, output) in requests {
                _ = try await ledger.reserve(Self.reserve(id, key: key, owner: owner, model: model), metadata: lumen)
                _ = try await ledger.settle(
                    .with {
                        $0.requestID = id
                        $0.inputTokens = input
                        $0.outputTokens = output
                    }, metadata: lumen)
            }
            _ = try await ledger.reserve(Self.reserve("req_6", key: "key_a", owner: ada, model: "small"), metadata: lumen)
            // One request of Ada's through the web chat.
            _ = try await ledger.reserve(Self.reserve("req_7", key: "key_w", owner: ada, model: "large", origin: .web), metadata: lumen)
            let web = try await ledger.settle(
                .with {
                    $0.requestID = "req_7"
                    $0.inputTokens = 2
                    $0.outputTokens = 3
                }, metadata: lumen
            ).line
            #expect(web.origin == .web)

            func usage(_ owner: Lumen_Common_V1_PrincipalRef) async throws -> [Lumen_Ledger_V1_ModelTotals] {
                try await ledger.getOwnerUsage(
                    .with {
                        $0.organizationID = "org_1"
                        $0.owner = owner
                    }, metadata: lumen
                ).models
            }
            let adaUsage = try await usage(ada)
            #expect(adaUsage.map(\.logicalModel) == ["small", "large"])
            #expect(adaUsage[0].requests == 2 && adaUsage[0].inputTokens == 11 && adaUsage[0].outputTokens == 6)
            #expect(adaUsage[0].costMicros == 17)
            #expect(adaUsage[1].requests == 2 && adaUsage[1].costMicros == 15)
            let origins = try await ledger.getOwnerUsage(
                .with {
                    $0.organizationID = "org_1"
                    $0.owner = ada
                }, metadata: lumen
            ).origins
            #expect(origins.map(\.origin) == [.api, .web])
            #expect(origins[0].requests == 3 && origins[0].costMicros == 27)
            #expect(origins[1].requests == 1 && origins[1].costMicros == 5 && origins[1].outputTokens == 3)
            let ciUsage = try await usage(ci)
            #expect(ciUsage.count == 1 && ciUsage[0].requests == 1 && ciUsage[0].costMicros == 150)
            #expect(try await usage(.user("usr_nobody")).isEmpty)
            await #expect(throws: RPCError.self) {
                _ = try await usage(.with { $0.type = .organization })
            }
        }
    }

    @Test("Migrations v6 and v7 fill the tables from the day rollups, each key's owner read from its lines")
    func backfill() async throws {
        let queue = try DatabaseQueue()
        let migrator = LedgerStore.migrator
        try migrator.migrate(queue, upTo: "v5: key totals")
        try await queue.write { db in
            // (request, key, owner type, owner id, model, created, input, output, cost)
            let lines: [(String, String, Int, String, String, Int64, Int64, Int64, Int64)] = [
                ("req_1", "key_a", 2, "usr_ada", "small", 1_000, 10, 20, 300),
                ("req_2", "key_a", 2, "usr_ada", "small", 90_000_000, 5, 7, 120),
                ("req_3", "key_b", 3, "cli_ci", "large", 2_000, 1, 1, 42),
                ("req_4", "key_o", 1, "org_1", "small", 3_000, 1, 1, 1),
            ]
            for (id, key, ownerType, ownerID, model, created, input, output, cost) in lines {
                try db.execute(
                    sql: """
                        INSERT INTO usage_lines (request_id, created_at, organization_id, key_id, owner_type, owner_id,
                            logical_model, model_vendor, scene, access_channel, input_tokens, output_tokens, cost_micros, status)
                        VALUES (?, ?, 'org_1', ?, ?, ?, ?, 'v', 1, 1, ?, ?, ?, 2)
                        """, arguments: [id, created, key, ownerType, ownerID, model, input, output, cost])
                for span in [Rollups.hour, Rollups.day] {
                    try db.execute(
                        sql: """
                            INSERT INTO usage_rollups VALUES ('org_1', ?, ?, ?, ?, 'v', 1, 1, 1, ?, 0, ?, ?)
                            ON CONFLICT DO UPDATE SET requests = requests + 1, input_tokens = input_tokens + excluded.input_tokens,
                                output_tokens = output_tokens + excluded.output_tokens, cost_micros = cost_micros + excluded.cost_micros
                            """, arguments: [key, span, created - created % span, model, input, output, cost])
                }
            }
        }
        try migrator.migrate(queue)
        let (ada, ci, organization, adaOrigins) = try await SQLiteStore(reading: queue).read { db in
            (
                try await OwnerTotals.fetch(db, organizationID: "org_1", owner: .user("usr_ada")),
                try await OwnerTotals.fetch(db, organizationID: "org_1", owner: .client("cli_ci")),
                try await OwnerTotals.fetch(db, organizationID: "org_1", owner: .with { $0.type = .organization; $0.id = "org_1" }),
                try await OwnerTotals.origins(db, organizationID: "org_1", owner: .user("usr_ada"))
            )
        }
        // v7: everything settled before came from the API.
        #expect(adaOrigins.map(\.origin) == [.api] && adaOrigins[0].requests == 2 && adaOrigins[0].costMicros == 420)
        #expect(ada.count == 1 && ada[0].requests == 2 && ada[0].inputTokens == 15 && ada[0].outputTokens == 27)
        #expect(ada[0].costMicros == 420 && ada[0].lastUsedAt.millis == 90_000_000)
        #expect(ci.count == 1 && ci[0].logicalModel == "large" && ci[0].costMicros == 42)
        #expect(organization.isEmpty)
    }
}
