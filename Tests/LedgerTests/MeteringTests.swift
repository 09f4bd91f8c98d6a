import Foundation
import GRDB
import GRPCCore
import Ledger
import Logging
import LumenAPI
import LumenTesting
import RPCSupport
import SharedRules
import Synchronization
import Testing

@Suite("Ledger holds, settlements and usage lines")
struct MeteringTests {
    static func reserve(
        _ requestID: String, organization: String = "org_1", key: String = "key_1", estimate: Int64,
        cap: Int64? = nil, channel: Lumen_Common_V1_AccessChannel = .platform
    ) -> Lumen_Ledger_V1_ReserveRequest {
        .with {
            $0.requestID = requestID
            $0.organizationID = organization
            $0.keyID = key
            $0.owner = .with { $0.type = .organization; $0.id = organization }
            if let cap { $0.keyLimitMicros = cap }
            // `TestServices.meteredModel`: a micro-dollar a token, so the hold is `estimate`.
            $0.inputBoundTokens = estimate
            $0.logicalModel = "gpt-test"
            $0.modelVendor = "OpenAI"
            $0.scene = .chat
            $0.accessChannel = channel
        }
    }

    /// A settlement that costs `cost` at `TestServices.meteredModel`'s prices: 20 output tokens
    /// and the rest input tokens (the ledger prices them; a caller names no price).
    static func settle(_ requestID: String, cost: Int64) -> Lumen_Ledger_V1_SettleRequest {
        .with {
            $0.requestID = requestID
            $0.inputTokens = max(0, cost - 20)
            $0.outputTokens = min(cost, 20)
            $0.latencyMs = 42
        }
    }

    static func keyPool(_ services: TestServices, key: String = "key_1") async throws -> Lumen_Ledger_V1_Pool {
        try await services.ledger.getPool(
            .with {
                $0.organizationID = "org_1"
                $0.owner = .with { $0.type = .key; $0.id = key }
            }, metadata: services.asInternal
        ).pool
    }

