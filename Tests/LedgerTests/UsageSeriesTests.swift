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

/// Usage over time: per day and model, the keys and owners that spent most — for the
/// organisation, one owner or one model — equal to the settled lines behind them.
@Suite("Usage over time")
struct UsageSeriesTests {
    static let day: Int64 = 86_400

    @Test("GetUsageSeries sums settled lines per UTC day and model, and names the keys and owners that spent most", arguments: TestStore.available)
    func series(store: TestStore) async throws {
        let clock = ManualClock()
        try await TestServices.run(clock: clock.wallClock, store: store) { services in
            let ledger = services.ledger
            let lumen = services.asInternal
            try await services.registerMeteredModels(["small", "large"])
            let ada = Lumen_Common_V1_PrincipalRef.user("usr_ada")
            let ci = Lumen_Common_V1_PrincipalRef.client("cli_ci")
            let bob = Lumen_Common_V1_PrincipalRef.user("usr_bob")
            func spend(_ id: String, _ key: String, _ owner: Lumen_Common_V1_PrincipalRef, _ model: String, _ input: Int64, _ output: Int64) async throws {
                _ = try await ledger.reserve(OwnerTotalsTests.reserve(id, key: key, owner: owner, model: model), metadata: lumen)
                _ = try await ledger.settle(
                    .with {
                        $0.requestID = id
                        $0.inputTokens = input
                        $0.outputTokens = output
                    }, metadata: lumen)
            }
            let firstDay = RFC3339.formatDay(millis: clock.nowMillis)
            // At a micro-dollar a token, a request costs its tokens.
            try await spend("req_1", "key_a", ada, "small", 10, 5)
            try await spend("req_2", "key_a", ada, "large", 7, 3)
            try await spend("req_3", "key_c", ci, "small", 100, 50)
            clock.advance(seconds: Self.day)
            let secondDay = RFC3339.formatDay(millis: clock.nowMillis)
            try await spend("req_4", "key_b", ada, "small", 1, 1)
            // A pending hold is not usage yet.
            _ = try await ledger.reserve(OwnerTotalsTests.reserve("req_5", key: "key_b", owner: ada, model: "small"), metadata: lumen)
            clock.advance(seconds: 2 * Self.day)
            let today = RFC3339.formatDay(millis: clock.nowMillis)
            try await spend("req_6", "key_d", bob, "large", 20, 20)

            func series(_ change: (inout Lumen_Ledger_V1_GetUsageSeriesRequest) -> Void) async throws -> Lumen_Ledger_V1_GetUsageSeriesResponse {
                var request = Lumen_Ledger_V1_GetUsageSeriesRequest.with {
                    $0.organizationID = "org_1"
                    $0.days = 7
                    $0.top = 10
                }
                change(&request)
                return try await ledger.getUsageSeries(request, metadata: lumen)
            }
            let everything = try await series { _ in }
            #expect(everything.endDay == today)
            #expect(everything.points.map { "\($0.day) \($0.logicalModel) \($0.sums.requests) \($0.sums.costMicros)" } == [
                "\(firstDay) large 1 10", "\(firstDay) small 2 165", "\(secondDay) small 1 2", "\(today) large 1 40",
            ])
            #expect(everything.total.requests == 5 && everything.total.costMicros == 217)
            #expect(everything.total.inputTokens == 138 && everything.total.outputTokens == 79)
            #expect(everything.topKeys.map { "\($0.principal.id) \($0.sums.costMicros)" } == ["key_c 150", "key_d 40", "key_a 25", "key_b 2"])
            #expect(everything.topOwners.map { "\($0.principal.type) \($0.principal.id) \($0.sums.costMicros)" } == [
                "client cli_ci 150", "user usr_bob 40", "user usr_ada 27",
            ])

            // One owner: only their keys' usage, and no owners' ranking.
            let adas = try await series { $0.owner = ada }
            #expect(adas.points.map { "\($0.day) \($0.logicalModel) \($0.sums.costMicros)" } == [
                "\(firstDay) large 10", "\(firstDay) small 15", "\(secondDay) small 2",
            ])
            #expect(adas.topKeys.map(\.principal.id) == ["key_a", "key_b"] && adas.topOwners.isEmpty)

            // One model; a shorter window; the top cut.
            let large = try await series {
                $0.logicalModel = "large"
                $0.top = 1
            }
            #expect(large.points.map(\.day) == [firstDay, today] && large.topKeys.map(\.principal.id) == ["key_d"])
            let lastTwoDays = try await series { $0.days = 2 }
            #expect(lastTwoDays.startDay != firstDay && lastTwoDays.points.map(\.day) == [today])
            #expect(try await series { $0.top = 0 }.topKeys.isEmpty)
            #expect(try await series { $0.days = 0 }.startDay == RFC3339.formatDay(millis: clock.nowMillis - 29 * Self.day * 1000))

            // Refusals name their field and change nothing.
            for (change, code) in [
                ({ (request: inout Lumen_Ledger_V1_GetUsageSeriesRequest) in request.days = 367 }, "invalid_days"),
                ({ $0.top = 101 }, "invalid_top"),
                ({ $0.owner = .with { $0.type = .key; $0.id = "key_a" } }, "invalid_owner"),
            ] as [((inout Lumen_Ledger_V1_GetUsageSeriesRequest) -> Void, String)] {
                let error = await #expect(throws: RPCError.self) { _ = try await series(change) }
                #expect(error?.code == .invalidArgument && error.map(reason(of:)) == code)
            }
        }
    }

    @Test("An organisation's usage over time is its administrators'; a member sees their own", arguments: TestStore.available)
    func access(store: TestStore) async throws {
        try await TestServices.run(store: store) { services in
            let tenant = try await services.tenant()
            let member = try await services.accounts.createUser(
                .with {
                    $0.organizationID = tenant.organizationID
                    $0.email = "member@acme.test"
                    $0.displayName = "Member"
                }, metadata: tenant.metadata
            ).user
            let admin = try await services.person(tenant.adminUserID, organizationID: tenant.organizationID)
            let person = try await services.person(member.id, organizationID: tenant.organizationID)
            let organisation = Lumen_Ledger_V1_GetUsageSeriesRequest()
            _ = try await services.ledger.getUsageSeries(organisation, metadata: tenant.metadata)
            _ = try await services.ledger.getUsageSeries(organisation, metadata: services.acting(admin))
            let refused = await #expect(throws: RPCError.self) {
                _ = try await services.ledger.getUsageSeries(organisation, metadata: services.acting(person))
            }
            #expect(refused.map(reason(of:)) == "admin_required")
            _ = try await services.ledger.getUsageSeries(.with { $0.owner = .user(member.id) }, metadata: services.acting(person))
            let other = await #expect(throws: RPCError.self) {
                _ = try await services.ledger.getUsageSeries(.with { $0.owner = .user(tenant.adminUserID) }, metadata: services.acting(person))
            }
            #expect(other.map(reason(of:)) == "not_permitted")
        }
    }

    @Test("Migration v12 names each rollup's owner from its key's lines; a key without lines stays unnamed")
    func backfill() async throws {
        let queue = try DatabaseQueue()
        try LedgerStore.migrator.migrate(queue, upTo: "v11: the audit log's checkpoint")
        try await queue.write { db in
            try db.execute(
                sql: """
                    INSERT INTO usage_lines (request_id, created_at, organization_id, key_id, owner_type, owner_id, logical_model,
                        model_vendor, scene, access_channel, cost_micros, status)
                    VALUES ('req_1', 1000, 'org_1', 'key_a', 2, 'usr_ada', 'small', 'v', 1, 1, 1, 2)
                    """)
            for key in ["key_a", "key_gone"] {
                try db.execute(
                    sql: """
                        INSERT INTO usage_rollups (organization_id, key_id, span, bucket, logical_model, model_vendor, scene,
                            access_channel, requests, input_tokens, cached_input_tokens, output_tokens, cost_micros)
                        VALUES ('org_1', ?, 86400000, 0, 'small', 'v', 1, 1, 1, 1, 0, 1, 1)
                        """, arguments: [key])
            }
        }
        try LedgerStore.migrator.migrate(queue)
        let owners = try await queue.read { db in
            try Row.fetchAll(db, sql: "SELECT key_id, owner_type, owner_id FROM usage_rollups ORDER BY key_id").map {
                "\($0["key_id"] as String) \($0["owner_type"] as Int) \($0["owner_id"] as String)"
            }
        }
        #expect(owners == ["key_a 2 usr_ada", "key_gone 0 "])
    }
}
