import Foundation
import GRPCCore
@testable import Ledger
import LumenAPI
import LumenTesting
import RPCSupport
import SharedRules
import Storage
import Testing

@Suite("Pools: the four states, refills, grants and the organisation balance")
struct PoolTests {
    static let user: Lumen_Common_V1_PrincipalRef = .with { $0.type = .user; $0.id = "usr_1" }

    static func reserve(_ requestID: String, estimate: Int64) -> Lumen_Ledger_V1_ReserveRequest {
        .with {
            $0.requestID = requestID
            $0.organizationID = "org_1"
            $0.keyID = "key_1"
            $0.owner = user
            $0.inputBoundTokens = estimate  // `TestServices.meteredModel`: a micro-dollar a token
            $0.logicalModel = "gpt-test"
            $0.modelVendor = "OpenAI"
            $0.scene = .chat
            $0.accessChannel = .platform
        }
    }

    static func configure(
        _ services: TestServices, mode: Lumen_Ledger_V1_PoolMode, limit: Int64? = nil, refill: Int64 = 0,
        owner: Lumen_Common_V1_PrincipalRef = user
    ) async throws -> Lumen_Ledger_V1_Pool {
        try await services.ledger.configurePool(
            .with {
                $0.organizationID = "org_1"
                $0.owner = owner
                $0.mode = mode
                if let limit { $0.limitMicros = limit }
                $0.refillPerHourMicros = refill
            }, metadata: services.asInternal
        ).pool
    }

    static func grant(
        _ services: TestServices, _ amount: Int64, key: String = "", owner: Lumen_Common_V1_PrincipalRef = user
    ) async throws -> Lumen_Ledger_V1_GrantResponse {
        try await services.ledger.grant(
            .with {
                $0.organizationID = "org_1"
                $0.owner = owner
                $0.amountMicros = amount
                $0.reason = "test grant"
                $0.idempotencyKey = key
            }, metadata: services.asInternal)
    }

    static func pool(_ services: TestServices, owner: Lumen_Common_V1_PrincipalRef = user) async throws -> Lumen_Ledger_V1_Pool {
        try await services.ledger.getPool(.with { $0.organizationID = "org_1"; $0.owner = owner }, metadata: services.asInternal).pool
    }

    static func code(_ body: () async throws -> Void) async -> (RPCError.Code?, String?) {
        do {
            try await body()
            return (nil, nil)
        } catch let error as RPCError {
            return (error.code, reason(of: error))
        } catch {
            return (nil, "\(error)")
        }
    }

    @Test("A pool refills hourly at its rate, never above its ceiling, and says when the next refill is", arguments: TestStore.available)
    func refill(store: TestStore) async throws {
        let clock = ManualClock()
        let start = clock.nowMillis
        try await TestServices.run(clock: clock.wallClock, store: store) { services in
            var pool = try await Self.configure(services, mode: .balance, limit: 2_500_000, refill: 1_000_000)
            #expect(pool.balanceMicros == 0)
            #expect(pool.nextRefillAt.millis == start + 3_600_000)

            clock.advance(seconds: 3_599)
            pool = try await Self.pool(services)
            #expect(pool.balanceMicros == 0)
            #expect(pool.nextRefillAt.millis == start + 3_600_000)

            clock.advance(seconds: 1)
            pool = try await Self.pool(services)
            #expect(pool.balanceMicros == 1_000_000)
            #expect(pool.nextRefillAt.millis == start + 7_200_000)

            // Five more hours would add five dollars; the ceiling stops it at 2.5.
            clock.advance(seconds: 5 * 3_600 + 60)
            pool = try await Self.pool(services)
            #expect(pool.balanceMicros == 2_500_000)
            #expect(pool.limitMicros == 2_500_000)
            #expect(pool.nextRefillAt.millis == start + 7 * 3_600_000)

            // Spending lowers it; the next refill tops it up, again only to the ceiling.
            _ = try await services.ledger.reserve(Self.reserve("req_1", estimate: 1_200_000), metadata: services.asInternal)
            _ = try await services.ledger.settle(
                .with { $0.requestID = "req_1"; $0.inputTokens = 1_200_000 }, metadata: services.asInternal)
            pool = try await Self.pool(services)
            #expect(pool.balanceMicros == 1_300_000)
            #expect(pool.spentMicros == 1_200_000)
            clock.advance(seconds: 3_600)
            pool = try await Self.pool(services)
            #expect(pool.balanceMicros == 2_300_000)
            clock.advance(seconds: 3_600)
            #expect(try await Self.pool(services).balanceMicros == 2_500_000)

            // A grant may lift the balance above the ceiling; refills then add nothing.
            pool = try await Self.grant(services, 1_000_000).pool
            #expect(pool.balanceMicros == 3_500_000)
            clock.advance(seconds: 2 * 3_600)
            #expect(try await Self.pool(services).balanceMicros == 3_500_000)
        }
    }