    @Test("Reserve writes a pending line and a hold; settle replaces it by the actual cost, once", arguments: TestStore.available)
    func reserveThenSettle(store: TestStore) async throws {
        try await TestServices.run(store: store) { services in
            let ledger = services.ledger
            _ = try await ledger.reserve(Self.reserve("req_a", estimate: 5_000), metadata: services.asInternal)
            var pool = try await Self.keyPool(services)
            #expect(pool.reservedMicros == 5_000)
            #expect(pool.spentMicros == 0)

            let pending = try await ledger.listUsage(
                .with { $0.filter = .with { $0.organizationID = "org_1"; $0.keyID = "key_1" } }, metadata: services.asInternal)
            #expect(pending.lines.map(\.status) == [.pending])
            #expect(pending.lines.first?.billingTransactionID == "")

            let settled = try await ledger.settle(Self.settle("req_a", cost: 1_234), metadata: services.asInternal).line
            #expect(settled.status == .settled)
            #expect(settled.costMicros == 1_234)
            #expect(settled.inputTokens == 1_214 && settled.outputTokens == 20 && settled.latencyMs == 42)
            #expect(settled.billingTransactionID.hasPrefix("btx_"))

            // Idempotent: the same settle again answers the same line and charges nothing more.
            let again = try await ledger.settle(Self.settle("req_a", cost: 9_999), metadata: services.asInternal).line
            #expect(again == settled)
            pool = try await Self.keyPool(services)
            #expect(pool.reservedMicros == 0)
            #expect(pool.spentMicros == 1_234)

            // A settled request cannot be reserved again.
            await #expect {
                _ = try await ledger.reserve(Self.reserve("req_a", estimate: 1), metadata: services.asInternal)
            } throws: { error in
                (error as? RPCError).map(reason(of:)) == "request_settled"
            }
        }
    }

    @Test("A key's cap refuses what would exceed it, counting holds in flight; release frees the hold", arguments: TestStore.available)
    func keyCap(store: TestStore) async throws {
        try await TestServices.run(store: store) { services in
            let ledger = services.ledger
            _ = try await ledger.reserve(Self.reserve("req_1", estimate: 600, cap: 1_000), metadata: services.asInternal)
            // The same reserve again is idempotent, not a second hold.
            _ = try await ledger.reserve(Self.reserve("req_1", estimate: 600, cap: 1_000), metadata: services.asInternal)
            await #expect {
                _ = try await ledger.reserve(Self.reserve("req_2", estimate: 600, cap: 1_000), metadata: services.asInternal)
            } throws: { error in
                let error = error as? RPCError
                return error?.code == .resourceExhausted && error.map(reason(of:)) == "insufficient_quota"
            }
            _ = try await ledger.release(.with { $0.requestID = "req_1" }, metadata: services.asInternal)
            _ = try await ledger.reserve(Self.reserve("req_2", estimate: 600, cap: 1_000), metadata: services.asInternal)
            _ = try await ledger.settle(Self.settle("req_2", cost: 900), metadata: services.asInternal)
            await #expect(throws: RPCError.self) {
                _ = try await ledger.reserve(Self.reserve("req_3", estimate: 101, cap: 1_000), metadata: services.asInternal)
            }
            _ = try await ledger.reserve(Self.reserve("req_3", estimate: 100, cap: 1_000), metadata: services.asInternal)

            // A released request leaves no line.
            let lines = try await ledger.listUsage(
                .with { $0.filter = .with { $0.organizationID = "org_1"; $0.keyID = "key_1" } }, metadata: services.asInternal)
            #expect(Set(lines.lines.map(\.requestID)) == ["req_2", "req_3"])
        }
    }

    @Test("Concurrent reserves over the Meter stream never exceed a cap", arguments: TestStore.available)
    func concurrentMeterStream(store: TestStore) async throws {
        try await TestServices.run(store: store) { services in
            let answers = try await services.ledger.meter(
                request: StreamingClientRequest(metadata: services.asInternal) { writer in
                    for index in 0..<200 {
                        try await writer.write(.with { $0.reserve = Self.reserve("req_\(index)", estimate: 10, cap: 1_000) })
                    }
                }
            ) { response in
                var answers: [Lumen_Ledger_V1_MeterResponse] = []
                for try await answer in response.messages { answers.append(answer) }
                return answers
            }
            #expect(answers.count == 200)
            #expect(Set(answers.map(\.requestID)).count == 200)
            #expect(answers.filter { $0.statusCode == 0 }.count == 100)
            let refused = answers.filter { $0.statusCode != 0 }
            #expect(refused.allSatisfy { $0.reason == "insufficient_quota" && $0.statusCode == Int32(RPCError.Code.resourceExhausted.rawValue) })
            #expect(try await Self.keyPool(services).reservedMicros == 1_000)
        }
    }

    @Test("A reserve sent with answer_when_decided is answered twice on the Meter stream, decided then durable; a refusal once", arguments: TestStore.available)
    func decidedThenDurable(store: TestStore) async throws {
        try await TestServices.run(store: store) { services in
            let answers = try await services.ledger.meter(
                request: StreamingClientRequest(metadata: services.asInternal) { writer in
                    for index in 0..<3 {
                        try await writer.write(.with {
                            $0.reserve = Self.reserve("req_\(index)", estimate: 400, cap: 1_000)
                            $0.answerWhenDecided = true
                        })
                    }
                    try await writer.write(.with { $0.reserve = Self.reserve("req_once", estimate: 100, cap: 1_000) })
                }
            ) { response in
                var answers: [Lumen_Ledger_V1_MeterResponse] = []
                for try await answer in response.messages { answers.append(answer) }
                return answers
            }
            // Two placed (decided, then durable), the third refused by the cap (one answer), and
            // one that did not ask: answered once, durable.
            for placed in ["req_0", "req_1"] {
                let mine = answers.filter { $0.requestID == placed }
                #expect(mine.map(\.decided) == [true, false], "\(placed): \(mine)")
                #expect(mine.allSatisfy { $0.statusCode == 0 && $0.hasHoldExpiresAt })
            }
            let refused = answers.filter { $0.requestID == "req_2" }
            #expect(refused.count == 1 && refused[0].reason == "insufficient_quota" && !refused[0].decided)
            #expect(answers.filter { $0.requestID == "req_once" }.map(\.decided) == [false])
            #expect(try await Self.keyPool(services).reservedMicros == 900)
        }
    }

    @Test("A key's requests per minute hold across two Meter streams (two gateways): the rest are 429 with a retry time and write nothing", arguments: TestStore.available)
    func rateLimitAcrossStreams(store: TestStore) async throws {
        try await TestServices.run(store: store) { services in
            @Sendable func limited(_ id: String) -> Lumen_Ledger_V1_ReserveRequest {
                var request = Self.reserve(id, estimate: 10)
                request.rpmLimit = 30
                request.rateTokens = 100
                return request
            }
            // Two streams at once, as two gateway replicas would hold them, 40 reserves each.
            let answers = try await withThrowingTaskGroup(of: [Lumen_Ledger_V1_MeterResponse].self) { group in
                for gateway in 0..<2 {
                    group.addTask {
                        try await services.ledger.meter(
                            request: StreamingClientRequest(metadata: services.asInternal) { writer in
                                for index in 0..<40 { try await writer.write(.with { $0.reserve = limited("req_g\(gateway)_\(index)") }) }
                            }
                        ) { response in
                            var answers: [Lumen_Ledger_V1_MeterResponse] = []
                            for try await answer in response.messages { answers.append(answer) }
                            return answers
                        }
                    }
                }
                return try await group.reduce(into: []) { $0 += $1 }
            }
            #expect(answers.count == 80)
            #expect(answers.filter { $0.statusCode == 0 }.count == 30, "30 a minute in total, not 30 per gateway")
            let refused = answers.filter { $0.statusCode != 0 }
            #expect(refused.allSatisfy {
                $0.reason == "rate_limit_exceeded" && $0.statusCode == Int32(RPCError.Code.resourceExhausted.rawValue)
                    && (1...60).contains($0.retryAfterSeconds) && $0.message.contains("30 requests per minute")
            })
            let lines = try await services.ledger.listUsage(
                .with {
                    $0.filter = .with { $0.organizationID = "org_1"; $0.keyID = "key_1" }
                    $0.page = .with { $0.limit = 100 }
                }, metadata: services.asInternal)
            #expect(lines.pageInfo.total == 30, "a refused reserve writes no line")
            #expect(try await Self.keyPool(services).reservedMicros == 300)

            // A released request gives its place back; the unary Reserve carries the retry time in ErrorInfo.
            _ = try await services.ledger.release(.with { $0.requestID = answers.first { $0.statusCode == 0 }!.requestID }, metadata: services.asInternal)
            _ = try await services.ledger.reserve(limited("req_after_release"), metadata: services.asInternal)
            await #expect {
                _ = try await services.ledger.reserve(limited("req_one_too_many"), metadata: services.asInternal)
            } throws: { error in
                guard let error = error as? RPCError else { return false }
                let refusal = ServiceError(error)
                return refusal.code == "rate_limit_exceeded" && refusal.retryAfter.map { (1...60).contains($0) } == true
            }
        }
    }

    @Test("Tokens per minute: a hold counts its most, its settlement the actual tokens; too large a request is refused outright", arguments: TestStore.available)
    func tokensPerMinute(store: TestStore) async throws {
        try await TestServices.run(store: store) { services in
            func limited(_ id: String, tokens: Int64) -> Lumen_Ledger_V1_ReserveRequest {
                var request = Self.reserve(id, estimate: 10)
                request.tpmLimit = 1_000
                request.rateTokens = tokens
                return request
            }
            let meter = services.ledgerService.localMeter
            try await meter.reserve(limited("req_t1", tokens: 600))
            await #expect(throws: ServiceError.self) { try await meter.reserve(limited("req_t2", tokens: 600)) }
            // Settled at 5 tokens: the minute has room again.
            _ = try await services.ledger.settle(Self.settle("req_t1", cost: 5), metadata: services.asInternal)
            try await meter.reserve(limited("req_t2", tokens: 600))
            await #expect {
                try await meter.reserve(limited("req_huge", tokens: 1_001))
            } throws: { error in
                (error as? ServiceError).map { $0.code == "rate_limit_exceeded" && $0.retryAfter == 60 && $0.message.contains("max_tokens") } == true
            }
            await #expect {
                var bad = limited("req_bad", tokens: 1)
                bad.rpmLimit = -1
                try await meter.reserve(bad)
            } throws: { error in
                (error as? ServiceError)?.code == "invalid_rate_limit"
            }
        }
    }

    @Test("A request that fits once the answer before it is settled is admitted at once, its settlement still queued", arguments: TestStore.available)
    func settlementBeforeTheNextHold(store: TestStore) async throws {
        try await TestServices.run(store: store) { services in
            let meter = services.ledgerService.localMeter
            for index in 0..<20 {
                // Held at 900 of the key's 1,000, settled at 10: the next one (900) fits only after
                // that settlement, queued as the gateway queues it (no wait) just before.
                try await meter.reserve(Self.reserve("req_s\(index)", estimate: 900, cap: 1_000 + 10 * Int64(index)))
                meter.settle(Self.settle("req_s\(index)", cost: 10)) { _ in }
            }
            try await meter.reserve(Self.reserve("req_s_last", estimate: 900, cap: 1_100))
            await #expect(throws: ServiceError.self) { try await meter.reserve(Self.reserve("req_s_over", estimate: 900, cap: 1_100)) }
        }
    }

    @Test("Settlements queued in-process without waiting (as the gateway answers) are in the very next read", arguments: TestStore.available)
    func queuedSettlementsAreRead(store: TestStore) async throws {
        // On disk (a DatabasePool): its reads run beside the writer, so only the ledger's own
        // wait for queued operations makes them see the settlements.
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("lumen-queued-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try await TestServices.run(location: .directory(directory), store: store) { services in
            let meter = services.ledgerService.localMeter
            let count = 200
            for index in 0..<count { try await meter.reserve(Self.reserve("req_q\(index)", estimate: 5_000)) }
            let failures = Mutex(0)
            for index in 0..<count {
                meter.settle(Self.settle("req_q\(index)", cost: 100)) { result in
                    if case .failure = result { failures.withLock { $0 += 1 } }
                }
            }
            let pool = try await Self.keyPool(services)
            #expect(pool.spentMicros == Int64(count) * 100)
            #expect(pool.reservedMicros == 0)
            let usage = try await services.ledger.listUsage(
                .with {
                    $0.filter = .with { $0.organizationID = "org_1"; $0.keyID = "key_1" }
                    $0.page = .with { $0.limit = 100 }
                }, metadata: services.asInternal)
            #expect(usage.pageInfo.total == Int64(count))
            #expect(usage.lines.allSatisfy { $0.status == .settled && $0.costMicros == 100 })
            #expect(failures.withLock { $0 } == 0)
        }
    }

    @Test("Holds and pool totals survive a restart: a hold placed before it is settled after it", arguments: TestStore.available)
    func restart(store: TestStore) async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("lumen-ledger-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        // The same tables twice: the files of `directory`, or one PostgreSQL database.
        try await TestServices.twice(location: .directory(directory), store: store) { run in
            try await self.restart(run)
        }
    }

    func restart(_ run: TestServices.Runner) async throws {
        try await run { services in
            _ = try await services.ledger.reserve(Self.reserve("req_open", estimate: 700, cap: 1_000), metadata: services.asInternal)
            _ = try await services.ledger.reserve(Self.reserve("req_done", estimate: 200, cap: 1_000), metadata: services.asInternal)
            _ = try await services.ledger.settle(Self.settle("req_done", cost: 150), metadata: services.asInternal)
        }
        try await run { services in
            var pool = try await Self.keyPool(services)
            #expect(pool.reservedMicros == 700 && pool.spentMicros == 150)
            // The open hold still counts against the cap, and is still there to settle.
            await #expect(throws: RPCError.self) {
                _ = try await services.ledger.reserve(Self.reserve("req_more", estimate: 200, cap: 1_000), metadata: services.asInternal)
            }
            let line = try await services.ledger.settle(Self.settle("req_open", cost: 300), metadata: services.asInternal).line
            #expect(line.status == .settled && line.costMicros == 300 && line.logicalModel == "gpt-test")
            pool = try await Self.keyPool(services)
            #expect(pool.reservedMicros == 0 && pool.spentMicros == 450)
        }
    }

    @Test("A hold read back after a restart whose model's prices cannot be found is settled at the hold, flagged estimated")
    func unpricedAfterRestart() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("lumen-ledger-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try await TestServices.run(location: .directory(directory)) { services in
            _ = try await services.ledger.reserve(Self.reserve("req_open", estimate: 700), metadata: services.asInternal)
        }
        // The same tables, a ledger that knows no prices (as one whose registry watch has not synced).
        let ledger = try LedgerService(location: .directory(directory), prices: PriceBook(fixed: []), logger: Logger(label: "test"))
        try await ledger.localMeter.settle(Self.settle("req_open", cost: 300))
        let queue = try DatabaseQueue(path: directory + "/ledger.sqlite")
        let (cost, estimated) = try await queue.read { db in
            let row = try Row.fetchOne(db, sql: "SELECT cost_micros, estimated FROM usage_lines WHERE request_id = 'req_open'")!
            return (row[0] as Int64, row[1] as Bool)
        }
        #expect(cost == 700 && estimated)
    }

    @Test("Expired holds are settled at their estimate and flagged; a late settle changes nothing", arguments: TestStore.available)
    func reconcile(store: TestStore) async throws {
        let now = Mutex(Date(timeIntervalSince1970: 1_800_000_000))
        try await TestServices.run(clock: WallClock { now.withLock { $0 } }, store: store) { services in
            let ledger = services.ledger
            _ = try await ledger.reserve(Self.reserve("req_lost", estimate: 700, cap: 10_000), metadata: services.asInternal)
            _ = try await ledger.reserve(Self.reserve("req_byok", estimate: 500, channel: .byok), metadata: services.asInternal)
            now.withLock { $0 += 10 * 60 }
            _ = try await ledger.reserve(Self.reserve("req_young", estimate: 100, cap: 10_000), metadata: services.asInternal)
            #expect(try await services.ledgerService.reconcileExpiredHolds() == 0)  // 10 minutes: not yet

            now.withLock { $0 += 6 * 60 }  // the first two are 16 minutes old, past the 15-minute TTL
            #expect(try await services.ledgerService.reconcileExpiredHolds() == 2)
            #expect(try await services.ledgerService.reconcileExpiredHolds() == 0)
            let lines = try await ledger.listUsage(
                .with { $0.filter = .with { $0.organizationID = "org_1"; $0.keyID = "key_1" } }, metadata: services.asInternal
            ).lines
            let lost = try #require(lines.first { $0.requestID == "req_lost" })
            #expect(lost.status == .settled && lost.costMicros == 700 && lost.expired && lost.estimated)
            #expect(lost.billingTransactionID.hasPrefix("btx_"))
            let byok = try #require(lines.first { $0.requestID == "req_byok" })
            #expect(byok.status == .settled && byok.costMicros == 0 && byok.expired)
            #expect(lines.first { $0.requestID == "req_young" }?.status == .pending)
            var pool = try await Self.keyPool(services)
            #expect(pool.spentMicros == 700 && pool.reservedMicros == 100)

            // The settlement arriving after all: answered with the line as reconciled, no second charge.
            let late = try await ledger.settle(Self.settle("req_lost", cost: 9_000), metadata: services.asInternal).line
            #expect(late.costMicros == 700 && late.expired)
            pool = try await Self.keyPool(services)
            #expect(pool.spentMicros == 700)
        }
    }

    @Test("The web chat holds without a key: on the person's and the organisation's pools; nobody else goes keyless", arguments: TestStore.available)
    func webChatWithoutKey(store: TestStore) async throws {
        try await TestServices.run(store: store) { services in
            let ledger = services.ledger
            let ada = Lumen_Common_V1_PrincipalRef.with {
                $0.type = .user
                $0.id = "usr_ada"
            }
            func web(_ id: String, owner: Lumen_Common_V1_PrincipalRef = ada, origin: Lumen_Common_V1_UsageOrigin = .web)
                -> Lumen_Ledger_V1_ReserveRequest
            {
                var request = Self.reserve(id, key: "", estimate: 300)
                request.owner = owner
                request.origin = origin
                return request
            }
            // Without a key: only the web chat, and only for a person.
            for request in [web("req_api", origin: .api), web("req_client", owner: .client("cli_1"))] {
                do {
                    _ = try await ledger.reserve(request, metadata: services.asInternal)
                    Issue.record("\(request.requestID) was held without a key")
                } catch let error as RPCError {
                    #expect(error.code == .invalidArgument && reason(of: error) == "key_required")
                }
            }
            _ = try await ledger.reserve(web("req_open"), metadata: services.asInternal)
            _ = try await ledger.reserve(web("req_done"), metadata: services.asInternal)
            let line = try await ledger.settle(Self.settle("req_done", cost: 120), metadata: services.asInternal).line
            #expect(line.keyID.isEmpty && line.origin == .web && line.owner == ada && line.costMicros == 120)
            let pool = try await ledger.getPool(
                .with {
                    $0.organizationID = "org_1"
                    $0.owner = ada
                }, metadata: services.asInternal
            ).pool
            #expect(pool.reservedMicros == 300 && pool.spentMicros == 120)
            let usage = try await ledger.getOwnerUsage(
                .with {
                    $0.organizationID = "org_1"
                    $0.owner = ada
                }, metadata: services.asInternal)
            #expect(usage.origins.map(\.origin) == [.web] && usage.origins[0].requests == 1 && usage.origins[0].costMicros == 120)
            let report = try await services.ledger.checkInvariant(.init(), metadata: services.asInternal)
            #expect(report.violations.isEmpty && report.openHolds == 1 && report.pools == 2)  // usr_ada, org_1: no key pool
        }
    }

    @Test("The invariant check: reservations equal open holds on every path; a tampered pool is named")
    func invariantCheck() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("lumen-check-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try await TestServices.run(location: .directory(directory)) { services in
            var user = Self.reserve("req_u", estimate: 300)
            user.owner = .with { $0.type = .user; $0.id = "usr_1" }
            for request in [Self.reserve("req_1", estimate: 700), Self.reserve("req_2", estimate: 50), user] {
                _ = try await services.ledger.reserve(request, metadata: services.asInternal)
            }
            _ = try await services.ledger.settle(Self.settle("req_2", cost: 40), metadata: services.asInternal)
        }
        let report = try await LedgerCheck.run(location: .directory(directory))
        #expect(report.ok && report.openHolds == 2 && report.pools == 3)  // key_1, usr_1, org_1

        let queue = try DatabaseQueue(path: directory + "/ledger.sqlite")
        try await queue.write { db in
            try db.execute(sql: "UPDATE pools SET reserved_micros = reserved_micros + 5 WHERE owner_id = 'org_1'")
        }
        let tampered = try await LedgerCheck.run(location: .directory(directory))
        #expect(!tampered.ok)
        #expect(tampered.violations == [
            .init(
                organizationID: "org_1", ownerType: Lumen_Common_V1_PrincipalType.organization.rawValue, ownerID: "org_1",
                reservedMicros: 1_005, openHoldsMicros: 1_000)
        ])
    }

    @Test("The ledger prices holds and settlements at the registry's prices; a model it cannot find is refused", arguments: TestStore.available)
    func ledgerPrices(store: TestStore) async throws {
        try await TestServices.run(store: store) { services in
            // A model created after the ledger started: asked of the registry once, then held.
            _ = try await services.registry.upsertModel(
                .with {
                    $0.model = .with {
                        $0.name = "priced-later"
                        $0.vendor = "v"
                        $0.maxOutputTokens = 100
                        $0.prices = .with {
                            $0.inputPerMillionMicros = 2_000_000
                            $0.cachedInputPerMillionMicros = 500_000
                            $0.cacheWritePerMillionMicros = 2_500_000
                            $0.outputPerMillionMicros = 8_000_000
                            $0.perRequestMicros = 7
                        }
                    }
                }, metadata: services.asInternal)
            var request = Self.reserve("req_p", estimate: 0)
            request.logicalModel = "priced-later"
            request.inputBoundTokens = 1_000
            request.outputBoundTokens = 100
            _ = try await services.ledger.reserve(request, metadata: services.asInternal)
            // The hold: 1,000 input tokens at the dearer of input and cache write (2.5), 100 × 8, + 7 micro-USD.
            #expect(try await Self.keyPool(services).reservedMicros == 3_307)
            let line = try await services.ledger.settle(
                .with {
                    $0.requestID = "req_p"
                    $0.inputTokens = 300
                    $0.cachedInputTokens = 200
                    $0.cacheWriteTokens = 400
                    $0.outputTokens = 50
                }, metadata: services.asInternal
            ).line
            // Cache writes at their own price: 300 × 2 + 200 × 0.5 + 400 × 2.5 + 50 × 8 + 7.
            #expect(line.costMicros == 300 * 2 + 100 + 1_000 + 50 * 8 + 7 && line.overrunMicros == 0)
            #expect(line.cacheWriteTokens == 400 && line.cachedInputTokens == 200 && line.inputTokens == 300)
            let totals = try await services.ledger.getKeyTotals(
                .with { $0.organizationID = "org_1"; $0.keyIds = ["key_1"] }, metadata: services.asInternal)
            #expect(totals.totals.first?.cacheWriteTokens == 400)
            var unknown = Self.reserve("req_u", estimate: 10)
            unknown.logicalModel = "no-such-model"
            #expect(await refusal { _ = try await services.ledger.reserve(unknown, metadata: services.asInternal) } == "notFound model_not_found")
            // Over the Meter stream too, and nothing was written.
            await #expect(throws: ServiceError.self) { try await services.ledgerService.localMeter.reserve(unknown) }
            #expect(try await Self.keyPool(services).reservedMicros == 0)
        }
    }

    @Test("BYOK requests hold nothing and charge nothing, but keep their line", arguments: TestStore.available)
    func byok(store: TestStore) async throws {
        try await TestServices.run(store: store) { services in
            _ = try await services.ledger.reserve(
                Self.reserve("req_b", estimate: 5_000, cap: 0, channel: .byok), metadata: services.asInternal)
            let line = try await services.ledger.settle(Self.settle("req_b", cost: 700), metadata: services.asInternal).line
            #expect(line.accessChannel == .byok)
            #expect(line.costMicros == 0)
            #expect(line.outputTokens == 20)
            let pool = try await Self.keyPool(services)
            #expect(pool.spentMicros == 0 && pool.reservedMicros == 0)
        }
    }

    @Test("Holds and settlements are internal: a management token is refused", arguments: TestStore.available)
    func internalOnly(store: TestStore) async throws {
        try await TestServices.run(store: store) { services in
            let tenant = try await services.tenant()
            await #expect {
                _ = try await services.ledger.reserve(
                    Self.reserve("req_x", organization: tenant.organizationID, estimate: 1), metadata: tenant.metadata)
            } throws: { error in
                (error as? RPCError)?.code == .permissionDenied
            }
        }
    }

    @Test("Bad reserves are refused with the field at fault and write nothing", arguments: TestStore.available)
    func invalidReserve(store: TestStore) async throws {
        try await TestServices.run(store: store) { services in
            var request = Self.reserve("req_bad", estimate: -1)  // a negative bound
            await #expect {
                _ = try await services.ledger.reserve(request, metadata: services.asInternal)
            } throws: { error in
                (error as? RPCError).map(reason(of:)) == "invalid_bound"
            }
            request = Self.reserve("req_bad", estimate: 1)
            request.accessChannel = .unspecified
            await #expect(throws: RPCError.self) {
                _ = try await services.ledger.reserve(request, metadata: services.asInternal)
            }
            let lines = try await services.ledger.listUsage(
                .with { $0.filter = .with { $0.organizationID = "org_1"; $0.keyID = "key_1" } }, metadata: services.asInternal)
            #expect(lines.lines.isEmpty)
            #expect(try await Self.keyPool(services).reservedMicros == 0)
        }
    }
}

