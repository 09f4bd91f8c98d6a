import LumenAPI
import Storage

/// The metering's statements, declared once for both databases (`BulkStatement`): SQLite runs
/// each for one row as the operations go (`SQLiteLedgerTables`), PostgreSQL for a whole batch
/// at its commit (`PostgresLedgerBatch`). Each row is made here, from the value it stores.
enum LedgerStatements {
    // MARK: Lines

    static let insertLine = BulkStatement.insert(
        into: "usage_lines",
        [
            .text("request_id"), .bigint("created_at"), .text("organization_id"), .text("key_id"), .bigint("owner_type"),
            .text("owner_id"), .text("logical_model"), .text("model_vendor"), .bigint("scene"), .bigint("access_channel"),
            .bigint("cost_micros"), .bigint("status"), .bigint("origin"),
        ])

    static func insertLine(_ line: UsageLineRecord) -> [SQLValue] {
        [
            .text(line.requestID), .integer(line.createdAt), .text(line.organizationID), .text(line.keyID), .of(line.ownerType),
            .text(line.ownerID), .text(line.logicalModel), .text(line.modelVendor), .of(line.scene), .of(line.accessChannel),
            .integer(line.costMicros), .of(line.status), .of(line.origin),
        ]
    }

    static let settleLine = BulkStatement.update(
        "usage_lines", key: [.text("request_id")],
        set: [
            .text("billing_transaction_id"), .bigint("settled_at"), .bigint("input_tokens"), .bigint("cached_input_tokens"),
            .bigint("output_tokens"), .bigint("cost_micros"), .bigint("latency_ms"), .bigint("status"), .boolean("estimated"),
            .boolean("expired"), .bigint("overrun_micros"), .text("backend_id"), .bigint("cache_write_tokens"),
            .bigint("http_status"), .bigint("ttft_ms"),
        ])

    static func settleLine(_ requestID: String, _ settlement: Settlement) -> [SQLValue] {
        [
            .text(requestID), .text(settlement.billingTransactionID), .integer(settlement.settledAt),
            .integer(settlement.inputTokens), .integer(settlement.cachedInputTokens), .integer(settlement.outputTokens),
            .integer(settlement.costMicros), .integer(settlement.latencyMs), .of(Lumen_Ledger_V1_UsageStatus.settled.rawValue),
            .bool(settlement.estimated), .bool(settlement.expired), .integer(settlement.overrunMicros), .text(settlement.backendID),
            .integer(settlement.cacheWriteTokens), .of(settlement.httpStatus), .integer(settlement.ttftMs),
        ]
    }

    static let failLine = BulkStatement.update(
        "usage_lines", key: [.text("request_id")],
        set: [
            .bigint("settled_at"), .bigint("cost_micros"), .bigint("latency_ms"), .bigint("status"), .bigint("http_status"),
            .text("error_code"), .text("backend_id"),
        ])

    static func failLine(_ requestID: String, _ failure: Failure) -> [SQLValue] {
        [
            .text(requestID), .integer(failure.settledAt), .integer(0), .integer(failure.latencyMs),
            .of(Lumen_Ledger_V1_UsageStatus.failed.rawValue), .of(failure.httpStatus), .text(failure.errorCode), .text(failure.backendID),
        ]
    }

    static let selectLine = BulkStatement.select(UsageLineRecord.columns, from: "usage_lines", key: [.text("request_id")])

    /// Every pending line (status 1, written out so that the partial index `usage_pending` applies).
    static let pendingLines = "SELECT \(UsageLineRecord.columns) FROM usage_lines WHERE status = 1"

    // MARK: Grants

    static let insertGrant = BulkStatement.insert(
        into: "grants",
        [
            .text("id"), .text("organization_id"), .bigint("owner_type"), .text("owner_id"), .bigint("amount_micros"),
            .text("reason"), .text("granted_by_user_id"), .text("idempotency_key", nullable: true), .bigint("created_at"),
        ])

    static func insertGrant(_ grant: GrantRow) -> [SQLValue] {
        [
            .text(grant.id), .text(grant.organizationID), .of(grant.ownerType), .text(grant.ownerID), .integer(grant.amountMicros),
            .text(grant.reason), .text(grant.grantedByUserID), .of(grant.idempotencyKey), .integer(grant.createdAt),
        ]
    }

    static let selectGrant = BulkStatement.select(
        GrantRow.columns, from: "grants", key: [.text("organization_id"), .text("idempotency_key")])

    // MARK: Pools

    static let poolKey: [BulkStatement.Column] = [.text("organization_id"), .bigint("owner_type"), .text("owner_id")]

    static func poolKey(_ key: Book.PoolKey) -> [SQLValue] { [.text(key.organizationID), .of(key.ownerType), .text(key.ownerID)] }

