import Foundation
import GRPCCore
import Ledger
import LumenAPI
import LumenTesting
import RPCSupport
import SharedRules
import Testing

@Suite("Billing and usage totals from the hourly and daily rollups")
struct BillingTests {
    /// Settles `count` requests spread over about three days (every 53 minutes), alternating
    /// models, scenes and channels, plus one pending request at the end; returns the start.
    static func seed(_ services: TestServices, _ clock: ManualClock, count: Int = 80) async throws -> Int64 {
        let start = clock.nowMillis
        // Two models at a micro-dollar a token, which the ledger prices at.
        try await services.registerMeteredModels(["model-a", "model-b"])
        for index in 0..<count {
            let requestID = "req_\(index)"
            _ = try await services.ledger.reserve(
                .with {
                    $0.requestID = requestID
                    $0.organizationID = "org_1"
                    $0.keyID = "key_1"
                    $0.owner = .with { $0.type = .organization; $0.id = "org_1" }
                    $0.inputBoundTokens = 10_000
                    $0.logicalModel = index % 3 == 0 ? "model-a" : "model-b"
                    $0.modelVendor = index % 3 == 0 ? "Vendor A" : "Vendor B"
                    $0.scene = index % 4 == 0 ? .embedding : .chat
                    $0.accessChannel = index % 5 == 0 ? .byok : .platform
                }, metadata: services.asInternal)
            _ = try await services.ledger.settle(
                .with {
                    $0.requestID = requestID
                    $0.inputTokens = Int64(index)
                    $0.cachedInputTokens = Int64(index % 7)
                    $0.cacheWriteTokens = Int64(index % 5)
                    $0.outputTokens = Int64(2 * index + index * 37)
                }, metadata: services.asInternal)
            clock.advance(seconds: 53 * 60 + 7)
        }
        _ = try await services.ledger.reserve(
            .with {
                $0.requestID = "req_pending"
                $0.organizationID = "org_1"
                $0.keyID = "key_1"
                $0.owner = .with { $0.type = .organization; $0.id = "org_1" }
                $0.inputBoundTokens = 10_000
                $0.logicalModel = "model-a"
                $0.modelVendor = "Vendor A"
                $0.scene = .chat
                $0.accessChannel = .platform
            }, metadata: services.asInternal)
        return start
    }

    /// Every line of the filter, through ListUsage's pages.
    static func allLines(_ services: TestServices, _ filter: Lumen_Ledger_V1_UsageFilter) async throws -> (lines: [Lumen_Ledger_V1_UsageLine], total: Int64) {
        var lines: [Lumen_Ledger_V1_UsageLine] = []
        var page: Int32 = 1
        var total: Int64 = 0
        while true {
            let response = try await services.ledger.listUsage(
                .with { $0.filter = filter; $0.page = .with { $0.page = page; $0.limit = 100 } }, metadata: services.asInternal)
            lines += response.lines
            total = response.pageInfo.total
            guard response.pageInfo.hasMore_p else { break }
            page += 1
        }
        return (lines, total)
    }

    static func bucket(_ key: String, _ lines: [Lumen_Ledger_V1_UsageLine]) -> Lumen_Ledger_V1_BillingBucket {
        .with {
            $0.key = key
            $0.requests = Int64(lines.count)
            $0.inputTokens = lines.reduce(0) { $0 + $1.inputTokens }
            $0.cachedInputTokens = lines.reduce(0) { $0 + $1.cachedInputTokens }
            $0.cacheWriteTokens = lines.reduce(0) { $0 + $1.cacheWriteTokens }
            $0.outputTokens = lines.reduce(0) { $0 + $1.outputTokens }
            $0.costMicros = lines.reduce(0) { $0 + $1.costMicros }
        }
    }

    /// What billing must say about `lines`, computed line by line.
    static func expected(_ lines: [Lumen_Ledger_V1_UsageLine]) -> Lumen_Ledger_V1_GetBillingResponse {
        let settled = lines.filter { $0.status == .settled }
        func grouped(_ key: (Lumen_Ledger_V1_UsageLine) -> String) -> [Lumen_Ledger_V1_BillingBucket] {
            Dictionary(grouping: settled, by: key).sorted { $0.key < $1.key }.map { bucket($0.key, $0.value) }
        }
        return .with {
            $0.total = bucket("total", settled)
            $0.byModel = grouped(\.logicalModel)
            $0.byVendor = grouped(\.modelVendor)
            $0.byScene = grouped { $0.scene.publicName }
            $0.byAccessChannel = grouped { $0.accessChannel.publicName }
            $0.byDay = grouped { RFC3339.formatDay(millis: $0.createdAt.millis) }
        }
    }

