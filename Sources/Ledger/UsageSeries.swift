import LumenAPI
import RPCSupport
import SharedRules
import Storage

/// Usage over time (`GetUsageSeries`): settled sums per UTC day and model, and the keys and
/// owners that spent most, for an organisation, one owner's keys, or one model — read from the
/// daily rollups alone, through `usage_rollups_by_day` or `usage_rollups_by_owner`, so a chart
/// costs the same whatever the number of lines.
struct UsageSeries: Sendable {
    let organizationID: String
    /// A user or a client, or nil for the whole organisation.
    let owner: Lumen_Common_V1_PrincipalRef?
    let logicalModel: String?
    /// The window as day buckets, `[first day, the day after today)`.
    let window: Range<Int64>
    let top: Int

    /// - Throws: INVALID_ARGUMENT naming the field at fault: `invalid_days` (not 0–366),
    ///   `invalid_top` (not 0–100), `invalid_owner` (not a user or a client), `invalid_logical_model`.
    init(_ request: Lumen_Ledger_V1_GetUsageSeriesRequest, organizationID: String, now: Int64) throws {
        guard (0...366).contains(request.days) else {
            throw ServiceError.invalid("invalid_days", "days must be from 1 to 366", param: "days")
        }
        guard (0...100).contains(request.top) else {
            throw ServiceError.invalid("invalid_top", "top must be from 0 to 100", param: "top")
        }
        if request.hasOwner {
            guard request.owner.type == .user || request.owner.type == .client, !request.owner.id.isEmpty else {
                throw ServiceError.invalid("invalid_owner", "owner must be a user or a client", param: "owner")
            }
        }
        guard request.logicalModel.count <= 100 else {
            throw ServiceError.invalid("invalid_logical_model", "logical_model is at most 100 characters", param: "logical_model")
        }
        self.organizationID = organizationID
        self.owner = request.hasOwner ? request.owner : nil
        self.logicalModel = request.logicalModel.isEmpty ? nil : request.logicalModel
        let days = Int64(request.days == 0 ? 30 : request.days)
        let today = now - now % Rollups.day
        self.window = (today - (days - 1) * Rollups.day)..<(today + Rollups.day)
        self.top = Int(request.top)
    }

    /// v12: each rollup row names its key's owner (read from the key's lines; a key none of whose
    /// lines is kept any more stays unspecified), and the indexes a window of days is read through.
    static func migration(integer: String, text: String) -> [String] {
        [
            "ALTER TABLE usage_rollups ADD COLUMN owner_type \(integer) NOT NULL DEFAULT 0",
            "ALTER TABLE usage_rollups ADD COLUMN owner_id \(text) NOT NULL DEFAULT ''",
            """
            UPDATE usage_rollups SET (owner_type, owner_id) = (
                SELECT line.owner_type, line.owner_id FROM usage_lines AS line
                WHERE line.organization_id = usage_rollups.organization_id AND line.key_id = usage_rollups.key_id LIMIT 1)
            WHERE EXISTS (
                SELECT 1 FROM usage_lines AS line
                WHERE line.organization_id = usage_rollups.organization_id AND line.key_id = usage_rollups.key_id)
            """,
            "CREATE INDEX usage_rollups_by_day ON usage_rollups(organization_id, span, bucket)",
            "CREATE INDEX usage_rollups_by_owner ON usage_rollups(organization_id, owner_type, owner_id, span, bucket)",
        ]
    }

    /// The sums' columns, in the order `sums(_:from:)` reads them.
    private static let sumsSQL = """
        CAST(SUM(requests) AS BIGINT), CAST(SUM(input_tokens) AS BIGINT), CAST(SUM(cached_input_tokens) AS BIGINT),
        CAST(SUM(cache_write_tokens) AS BIGINT), CAST(SUM(output_tokens) AS BIGINT), CAST(SUM(cost_micros) AS BIGINT)
        """