    @Test("The four states: not configured and Unlimited never block; a balance at 0 or below blocks until a grant or a refill", arguments: TestStore.available)
    func states(store: TestStore) async throws {
        let clock = ManualClock()
        try await TestServices.run(clock: clock.wallClock, store: store) { services in
            let ledger = services.ledger
            // Not configured (`—`): no limit from this pool.
            #expect(try await Self.pool(services).mode == .unspecified)
            _ = try await ledger.reserve(Self.reserve("req_free", estimate: 5_000_000), metadata: services.asInternal)
            _ = try await ledger.release(.with { $0.requestID = "req_free" }, metadata: services.asInternal)

            // Unlimited.
            #expect(try await Self.configure(services, mode: .unlimited).mode == .unlimited)
            _ = try await ledger.reserve(Self.reserve("req_unlimited", estimate: 5_000_000), metadata: services.asInternal)
            _ = try await ledger.release(.with { $0.requestID = "req_unlimited" }, metadata: services.asInternal)
            let unlimitedGrant = await Self.code { _ = try await Self.grant(services, 1) }
            #expect(unlimitedGrant == (.failedPrecondition, "pool_unlimited"))

            // A balance of 0 blocks.
            _ = try await Self.configure(services, mode: .balance, refill: 100_000)
            let blocked = await Self.code {
                _ = try await ledger.reserve(Self.reserve("req_zero", estimate: 1), metadata: services.asInternal)
            }
            #expect(blocked == (.resourceExhausted, "insufficient_quota"))

            // A grant unblocks; an overrun (actual > estimate) leaves it negative: blocked until it is back above 0.
            _ = try await Self.grant(services, 50_000)
            _ = try await ledger.reserve(Self.reserve("req_ok", estimate: 40_000), metadata: services.asInternal)
            // An upstream that reported more than the request's bound (it ignored max_tokens).
            let overrun = try await ledger.settle(.with { $0.requestID = "req_ok"; $0.outputTokens = 80_000 }, metadata: services.asInternal)
            #expect(try await Self.pool(services).balanceMicros == -30_000)
            // Charged in full, and recorded: the line, the check and so /metrics say so.
            #expect(overrun.line.costMicros == 80_000 && overrun.line.overrunMicros == 40_000)
            var check = try await ledger.checkInvariant(.init(), metadata: services.asInternal)
            #expect(check.overrunLines == 1 && check.overrunMicros == 40_000)
            #expect(check.poolsBelowZero.map(\.balanceMicros) == [-30_000] && !check.poolsBelowZero[0].unexplained)
            // Money removed never takes a pool below zero.
            #expect(await Self.code { _ = try await Self.grant(services, -1) } == (.failedPrecondition, "balance_below_zero"))
            _ = try await Self.grant(services, 30_010)
            #expect(await Self.code { _ = try await Self.grant(services, -11) } == (.failedPrecondition, "balance_below_zero"))
            _ = try await Self.grant(services, -10)
            check = try await ledger.checkInvariant(.init(), metadata: services.asInternal)
            #expect(check.poolsBelowZero.isEmpty && check.overrunLines == 1)
            let negative = await Self.code {
                _ = try await ledger.reserve(Self.reserve("req_neg", estimate: 1), metadata: services.asInternal)
            }
            #expect(negative == (.resourceExhausted, "insufficient_quota"))

            // The hourly refill brings it back above 0.
            clock.advance(seconds: 3_600)
            #expect(try await Self.pool(services).balanceMicros == 100_000)
            _ = try await ledger.reserve(Self.reserve("req_refilled", estimate: 100_000), metadata: services.asInternal)

            // Back to not configured: the pool no longer limits.
            #expect(try await Self.configure(services, mode: .unspecified).mode == .unspecified)
            _ = try await ledger.reserve(Self.reserve("req_again", estimate: 9_000_000), metadata: services.asInternal)
        }
    }