    @Test("Billing over any range and filter equals the sum of its lines, and the usage total their count", arguments: TestStore.available)
    func billingMatchesLines(store: TestStore) async throws {
        let clock = ManualClock()
        try await TestServices.run(clock: clock.wallClock, store: store) { services in
            let start = try await Self.seed(services, clock)
            let hour: Int64 = 3_600_000
            let day: Int64 = 86_400_000
            // Open, partial-hour, whole-hour, multi-day and single-millisecond ranges.
            let ranges: [(Int64?, Int64?)] = [
                (nil, nil), (start, nil), (nil, start + 30 * hour + 17), (start + 1_234, start + 50 * hour - 1),
                (start + 2 * hour, start + 5 * hour - 1), (start + day / 2, start + 2 * day + 7 * 60_000),
                (start + 10 * hour + 60_000, start + 10 * hour + 120_000), (start + 53 * 60_000 + 7_000, start + 53 * 60_000 + 7_000),
                (start - 5 * day, start + 10 * day),
            ]
            let filters: [(inout Lumen_Ledger_V1_UsageFilter) -> Void] = [
                { _ in }, { $0.logicalModel = "model-a" }, { $0.scene = .embedding }, { $0.accessChannel = .byok },
                { $0.modelVendor = "Vendor B"; $0.scene = .chat },
            ]
            for (low, high) in ranges {
                for apply in filters {
                    var filter = Lumen_Ledger_V1_UsageFilter.with { $0.organizationID = "org_1"; $0.keyID = "key_1" }
                    if let low { filter.startTime = .init(millis: low) }
                    if let high { filter.endTime = .init(millis: high) }
                    apply(&filter)
                    let (lines, total) = try await Self.allLines(services, filter)
                    #expect(total == Int64(lines.count))
                    let billing = try await services.ledger.getBilling(.with { $0.filter = filter }, metadata: services.asInternal)
                    #expect(billing == Self.expected(lines), "range \(String(describing: low))…\(String(describing: high)), filter \(filter)")
                }
            }
            let everything = try await services.ledger.getBilling(
                .with { $0.filter = .with { $0.organizationID = "org_1"; $0.keyID = "key_1" } }, metadata: services.asInternal)
            #expect(everything.total.requests == 80)
            #expect(everything.byDay.count >= 3)
        }
    }

    @Test("Retention deletes old settled lines from /usage; billing keeps every figure", arguments: TestStore.available)
    func retention(store: TestStore) async throws {
        let clock = ManualClock()
        try await TestServices.run(clock: clock.wallClock, store: store) { services in
            let start = try await Self.seed(services, clock, count: 60)
            // A key whose one request failed, at the start: its line has no rollup, and goes too.
            let end = clock.nowMillis
            clock.advance(seconds: (start - end) / 1000)
            _ = try await services.ledger.reserve(
                .with {
                    $0.requestID = "req_failed"
                    $0.organizationID = "org_1"
                    $0.keyID = "key_2"
                    $0.owner = .with { $0.type = .organization; $0.id = "org_1" }
                    $0.inputBoundTokens = 100
                    $0.logicalModel = "model-a"
                    $0.accessChannel = .platform
                }, metadata: services.asInternal)
            _ = try await services.ledger.release(.with { $0.requestID = "req_failed" }, metadata: services.asInternal)
            clock.advance(seconds: (end - start) / 1000)
            let filter = Lumen_Ledger_V1_UsageFilter.with { $0.organizationID = "org_1"; $0.keyID = "key_1" }
            let before = try await services.ledger.getBilling(.with { $0.filter = filter }, metadata: services.asInternal)
            let (linesBefore, _) = try await Self.allLines(services, filter)

            // Keep one day: lines created before yesterday's UTC midnight go.
            let deleted = try await services.ledgerService.pruneUsage(retentionDays: 1)
            let cutoff = clock.nowMillis / 86_400_000 * 86_400_000 - 86_400_000
            let old = linesBefore.filter { $0.createdAt.millis < cutoff }
            #expect(deleted == old.count + 1 && old.count > 0)

            let (linesAfter, totalAfter) = try await Self.allLines(services, filter)
            #expect(totalAfter == Int64(linesAfter.count))
            #expect(linesAfter.map(\.requestID) == linesBefore.filter { $0.createdAt.millis >= cutoff }.map(\.requestID))
            #expect(linesAfter.contains { $0.requestID == "req_pending" })
            let after = try await services.ledger.getBilling(.with { $0.filter = filter }, metadata: services.asInternal)
            #expect(after == before)
            #expect(try await services.ledgerService.pruneUsage(retentionDays: 1) == 0)
        }
    }
}
