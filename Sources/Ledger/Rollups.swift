import Storage
import LumenAPI

/// Hourly and daily totals of settled usage lines (`usage_rollups`), and the queries that
/// answer billing and usage totals from them.
///
/// A settled line is added to the rollup of its key, hour and UTC day of `created_at`, model,
/// vendor, scene and channel in the transaction that settles it (`Book.flush` writes the
/// batch's sums). A time range is then answered as whole days from the daily rollups, whole
/// hours from the hourly ones, and only the partial hours at its two ends from raw lines —
/// at most two hours of one key, found through the `usage_by_key` index.
enum Rollups {
    static let hour: Int64 = 3_600_000
    static let day: Int64 = 86_400_000

    /// The identity of one rollup row, and the owner of its key (a key never changes owner,
    /// so the owner is written with the row and never merged).
    struct Key: Hashable {
        var organizationID: String
        var keyID: String
        var span: Int64
        var bucket: Int64
        var logicalModel: String
        var modelVendor: String
        var scene: Int
        var accessChannel: Int
        var ownerType: Int
        var ownerID: String
    }

    /// Sums of a group of settled lines.
    struct Totals: Equatable, Sendable {
        var requests: Int64 = 0
        var inputTokens: Int64 = 0
        var cachedInputTokens: Int64 = 0
        var cacheWriteTokens: Int64 = 0
        var outputTokens: Int64 = 0
        var costMicros: Int64 = 0

        mutating func add(_ other: Totals) {
            requests += other.requests
            inputTokens += other.inputTokens
            cachedInputTokens += other.cachedInputTokens
            cacheWriteTokens += other.cacheWriteTokens
            outputTokens += other.outputTokens
            costMicros += other.costMicros
        }
    }

    /// The rollup rows (hour and day) a settled line adds to.
    static func keys(of hold: Book.Hold) -> [Key] {
        [hour, day].map { span in
            Key(
                organizationID: hold.organizationID, keyID: hold.keyID, span: span,
                bucket: hold.createdAt - hold.createdAt % span, logicalModel: hold.logicalModel,
                modelVendor: hold.modelVendor, scene: hold.scene.rawValue, accessChannel: hold.accessChannel.rawValue,
                ownerType: hold.owner.type.rawValue, ownerID: hold.owner.id)
        }
    }

    /// How a half-open time range `[start, end)` is answered: whole days, whole hours, raw edges.
    struct Plan: Equatable {
        var days: Range<Int64>?
        var hours: [Range<Int64>] = []
        var raw: [Range<Int64>] = []
    }

    /// `range` starts at 0 or later (`UsageQuery` clamps it).
    static func plan(_ range: Range<Int64>) -> Plan {
        func down(_ time: Int64, _ span: Int64) -> Int64 { time - time % span }
        func up(_ time: Int64, _ span: Int64) -> Int64 { down(time + span - 1, span) }
        var plan = Plan()
        let (h0, h1) = (up(range.lowerBound, hour), down(range.upperBound, hour))
        guard h0 < h1 else {
            if !range.isEmpty { plan.raw = [range] }
            return plan
        }
        plan.raw = [range.lowerBound..<h0, h1..<range.upperBound].filter { !$0.isEmpty }
        let (d0, d1) = (up(range.lowerBound, day), down(range.upperBound, day))
        if d0 < d1 {
            plan.days = d0..<d1
            plan.hours = [h0..<d0, d1..<h1].filter { !$0.isEmpty }
        } else {
            plan.hours = [h0..<h1]
        }
        return plan
    }

    /// Settled totals by (model, vendor, scene, channel, UTC day) over a filter's time range.
    struct Group: Hashable {
        var logicalModel: String
        var modelVendor: String
        var scene: Int
        var accessChannel: Int
        var day: Int64
    }

    /// The settled lines matching `filter` within `range`, grouped, from rollups and raw edges.
    static func settled(_ db: any SQLSession, _ filter: UsageQuery, range: Range<Int64>) async throws -> [Group: Totals] {
        var groups: [Group: Totals] = [:]
        func collect(_ sql: String, _ arguments: [SQLValue]) async throws {
            for row in try await db.rows(sql, arguments) {
                let group = Group(
                    logicalModel: try row[0], modelVendor: try row[1], scene: try row[2], accessChannel: try row[3], day: try row[4])
                groups[group, default: Totals()].add(Totals(
                    requests: try row[5], inputTokens: try row[6], cachedInputTokens: try row[7], cacheWriteTokens: try row[10],
                    outputTokens: try row[8], costMicros: try row[9]))
            }
        }
        let (dimensions, dimensionArguments) = filter.dimensionsSQL
        let plan = plan(range)
        let rollupSQL = """
            SELECT logical_model, model_vendor, scene, access_channel, bucket - bucket % \(day), CAST(SUM(requests) AS BIGINT),
                CAST(SUM(input_tokens) AS BIGINT), CAST(SUM(cached_input_tokens) AS BIGINT), CAST(SUM(output_tokens) AS BIGINT),
                CAST(SUM(cost_micros) AS BIGINT), CAST(SUM(cache_write_tokens) AS BIGINT)
            FROM usage_rollups
            WHERE organization_id = ? AND key_id = ? AND span = ? AND bucket >= ? AND bucket < ?\(dimensions)
            GROUP BY 1, 2, 3, 4, 5
            """
        for (span, ranges) in [(day, plan.days.map { [$0] } ?? []), (hour, plan.hours)] {
            for range in ranges {
                let arguments: [SQLValue] = [
                    .text(filter.organizationID), .text(filter.keyID), .integer(span), .integer(range.lowerBound),
                    .integer(range.upperBound),
                ]
                try await collect(rollupSQL, arguments + dimensionArguments)
            }
        }
        let rawSQL = """
            SELECT logical_model, model_vendor, scene, access_channel, created_at - created_at % \(day), COUNT(*),
                CAST(SUM(input_tokens) AS BIGINT), CAST(SUM(cached_input_tokens) AS BIGINT), CAST(SUM(output_tokens) AS BIGINT),
                CAST(SUM(cost_micros) AS BIGINT), CAST(SUM(cache_write_tokens) AS BIGINT)
            FROM usage_lines
            WHERE organization_id = ? AND key_id = ? AND created_at >= ? AND created_at < ? AND status = 2\(dimensions)
            GROUP BY 1, 2, 3, 4, 5
            """
        for range in plan.raw {
            let arguments: [SQLValue] = [
                .text(filter.organizationID), .text(filter.keyID), .integer(range.lowerBound), .integer(range.upperBound),
            ]
            try await collect(rawSQL, arguments + dimensionArguments)
        }
        return groups
    }

    /// The number of open holds (pending lines) matching `filter` within `range` (`usage_holds`:
    /// the requests in flight, few).
    static func pendingCount(_ db: any SQLSession, _ filter: UsageQuery, range: Range<Int64>) async throws -> Int64 {
        let (dimensions, dimensionArguments) = filter.dimensionsSQL
        let arguments: [SQLValue] = [
            .integer(range.lowerBound), .integer(range.upperBound), .text(filter.organizationID), .text(filter.keyID),
        ]
        return try await db.rows(
            """
            SELECT COUNT(*) FROM usage_holds
            WHERE created_at >= ? AND created_at < ? AND organization_id = ? AND key_id = ?\(dimensions)
            """,
            arguments + dimensionArguments)[0][0]
    }
}