    @Test("Grants made at once are each one audit entry, chained in the order the group commit applied them", arguments: TestStore.available)
    func concurrentGrantsChain(store: TestStore) async throws {
        try await TestServices.run(store: store) { services in
            let tenant = try await services.tenant()
            let ledger = services.ledger
            try await withThrowingTaskGroup(of: Void.self) { group in
                for index in 1...40 {
                    group.addTask {
                        _ = try await ledger.grant(
                            .with {
                                $0.owner = .with { $0.type = .organization }
                                $0.amountMicros = Int64(index)
                                $0.reason = "grant \(index)"
                            }, metadata: tenant.metadata)
                    }
                }
                try await group.waitForAll()
            }
            let log = try await ledger.listAuditLog(.with { $0.limit = 1_000 }, metadata: services.asInternal).entries
            #expect(log.count == 40 && log.allSatisfy { $0.action == "pool.grant" && $0.targetID == tenant.organizationID })
            // Each entry's balance before is the one after of the entry before it: the commit order.
            func balance(_ json: String) -> Int64? {
                guard let range = json.range(of: #""balance_micros":(-?\d+)"#, options: .regularExpression) else { return nil }
                return Int64(json[range].split(separator: ":")[1])
            }
            for (earlier, later) in zip(log, log.dropFirst()) {
                #expect(later.previousHash == earlier.hash)
                #expect(balance(later.beforeJson) == balance(earlier.afterJson))
            }
            let last = try #require(log.last)
            #expect(balance(last.afterJson) == (1...40).reduce(0, +))
            let verified = try await ledger.verifyAuditLog(.init(), metadata: services.asInternal)
            #expect(verified.intact && verified.entries == 40 && verified.headHash == log.last?.hash)
        }
    }

    @Test("Audit entries past retention are pruned on the group commit's store behind a signed checkpoint; the chain still verifies", arguments: TestStore.available)
    func auditRetention(store: TestStore) async throws {
        let clock = ManualClock()
        try await TestServices.run(clock: clock.wallClock, store: store) { services in
            let tenant = try await services.tenant()
            func grant(_ reason: String) async throws {
                _ = try await services.ledger.grant(
                    .with {
                        $0.owner = .with { $0.type = .organization }
                        $0.amountMicros = 1_000
                        $0.reason = reason
                    }, metadata: tenant.metadata)
            }
            try await grant("old")
            try await grant("old too")
            clock.advance(seconds: 3 * 86_400)
            try await grant("recent")
            var ledger = services.ledgerService
            #expect(try await ledger.pruneAudit(retentionDays: 1) == 0, "no signing key: nothing is pruned")
            let signer = AuditSigner(key: .init())
            ledger.auditSigner = signer
            #expect(try await ledger.pruneAudit(retentionDays: 1) == 2)
            #expect(try await ledger.pruneAudit(retentionDays: 1) == 0)
            let kept = try await services.ledger.listAuditLog(.with { $0.limit = 1_000 }, metadata: services.asInternal).entries
            #expect(kept.map(\.sequence) == [3] && kept.first?.afterJson.contains("recent") == true)
            let verified = try await LedgerService.verifyAudit(ledger.store, signer: signer)
            #expect(verified == .intact(count: 1, head: try #require(kept.first).hash, prunedThrough: 2))
            // The keys service prunes its own log the same way (the bootstrap's token, made days ago).
            var keys = services.keysService
            keys.auditSigner = signer
            #expect(try await keys.pruneAudit(retentionDays: 1) == 0, "its newest entry is kept")
            _ = try await services.keys.createKey(.with { $0.name = "today" }, metadata: tenant.metadata)
            #expect(try await keys.pruneAudit(retentionDays: 1) == 1)
        }
    }

    @Test("Grants: recorded with who and why, idempotent by key, listed newest first; bad input changes nothing", arguments: TestStore.available)
    func grants(store: TestStore) async throws {
        try await TestServices.run(store: store) { services in
            let tenant = try await services.tenant()
            let ledger = services.ledger
            let organization: Lumen_Common_V1_PrincipalRef = .with { $0.type = .organization }
            let first = try await ledger.grant(
                .with {
                    $0.owner = organization
                    $0.amountMicros = 100_000_000
                    $0.reason = "  monthly budget  "
                    $0.idempotencyKey = "budget-2026-11"
                }, metadata: tenant.metadata)
            #expect(first.grant.id.hasPrefix("grt_"))
            #expect(first.grant.reason == "monthly budget")
            #expect(first.grant.grantedByUserID == tenant.adminUserID)
            #expect(first.pool.mode == .balance && first.pool.balanceMicros == 100_000_000)

            // The same idempotency key answers the first grant and adds nothing.
            let replay = try await ledger.grant(
                .with {
                    $0.owner = organization
                    $0.amountMicros = 100_000_000
                    $0.reason = "monthly budget"
                    $0.idempotencyKey = "budget-2026-11"
                }, metadata: tenant.metadata)
            #expect(replay.grant == first.grant)
            #expect(replay.pool.balanceMicros == 100_000_000)
            let reused = await Self.code {
                _ = try await ledger.grant(
                    .with {
                        $0.owner = organization
                        $0.amountMicros = 5
                        $0.reason = "other"
                        $0.idempotencyKey = "budget-2026-11"
                    }, metadata: tenant.metadata)
            }
            #expect(reused == (.alreadyExists, "idempotency_key_reused"))

            let second = try await ledger.grant(
                .with { $0.owner = organization; $0.amountMicros = -25_000_000; $0.reason = "correction" }, metadata: tenant.metadata)
            #expect(second.pool.balanceMicros == 75_000_000)

            let balance = try await ledger.getOrganizationBalance(.init(), metadata: tenant.metadata)
            #expect(balance.mode == .balance)
            #expect(balance.balanceMicros == 75_000_000 && balance.availableMicros == 75_000_000)
            #expect(balance.grantedMicros == 75_000_000 && balance.spentMicros == 0)

            let listed = try await ledger.listGrants(.init(), metadata: tenant.metadata)
            #expect(listed.grants.map(\.id) == [second.grant.id, first.grant.id])
            #expect(listed.pageInfo.total == 2)

            for (request, expected) in [
                (Lumen_Ledger_V1_GrantRequest.with { $0.owner = organization; $0.reason = "zero" }, "invalid_amount"),
                (.with { $0.owner = organization; $0.amountMicros = 1 }, "invalid_reason"),
                (.with { $0.owner = organization; $0.amountMicros = 1; $0.reason = String(repeating: "x", count: 501) }, "invalid_reason"),
                (.with { $0.amountMicros = 1; $0.reason = "no owner" }, "invalid_owner"),
                (.with { $0.owner = .with { $0.type = .organization; $0.id = "org_other" }; $0.amountMicros = 1; $0.reason = "x" }, "invalid_owner"),
                (.with { $0.owner = organization; $0.amountMicros = PoolAdministration.maxAmountMicros + 1; $0.reason = "x" }, "invalid_amount"),
            ] {
                let outcome = await Self.code { _ = try await ledger.grant(request, metadata: tenant.metadata) }
                #expect(outcome == (.invalidArgument, expected))
            }
            let otherOrganization = await Self.code {
                _ = try await ledger.grant(
                    .with { $0.organizationID = "org_other"; $0.owner = organization; $0.amountMicros = 1; $0.reason = "x" },
                    metadata: tenant.metadata)
            }
            #expect(otherOrganization == (.permissionDenied, "organization_mismatch"))
            #expect(try await ledger.listGrants(.init(), metadata: tenant.metadata).pageInfo.total == 2)
            #expect(try await ledger.getOrganizationBalance(.init(), metadata: tenant.metadata).balanceMicros == 75_000_000)
        }
    }

    @Test("Configuration is validated field by field and changes nothing when refused", arguments: TestStore.available)
    func configureValidation(store: TestStore) async throws {
        try await TestServices.run(store: store) { services in
            _ = try await Self.configure(services, mode: .balance, limit: 1_000, refill: 10)
            for (mode, limit, refill, expected) in [
                (Lumen_Ledger_V1_PoolMode.unlimited, Int64?(5), Int64(0), "invalid_limit"),
                (.balance, -1, 0, "invalid_limit"),
                (.balance, nil, -5, "invalid_refill"),
                (.unspecified, nil, 5, "invalid_refill"),
                (.balance, PoolAdministration.maxAmountMicros + 1, 0, "invalid_limit"),
                (.init(rawValue: 9)!, nil, 0, "invalid_mode"),
            ] {
                let outcome = await Self.code { _ = try await Self.configure(services, mode: mode, limit: limit, refill: refill) }
                #expect(outcome == (.invalidArgument, expected))
            }
            let pool = try await Self.pool(services)
            #expect(pool.mode == .balance && pool.limitMicros == 1_000 && pool.refillPerHourMicros == 10)
        }
    }

    @Test("An owner or key that does not exist in the organisation is NOT_FOUND, and nothing is written", arguments: TestStore.available)
    func unknownOwners(store: TestStore) async throws {
        try await TestServices.run(store: store) { services in
            let acme = try await services.tenant("Acme")
            let globex = try await services.tenant("Globex")
            let user = try await services.accounts.createUser(.with { $0.email = "ada@acme.test" }, metadata: acme.metadata).user
            let client = try await services.accounts.createClient(.with { $0.name = "worker" }, metadata: acme.metadata).client
            let key = try await services.keys.createKey(.init(), metadata: acme.metadata).key
            let globexKey = try await services.keys.createKey(.init(), metadata: globex.metadata).key

            func ref(_ type: Lumen_Common_V1_PrincipalType, _ id: String) -> Lumen_Common_V1_PrincipalRef {
                .with {
                    $0.type = type
                    $0.id = id
                }
            }
            // Real principals of Acme work.
            for owner in [ref(.user, user.id), ref(.client, client.id), ref(.key, key.id)] {
                _ = try await services.ledger.grant(
                    .with {
                        $0.owner = owner
                        $0.amountMicros = 1_000_000
                        $0.reason = "welcome"
                    }, metadata: acme.metadata)
            }
            // Typos and Globex's key are not found, on every pool call.
            let strangers = [
                (ref(.user, "usr_typo"), "user_not_found"), (ref(.client, "cli_typo"), "client_not_found"),
                (ref(.key, globexKey.id), "key_not_found"),
            ]
            for (owner, code) in strangers {
                let calls: [(String, () async throws -> Void)] = [
                    ("Grant", { _ = try await services.ledger.grant(.with { $0.owner = owner; $0.amountMicros = 5; $0.reason = "x" }, metadata: acme.metadata) }),
                    ("GetPool", { _ = try await services.ledger.getPool(.with { $0.owner = owner }, metadata: acme.metadata) }),
                    ("ConfigurePool", { _ = try await services.ledger.configurePool(.with { $0.owner = owner; $0.mode = .unlimited }, metadata: acme.metadata) }),
                    ("ListGrants", { _ = try await services.ledger.listGrants(.with { $0.owner = owner }, metadata: acme.metadata) }),
                ]
                for (name, call) in calls {
                    do {
                        try await call()
                        Issue.record("\(name) accepted \(owner.id)")
                    } catch let error as RPCError {
                        #expect(error.code == .notFound, "\(name) \(owner.id)")
                        #expect(reason(of: error) == code, "\(name) \(owner.id)")
                        #expect(ServiceError(error).param == "owner", "\(name) \(owner.id)")
                    }
                }
            }
            // Another organisation's key: its usage and billing are not found either.
            let filter = Lumen_Ledger_V1_UsageFilter.with { $0.keyID = globexKey.id }
            for (name, call) in [
                ("ListUsage", { _ = try await services.ledger.listUsage(.with { $0.filter = filter }, metadata: acme.metadata) }),
                ("GetBilling", { _ = try await services.ledger.getBilling(.with { $0.filter = filter }, metadata: acme.metadata) }),
            ] as [(String, () async throws -> Void)] {
                do {
                    try await call()
                    Issue.record("\(name) answered for another organisation's key")
                } catch let error as RPCError {
                    #expect(error.code == .notFound && reason(of: error) == "key_not_found", "\(name)")
                }
            }
            _ = try await services.ledger.listUsage(.with { $0.filter = .with { $0.keyID = key.id } }, metadata: acme.metadata)
            // Only the three real grants were written.
            let grants = try await services.ledger.listGrants(.init(), metadata: acme.metadata)
            #expect(grants.grants.count == 3)
            #expect(Set(grants.grants.map(\.owner.id)) == [user.id, client.id, key.id])
        }
    }
}