@Suite("Prices, estimates and costs in micro-USD")
struct PricingTests {
    static let prices = Lumen_Registry_V1_Prices.with {
        $0.inputPerMillionMicros = 150_000  // $0.15 per million
        $0.cachedInputPerMillionMicros = 75_000
        $0.outputPerMillionMicros = 600_000  // $0.60 per million
    }

    @Test("Cost is Σ tokens × price ÷ 1e6, rounded once, half up")
    func cost() {
        // 1000 × 0.15 + 0 + 500 × 0.60 = 150 + 300 micro-USD.
        #expect(Pricing.cost(.init(input: 1_000, output: 500), at: Self.prices) == 450)
        // 7 × 0.15 + 3 × 0.075 + 2 × 0.6 = 1.05 + 0.225 + 1.2 = 2.475 → 2.
        #expect(Pricing.cost(.init(input: 7, cachedInput: 3, output: 2), at: Self.prices) == 2)
        // 10 × 0.15 = 1.5 → 2 (half up); 1 token → 0.15 → 0.
        #expect(Pricing.cost(.init(input: 10, output: 0), at: Self.prices) == 2)
        #expect(Pricing.cost(.init(input: 1, output: 0), at: Self.prices) == 0)
        // Cache writes at the input price unless the model names its own.
        #expect(Pricing.cost(.init(input: 0, cacheWrite: 1_000, output: 0), at: Self.prices) == 150)
        var cacheWrites = Self.prices
        cacheWrites.cacheWritePerMillionMicros = 187_500
        #expect(Pricing.cost(.init(input: 1_000, cacheWrite: 1_000, output: 0), at: cacheWrites) == 338)
        // A hold prices its input at the dearer of the two: cache writes here, input when they are cheaper.
        let bound = HoldBound(inputTokens: 1_000, outputTokens: 0)
        #expect(bound.cost(at: cacheWrites) == 188 && bound.cost(at: Self.prices) == 150)
        cacheWrites.cacheWritePerMillionMicros = 1
        #expect(bound.cost(at: cacheWrites) == 150)
        // Per-request prices add on top.
        var perRequest = Self.prices
        perRequest.perRequestMicros = 40_000
        #expect(Pricing.cost(.init(input: 0, output: 0), at: perRequest) == 40_000)
        // Absurd counts saturate instead of wrapping to a negative cost.
        #expect(Pricing.cost(.init(input: .max, output: .max), at: Self.prices) > 0)
    }

