import LumenAPI
import Storage

/// The metering's statements, declared once for both databases (`BulkStatement`): SQLite runs
/// each for one row as the operations go (`SQLiteLedgerTables`), PostgreSQL for a whole batch
/// at its commit (`PostgresLedgerBatch`). Each row is made here, from the value it stores.
enum LedgerStatements {
    // MARK: Lines

    /// A request's line, written once: when its hold is settled or released (`OpenHolds`).
    static let insertLine = BulkStatement.insert(
        into: "usage_lines",
        [
            .text("request_id"), .text("billing_transaction_id", nullable: true), .bigint("created_at"),
            .bigint("settled_at", nullable: true), .text("organization_id"), .text("key_id"), .bigint("owner_type"), .text("owner_id"),
            .text("logical_model"), .text("model_vendor"), .bigint("scene"), .bigint("access_channel"), .bigint("input_tokens"),
            .bigint("cached_input_tokens"), .bigint("output_tokens"), .bigint("cost_micros"), .bigint("latency_ms"), .bigint("status"),
            .boolean("estimated"), .boolean("expired"), .bigint("origin"), .bigint("overrun_micros"), .text("backend_id"),
            .bigint("cache_write_tokens"), .bigint("http_status"), .bigint("ttft_ms"), .text("error_code"),
        ])

    static func insertLine(_ line: UsageLineRecord) -> [SQLValue] {
        [
            .text(line.requestID), .of(line.billingTransactionID), .integer(line.createdAt), .of(line.settledAt),
            .text(line.organizationID), .text(line.keyID), .of(line.ownerType), .text(line.ownerID), .text(line.logicalModel),
            .text(line.modelVendor), .of(line.scene), .of(line.accessChannel), .integer(line.inputTokens),
            .integer(line.cachedInputTokens), .integer(line.outputTokens), .integer(line.costMicros), .integer(line.latencyMs),
            .of(line.status), .bool(line.estimated), .bool(line.expired), .of(line.origin), .integer(line.overrunMicros),
            .text(line.backendID), .integer(line.cacheWriteTokens), .of(line.httpStatus), .integer(line.ttftMs), .text(line.errorCode),
        ]
    }

    static let selectLine = BulkStatement.select(UsageLineRecord.columns, from: "usage_lines", key: [.text("request_id")])
    static let lineExists = BulkStatement.select("request_id", from: "usage_lines", key: [.text("request_id")])

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
