import Foundation
import GRPCCore
@testable import Ledger
import LumenAPI
import LumenTesting
import RPCSupport
import SharedRules
import Storage
import Testing
import UpstreamClient

/// Budget alerts: a pool's thresholds, crossed once each until the balance rises above them
/// again; each crossing recorded once whatever the concurrency, with a delivery per endpoint.
@Suite("Budget alerts")
struct AlertTests {
    static func pool(balance: Int64, limit: Int64?) -> PoolRecord {
        var pool = PoolRecord(organizationID: "org_1", ownerType: 2, ownerID: "usr_ada", now: 0)
        pool.mode = Lumen_Ledger_V1_PoolMode.balance.rawValue
        pool.balanceMicros = balance
        pool.limitMicros = limit
        return pool
    }

    @Test("A threshold is crossed once, when that share of the limit is spent, and re-armed when the balance rises above it")
    func crossing() throws {
        var rule = AlertRules.Rule(thresholds: [50, 80, 100])
        func step(_ balance: Int64, limit: Int64? = 1_000) -> Int? {
            let (after, crossed) = AlertRules.evaluate(rule, Self.pool(balance: balance, limit: limit))
            rule = after
            return crossed
        }
        #expect(step(1_000) == nil && rule.reference == 1_000)
        #expect(step(501) == nil)
        #expect(step(500) == 50)  // half of it spent
        #expect(step(400) == nil)  // still past 50 %: no second alert
        #expect(step(100) == 80)  // a jump past 80 %: one alert, the highest
        #expect(step(0) == 100)
        #expect(step(-5) == nil && rule.crossed == [50, 80, 100])
        #expect(step(900) == nil && rule.crossed.isEmpty)  // a grant re-arms them all
        #expect(step(450) == 50)
        // Without a limit, the reference is the balance after the latest top-up.
        rule = AlertRules.Rule(thresholds: [50])
        #expect(step(2_000, limit: nil) == nil && rule.reference == 2_000)
        #expect(step(1_000, limit: nil) == 50)
        #expect(step(3_000, limit: nil) == nil && rule.reference == 3_000 && rule.crossed.isEmpty)
        #expect(step(1_400, limit: nil) == 50)
        // Thresholds: 1–10 distinct whole percents.
        #expect(try AlertRules.thresholds([80, 50]) == [50, 80])
        for wrong: [Int32] in [[0], [101], [50, 50], Array(1...11)] {
            #expect(throws: ServiceError.self) { try AlertRules.thresholds(wrong) }
        }
    }