    @Test("Decimal input converts exactly: 0.1 + 0.2 is 0.3, six places at most, no floats, no junk")
    func decimalInput() throws {
        let tenth = try #require(USD.micros(parsing: "0.1"))
        let fifth = try #require(USD.micros(parsing: "0.2"))
        #expect(tenth + fifth == USD.micros(parsing: "0.3"))
        #expect(tenth + fifth == 300_000)
        #expect(USD.micros(Decimal(string: "0.1")!)! + USD.micros(Decimal(string: "0.2")!)! == 300_000)
        for (text, micros) in [
            ("12", Int64(12_000_000)), ("12.5", 12_500_000), ("-0.5", -500_000), ("+3", 3_000_000), ("0.000001", 1),
            ("100000", 100_000_000_000), ("0.123456", 123_456), ("007.10", 7_100_000),
        ] {
            #expect(USD.micros(parsing: text) == micros, "\(text)")
        }
        for text in ["", "-", ".5", "5.", "0.0000001", "1e3", "12abc", "1,5", " 1", "1.2.3", "NaN", "--1", "99999999999999"] {
            #expect(USD.micros(parsing: text) == nil, "\(text)")
        }
        #expect(USD.amount(300_000) == Decimal(string: "0.3"))
    }

    @Test("A hold bounds its request: every byte of text, the template allowance, attachments, and the most output for each choice")
    func holdBound() {
        let model = Lumen_Registry_V1_Model.with {
            $0.name = "m"
            $0.prices = Self.prices
            $0.maxOutputTokens = 1_000
            $0.maxAttachmentInputTokens = 500
        }
        let allowance = HoldBound.templateAllowance + 1  // the model's name, as sent upstream
        let plain = HoldBound(textBytes: 2_000, attachments: 0, maxOutputTokens: 100, model: model)
        #expect(plain == HoldBound(inputTokens: 2_000 + allowance, outputTokens: 100))
        // No max_tokens, or more than the model's most: the model's most.
        #expect(HoldBound(textBytes: 0, attachments: 0, maxOutputTokens: nil, model: model).outputTokens == 1_000)
        #expect(HoldBound(textBytes: 0, attachments: 0, maxOutputTokens: 5_000_000, model: model).outputTokens == 1_000)
        // `n` choices may each produce the most output; each attachment counts the model's ceiling.
        let images = HoldBound(textBytes: 10, attachments: 3, maxOutputTokens: 100, choices: 3, model: model)
        #expect(images == HoldBound(inputTokens: 10 + allowance + 1_500, outputTokens: 300))
        // The longest name a backend sends upstream counts.
        var renamed = model
        renamed.backends = [.with { $0.upstreamModel = String(repeating: "x", count: 40) }]
        #expect(HoldBound(textBytes: 0, attachments: 0, maxOutputTokens: 1, model: renamed).inputTokens == HoldBound.templateAllowance + 40)
        // Priced: input 150,000 and output 600,000 micro-USD per million tokens.
        #expect(plain.cost(at: Self.prices) == Pricing.cost(.init(input: 2_000 + allowance, output: 100), at: Self.prices))
        // Absurd counts cost the most, never wrap.
        #expect(HoldBound(textBytes: 1, attachments: Int64.max / 2, maxOutputTokens: 1, model: model).cost(at: Self.prices) > 0)
    }
}