    /// Inserts or replaces a pool.
    static let writePool = BulkStatement.insert(
        into: "pools",
        poolKey + [
            .bigint("mode"), .bigint("balance_micros"), .bigint("reserved_micros"), .bigint("limit_micros", nullable: true),
            .bigint("refill_per_hour_micros"), .bigint("refilled_at"), .bigint("spent_micros"), .bigint("granted_micros"),
        ], onConflict: poolKey.map(\.name),
        merge: Dictionary(
            uniqueKeysWithValues: [
                "mode", "balance_micros", "reserved_micros", "limit_micros", "refill_per_hour_micros", "refilled_at",
                "spent_micros", "granted_micros",
            ].map { ($0, .replace) }))

    static func writePool(_ pool: PoolRecord) -> [SQLValue] {
        [
            .text(pool.organizationID), .of(pool.ownerType), .text(pool.ownerID), .of(pool.mode), .integer(pool.balanceMicros),
            .integer(pool.reservedMicros), .of(pool.limitMicros), .integer(pool.refillPerHourMicros), .integer(pool.refilledAt),
            .integer(pool.spentMicros), .integer(pool.grantedMicros),
        ]
    }

    static let selectPool = BulkStatement.select(PoolRecord.columns, from: "pools", key: poolKey)

    // MARK: Rollups and totals

    /// The columns every rollup and total adds to.
    static let sums: [BulkStatement.Column] = [
        .bigint("requests"), .bigint("input_tokens"), .bigint("cached_input_tokens"), .bigint("output_tokens"), .bigint("cost_micros"),
        .bigint("cache_write_tokens"),
    ]

    static let added = Dictionary(uniqueKeysWithValues: sums.map { ($0.name, BulkStatement.Merge.add) })

    static func sums(_ totals: Rollups.Totals) -> [SQLValue] {
        [
            .integer(totals.requests), .integer(totals.inputTokens), .integer(totals.cachedInputTokens),
            .integer(totals.outputTokens), .integer(totals.costMicros), .integer(totals.cacheWriteTokens),
        ]
    }

    static let addRollup: BulkStatement = {
        let key: [BulkStatement.Column] = [
            .text("organization_id"), .text("key_id"), .bigint("span"), .bigint("bucket"), .text("logical_model"),
            .text("model_vendor"), .bigint("scene"), .bigint("access_channel"),
        ]
        // The key's owner is written with a new row and never changes.
        let owner: [BulkStatement.Column] = [.bigint("owner_type"), .text("owner_id")]
        return .insert(into: "usage_rollups", key + sums + owner, onConflict: key.map(\.name), merge: added)
    }()

    static func addRollup(_ key: Rollups.Key, _ totals: Rollups.Totals) -> [SQLValue] {
        [
            .text(key.organizationID), .text(key.keyID), .integer(key.span), .integer(key.bucket), .text(key.logicalModel),
            .text(key.modelVendor), .of(key.scene), .of(key.accessChannel),
        ] + sums(totals) + [.of(key.ownerType), .text(key.ownerID)]
    }

    /// Totals with the time of their latest line, kept as the greatest.
    static func addTotals(_ table: String, key: [BulkStatement.Column]) -> BulkStatement {
        var merge = added
        merge["last_used_at"] = .greatest
        return .insert(into: table, key + sums + [.bigint("last_used_at")], onConflict: key.map(\.name), merge: merge)
    }

    static func addTotals(_ key: [SQLValue], _ delta: KeyTotals.Delta) -> [SQLValue] {
        key + sums(delta.totals) + [.integer(delta.lastUsedAt)]
    }

    static let addKeyTotals = addTotals("key_totals", key: [.text("organization_id"), .text("key_id")])
    static let addOwnerModelTotals = addTotals(
        "owner_model_totals", key: [.text("organization_id"), .bigint("owner_type"), .text("owner_id"), .text("logical_model")])
    static let addOwnerOriginTotals = addTotals(
        "owner_origin_totals", key: [.text("organization_id"), .bigint("owner_type"), .text("owner_id"), .bigint("origin")])

    static func keyTotalsKey(_ key: KeyTotals.Key) -> [SQLValue] { [.text(key.organizationID), .text(key.keyID)] }

    static func ownerKey(_ key: OwnerTotals.Key) -> [SQLValue] {
        [.text(key.organizationID), .of(key.ownerType), .text(key.ownerID), .text(key.logicalModel)]
    }

    static func originKey(_ key: OwnerTotals.OriginKey) -> [SQLValue] {
        [.text(key.organizationID), .of(key.ownerType), .text(key.ownerID), .of(key.origin)]
    }
}