    @Test("Spending across a threshold under concurrency records one alert, with one delivery per endpoint; a failed attempt is retried later", arguments: TestStore.available)
    func concurrent(store: TestStore) async throws {
        try await TestServices.run(store: store) { services in
            let ledger = services.ledger
            let lumen = services.asInternal
            try await services.registerMeteredModels(["small"])
            let tenant = try await services.tenant()
            let user = try await services.accounts.createUser(
                .with {
                    $0.organizationID = tenant.organizationID
                    $0.email = "ada@acme.test"
                    $0.displayName = "Ada"
                }, metadata: tenant.metadata
            ).user
            let ada = Lumen_Common_V1_PrincipalRef.user(user.id)
            _ = try await ledger.configurePool(
                .with {
                    $0.owner = ada
                    $0.mode = .balance
                    $0.limitMicros = 100_000
                }, metadata: tenant.metadata)
            _ = try await ledger.grant(
                .with {
                    $0.owner = ada
                    $0.amountMicros = 100_000
                    $0.reason = "budget"
                }, metadata: tenant.metadata)
            _ = try await ledger.setPoolAlerts(
                .with {
                    $0.owner = ada
                    $0.thresholdsPercent = [50, 90]
                }, metadata: tenant.metadata)
            // Two endpoints: one nobody listens on.
            for url in ["https://hooks.example.com/a", "https://hooks.example.com/b"] {
                _ = try await ledger.createAlertEndpoint(.with { $0.url = url }, metadata: tenant.metadata)
            }
            // 40 requests of 1,500 micro-USD each (60,000 in all: past 50 %, not 90 %), while the
            // monitor evaluates as batches commit.
            try await withThrowingTaskGroup(of: Void.self) { group in
                for index in 0..<40 {
                    group.addTask {
                        let id = "req_\(index)"
                        var reserve = OwnerTotalsTests.reserve(id, key: "", owner: ada, model: "small", origin: .web)
                        reserve.organizationID = tenant.organizationID
                        reserve.inputBoundTokens = 2_000
                        _ = try await ledger.reserve(reserve, metadata: lumen)
                        _ = try await ledger.settle(
                            .with {
                                $0.requestID = id
                                $0.inputTokens = 1_000
                                $0.outputTokens = 500
                            }, metadata: lumen)
                    }
                }
                group.addTask {
                    for _ in 0..<20 {
                        try await services.ledgerService.processAlerts()
                        try await Task.sleep(for: .milliseconds(5))
                    }
                }
                try await group.waitForAll()
            }
            try await services.ledgerService.processAlerts()
            let alerts = try await ledger.getPoolAlerts(.with { $0.owner = ada }, metadata: tenant.metadata).alerts
            #expect(alerts.thresholdsPercent == [50, 90] && alerts.crossedPercent == [50] && alerts.referenceMicros == 100_000)
            let deliveries = try await ledger.listAlertDeliveries(.init(), metadata: tenant.metadata)
            #expect(deliveries.deliveries.count == 2 && Set(deliveries.deliveries.map(\.alertID)).count == 1)
            let delivery = try #require(deliveries.deliveries.first)
            #expect(delivery.thresholdPercent == 50 && delivery.owner == ada && delivery.status == .pending && delivery.attempts == 0)
            #expect(delivery.balanceMicros <= 50_000 && delivery.referenceMicros == 100_000)

            // hooks.example.com does not resolve here: the attempt fails, is recorded, and is due again later.
            let client = UpstreamClient()
            defer { client.shutdown() }
            #expect(try await services.ledgerService.deliverAlerts(client: client) == 0)
            let retried = try await ledger.listAlertDeliveries(.with { $0.status = .pending }, metadata: tenant.metadata).deliveries
            #expect(retried.count == 2 && retried.allSatisfy { $0.attempts == 1 && !$0.lastError.isEmpty && $0.hasNextAttemptAt })
            // Nothing is due before the backoff has passed.
            #expect(try await services.ledgerService.deliverAlerts(client: client) == 0)
            #expect(try await ledger.listAlertDeliveries(.init(), metadata: tenant.metadata).deliveries.allSatisfy { $0.attempts == 1 })

            // Members neither set alerts nor see webhooks; they see their own pool's alerts.
            let person = try await services.person(user.id, organizationID: tenant.organizationID)
            let refused = await #expect(throws: RPCError.self) {
                _ = try await ledger.setPoolAlerts(.with { $0.owner = ada; $0.thresholdsPercent = [10] }, metadata: services.acting(person))
            }
            #expect(refused.map(reason(of:)) == "admin_required")
            #expect(try await ledger.getPoolAlerts(.with { $0.owner = ada }, metadata: services.acting(person)).alerts.crossedPercent == [50])
            await #expect(throws: RPCError.self) { _ = try await ledger.listAlertEndpoints(.init(), metadata: services.acting(person)) }
        }
    }

    @Test("Webhook endpoints: https, or http to a host the operator names; signed with a secret derived from the deployment's token")
    func endpoints() throws {
        let settings = AlertSettings(internalToken: "token", hosts: try HostPolicy(list: "127.0.0.1, *"))
        for good in ["https://hooks.example.com/x", "http://127.0.0.1:9999/hook", "https://127.0.0.1/x"] {
            #expect(throws: Never.self) { try settings.validate(good) }
        }
        for bad in ["http://hooks.example.com/x", "ftp://x", "https://user:pw@hooks.example.com/", "not a url", "https://" + String(repeating: "a", count: 2_050)] {
            #expect(throws: ServiceError.self) { try settings.validate(bad) }
        }
        #expect(throws: ServiceError.self) { try AlertSettings(internalToken: "token", hosts: try HostPolicy(list: "a.test")).validate("https://b.test/") }
        let secret = settings.secret(for: "whk_1")
        #expect(secret.hasPrefix("whsec_") && secret == AlertSettings(internalToken: "token", hosts: .none).secret(for: "whk_1"))
        #expect(secret != settings.secret(for: "whk_2") && secret != AlertSettings(internalToken: "other", hosts: .none).secret(for: "whk_1"))
        let signature = settings.signature(Array("{}".utf8), timestamp: 1_800_000_000, endpointID: "whk_1")
        #expect(signature.hasPrefix("t=1800000000,v1=") && signature.count == "t=1800000000,v1=".count + 64)
        #expect(AlertDeliverer.backoff(afterAttempts: 1) == 1_000 && AlertDeliverer.backoff(afterAttempts: 4) == 8_000)
        #expect(AlertDeliverer.backoff(afterAttempts: 30) == 3_600_000)
    }
}