    /// Most cost first, then most tokens; the group's own columns break ties.
    private static let spentMost = """
        SUM(cost_micros) DESC, SUM(input_tokens) + SUM(cached_input_tokens) + SUM(cache_write_tokens) + SUM(output_tokens) DESC
        """

    private static func sums(_ row: SQLRow, from first: Int) throws -> Lumen_Ledger_V1_UsageSums {
        var sums = Lumen_Ledger_V1_UsageSums()
        sums.requests = try row[first]
        sums.inputTokens = try row[first + 1]
        sums.cachedInputTokens = try row[first + 2]
        sums.cacheWriteTokens = try row[first + 3]
        sums.outputTokens = try row[first + 4]
        sums.costMicros = try row[first + 5]
        return sums
    }

    /// The window's rows: the WHERE clause and its arguments.
    private var condition: (String, [SQLValue]) {
        var sql = "organization_id = ?"
        var arguments: [SQLValue] = [.text(organizationID)]
        if let owner {
            sql += " AND owner_type = ? AND owner_id = ?"
            arguments += [.of(owner.type.rawValue), .text(owner.id)]
        }
        sql += " AND span = ? AND bucket >= ? AND bucket < ?"
        arguments += [.integer(Rollups.day), .integer(window.lowerBound), .integer(window.upperBound)]
        if let logicalModel {
            sql += " AND logical_model = ?"
            arguments.append(.text(logicalModel))
        }
        return (sql, arguments)
    }

    func fetch(_ db: any SQLSession) async throws -> Lumen_Ledger_V1_GetUsageSeriesResponse {
        let (condition, arguments) = condition
        var response = Lumen_Ledger_V1_GetUsageSeriesResponse()
        response.startDay = RFC3339.formatDay(millis: window.lowerBound)
        response.endDay = RFC3339.formatDay(millis: window.upperBound - Rollups.day)
        response.points = try await db.rows(
            """
            SELECT bucket, logical_model, \(Self.sumsSQL) FROM usage_rollups WHERE \(condition)
            GROUP BY bucket, logical_model ORDER BY bucket, logical_model
            """, arguments
        ).map { row in
            var point = Lumen_Ledger_V1_UsageSeriesPoint()
            point.day = RFC3339.formatDay(millis: try row[0])
            point.logicalModel = try row[1]
            point.sums = try Self.sums(row, from: 2)
            return point
        }
        response.total = response.points.reduce(into: Lumen_Ledger_V1_UsageSums()) { $0.add($1.sums) }
        guard top > 0 else { return response }
        response.topKeys = try await db.rows(
            """
            SELECT key_id, \(Self.sumsSQL) FROM usage_rollups WHERE \(condition)
            GROUP BY key_id ORDER BY \(Self.spentMost), key_id LIMIT ?
            """, arguments + [.of(top)]
        ).map { row in
            var leader = Lumen_Ledger_V1_UsageSeriesLeader()
            leader.principal = LedgerStore.principal(type: Lumen_Common_V1_PrincipalType.key.rawValue, id: try row[0])
            leader.sums = try Self.sums(row, from: 1)
            return leader
        }
        guard owner == nil else { return response }
        response.topOwners = try await db.rows(
            """
            SELECT owner_type, owner_id, \(Self.sumsSQL) FROM usage_rollups WHERE \(condition)
            GROUP BY owner_type, owner_id ORDER BY \(Self.spentMost), owner_type, owner_id LIMIT ?
            """, arguments + [.of(top)]
        ).map { row in
            var leader = Lumen_Ledger_V1_UsageSeriesLeader()
            leader.principal = LedgerStore.principal(type: try row[0], id: try row[1])
            leader.sums = try Self.sums(row, from: 2)
            return leader
        }
        return response
    }
}

extension Lumen_Ledger_V1_UsageSums {
    mutating func add(_ other: Self) {
        requests += other.requests
        inputTokens += other.inputTokens
        cachedInputTokens += other.cachedInputTokens
        cacheWriteTokens += other.cacheWriteTokens
        outputTokens += other.outputTokens
        costMicros += other.costMicros
    }
}
