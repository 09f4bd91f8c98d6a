import Foundation
import GRDB
import LumenAPI
import RPCSupport

/// The ledger's tables as the metering reads and writes them, inside one batch's transaction
/// (`Metering`, `PoolAdministration`, `Book.flush`): the rules are written once, against this.
///
/// On SQLite (`SQLiteLedgerTables`) each call is a statement of the batch's transaction on the
/// writer. On PostgreSQL (`PostgresLedgerBatch`) the rows a batch reads are fetched before it
/// is applied and its writes are sent when it commits, a few statements for the whole batch.
protocol LedgerTables {
    /// The stored row of a pool, if any.
    func pool(_ key: Book.PoolKey) throws -> PoolRecord?
    /// Every pending usage line, as open holds by request id.
    func pendingHolds() throws -> [String: Book.Hold]
    /// The usage line of a request, if any.
    func line(_ requestID: String) throws -> UsageLineRecord?
    /// The grant made with an idempotency key, if any.
    func grant(organizationID: String, idempotencyKey: String) throws -> GrantRow?
    /// Inserts a pending line; throws `LineExists` when the request has a line already.
    func insertLine(_ line: UsageLineRecord) throws
    /// Settles the pending line of `hold`.
    func settleLine(_ requestID: String, hold: Book.Hold, _ settlement: Settlement) throws
    /// Deletes a pending line (a released hold).
    func deleteLine(_ requestID: String) throws
    func insertGrant(_ grant: GrantRow) throws
    /// Inserts or replaces pools.
    func writePools(_ pools: [PoolRecord]) throws
    /// Adds a batch's sums to the rollups and to the key, owner and origin totals.
    func addRollups(_ deltas: [Rollups.Key: Rollups.Totals]) throws
    func addKeyTotals(_ deltas: [KeyTotals.Key: KeyTotals.Delta]) throws
    func addOwnerTotals(_ deltas: [OwnerTotals.Key: KeyTotals.Delta]) throws
    func addOriginTotals(_ deltas: [OwnerTotals.OriginKey: KeyTotals.Delta]) throws
}

/// What settling writes on a line.
struct Settlement {
    var billingTransactionID: String
    var settledAt: Int64
    var inputTokens: Int64
    var cachedInputTokens: Int64
    var outputTokens: Int64
    var costMicros: Int64
    var latencyMs: Int64
    var estimated: Bool
    var expired: Bool
    /// What `costMicros` is above the hold's estimate (0 when within it).
    var overrunMicros: Int64 = 0
    /// The backend that answered, as reported.
    var backendID: String = ""
}

/// The request has a usage line already (it was settled).
struct LineExists: Error {}

extension UsageLineRecord {
    /// The pending line of a new hold.
    init(pending hold: Book.Hold, requestID: String) {
        self.init(
            requestID: requestID, billingTransactionID: nil, createdAt: hold.createdAt, settledAt: nil,
            organizationID: hold.organizationID, keyID: hold.keyID, ownerType: hold.owner.type.rawValue, ownerID: hold.owner.id,
            logicalModel: hold.logicalModel, modelVendor: hold.modelVendor, scene: hold.scene.rawValue,
            accessChannel: hold.accessChannel.rawValue, inputTokens: 0, cachedInputTokens: 0, outputTokens: 0,
            costMicros: hold.estimateMicros, latencyMs: 0, status: Lumen_Ledger_V1_UsageStatus.pending.rawValue, estimated: false,
            expired: false, origin: hold.origin.rawValue)
    }

    /// The line once `settlement` applies.
    func settled(_ settlement: Settlement) -> UsageLineRecord {
        var line = self
        line.billingTransactionID = settlement.billingTransactionID
        line.settledAt = settlement.settledAt
        line.inputTokens = settlement.inputTokens
        line.cachedInputTokens = settlement.cachedInputTokens
        line.outputTokens = settlement.outputTokens
        line.costMicros = settlement.costMicros
        line.latencyMs = settlement.latencyMs
        line.status = Lumen_Ledger_V1_UsageStatus.settled.rawValue
        line.estimated = settlement.estimated
        line.expired = settlement.expired
        line.overrunMicros = settlement.overrunMicros
        line.backendID = settlement.backendID
        return line
    }
}

extension Book.Hold {
    /// The hold of a pending line.
    init(_ line: UsageLineRecord) {
        self.init(
            organizationID: line.organizationID, keyID: line.keyID, owner: LedgerStore.principal(type: line.ownerType, id: line.ownerID),
            logicalModel: line.logicalModel, modelVendor: line.modelVendor, scene: .init(rawValue: line.scene) ?? .unspecified,
            accessChannel: .init(rawValue: line.accessChannel) ?? .unspecified, estimateMicros: line.costMicros,
            createdAt: line.createdAt, origin: .init(rawValue: line.origin) ?? .api)
    }
}

/// The metering's statements on the SQLite writer, inside the group commit's transaction:
/// each one cached, prepared once.
struct SQLiteLedgerTables: LedgerTables {
    let db: Database

    func pool(_ key: Book.PoolKey) throws -> PoolRecord? {
        try PoolRecord.fetch(db, key)
    }

    func pendingHolds() throws -> [String: Book.Hold] {
        let rows = try Row.fetchCursor(
            db,
            sql: """
                SELECT request_id, organization_id, key_id, owner_type, owner_id, logical_model, model_vendor,
                    scene, access_channel, cost_micros, created_at, origin
                FROM usage_lines WHERE status = 1
                """)  // 1: pending; written out so that the partial index `usage_pending` applies
        var loaded: [String: Book.Hold] = [:]
        while let row = try rows.next() {
            loaded[row[0]] = Book.Hold(
                organizationID: row[1], keyID: row[2], owner: LedgerStore.principal(type: row[3], id: row[4]),
                logicalModel: row[5], modelVendor: row[6], scene: .init(rawValue: row[7]) ?? .unspecified,
                accessChannel: .init(rawValue: row[8]) ?? .unspecified, estimateMicros: row[9], createdAt: row[10],
                origin: .init(rawValue: row[11]) ?? .api)
        }
        return loaded
    }

    func line(_ requestID: String) throws -> UsageLineRecord? {
        try UsageLineRecord.fetchOne(db, key: requestID)
    }

    func grant(organizationID: String, idempotencyKey: String) throws -> GrantRow? {
        try GrantRow.filter(Column("organization_id") == organizationID && Column("idempotency_key") == idempotencyKey).fetchOne(db)
    }

    func insertLine(_ line: UsageLineRecord) throws {
        do {
            try db.cachedStatement(
                sql: """
                    INSERT INTO usage_lines (request_id, created_at, organization_id, key_id, owner_type, owner_id,
                        logical_model, model_vendor, scene, access_channel, cost_micros, status, origin)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """
            ).execute(arguments: [
                line.requestID, line.createdAt, line.organizationID, line.keyID, line.ownerType, line.ownerID,
                line.logicalModel, line.modelVendor, line.scene, line.accessChannel, line.costMicros, line.status, line.origin,
            ])
        } catch let error as DatabaseError where error.extendedResultCode == .SQLITE_CONSTRAINT_PRIMARYKEY {
            throw LineExists()
        }
    }

    func settleLine(_ requestID: String, hold: Book.Hold, _ settlement: Settlement) throws {
        try db.cachedStatement(
            sql: """
                UPDATE usage_lines SET billing_transaction_id = ?, settled_at = ?, input_tokens = ?,
                    cached_input_tokens = ?, output_tokens = ?, cost_micros = ?, latency_ms = ?, status = ?, estimated = ?,
                    expired = ?, overrun_micros = ?, backend_id = ?
                WHERE request_id = ?
                """
        ).execute(arguments: [
            settlement.billingTransactionID, settlement.settledAt, settlement.inputTokens, settlement.cachedInputTokens,
            settlement.outputTokens, settlement.costMicros, settlement.latencyMs, Lumen_Ledger_V1_UsageStatus.settled.rawValue,
            settlement.estimated, settlement.expired, settlement.overrunMicros, settlement.backendID, requestID,
        ])
    }

    func deleteLine(_ requestID: String) throws {
        try db.cachedStatement(sql: "DELETE FROM usage_lines WHERE request_id = ?").execute(arguments: [requestID])
    }

    func insertGrant(_ grant: GrantRow) throws {
        try grant.insert(db)
    }

    func writePools(_ pools: [PoolRecord]) throws {
        let statement = try db.cachedStatement(
            sql: """
                INSERT INTO pools (organization_id, owner_type, owner_id, mode, balance_micros, reserved_micros,
                    limit_micros, refill_per_hour_micros, refilled_at, spent_micros, granted_micros)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT (organization_id, owner_type, owner_id) DO UPDATE SET
                    mode = excluded.mode, balance_micros = excluded.balance_micros,
                    reserved_micros = excluded.reserved_micros, limit_micros = excluded.limit_micros,
                    refill_per_hour_micros = excluded.refill_per_hour_micros, refilled_at = excluded.refilled_at,
                    spent_micros = excluded.spent_micros, granted_micros = excluded.granted_micros
                """)
        for pool in pools {
            try statement.execute(arguments: [
                pool.organizationID, pool.ownerType, pool.ownerID, pool.mode, pool.balanceMicros, pool.reservedMicros,
                pool.limitMicros, pool.refillPerHourMicros, pool.refilledAt, pool.spentMicros, pool.grantedMicros,
            ])
        }
    }

    func addRollups(_ deltas: [Rollups.Key: Rollups.Totals]) throws {
        let statement = try db.cachedStatement(
            sql: """
                INSERT INTO usage_rollups (organization_id, key_id, span, bucket, logical_model, model_vendor, scene,
                    access_channel, requests, input_tokens, cached_input_tokens, output_tokens, cost_micros)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT DO UPDATE SET
                    requests = requests + excluded.requests, input_tokens = input_tokens + excluded.input_tokens,
                    cached_input_tokens = cached_input_tokens + excluded.cached_input_tokens,
                    output_tokens = output_tokens + excluded.output_tokens, cost_micros = cost_micros + excluded.cost_micros
                """)
        for (key, totals) in deltas {
            try statement.execute(arguments: [
                key.organizationID, key.keyID, key.span, key.bucket, key.logicalModel, key.modelVendor, key.scene,
                key.accessChannel, totals.requests, totals.inputTokens, totals.cachedInputTokens, totals.outputTokens,
                totals.costMicros,
            ])
        }
    }

    func addKeyTotals(_ deltas: [KeyTotals.Key: KeyTotals.Delta]) throws {
        let statement = try db.cachedStatement(
            sql: """
                INSERT INTO key_totals (organization_id, key_id, requests, input_tokens, cached_input_tokens,
                    output_tokens, cost_micros, last_used_at)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT DO UPDATE SET
                    requests = requests + excluded.requests, input_tokens = input_tokens + excluded.input_tokens,
                    cached_input_tokens = cached_input_tokens + excluded.cached_input_tokens,
                    output_tokens = output_tokens + excluded.output_tokens, cost_micros = cost_micros + excluded.cost_micros,
                    last_used_at = max(coalesce(last_used_at, 0), excluded.last_used_at)
                """)
        for (key, delta) in deltas {
            let totals = delta.totals
            try statement.execute(arguments: [
                key.organizationID, key.keyID, totals.requests, totals.inputTokens, totals.cachedInputTokens,
                totals.outputTokens, totals.costMicros, delta.lastUsedAt,
            ])
        }
    }

    func addOwnerTotals(_ deltas: [OwnerTotals.Key: KeyTotals.Delta]) throws { try addTotals(deltas) }

    func addOriginTotals(_ deltas: [OwnerTotals.OriginKey: KeyTotals.Delta]) throws { try addTotals(deltas) }

    private func addTotals<K: OwnerTotals.RowKey>(_ deltas: [K: KeyTotals.Delta]) throws {
        let statement = try db.cachedStatement(
            sql: """
                INSERT INTO \(K.table) (organization_id, owner_type, owner_id, \(K.column), requests, input_tokens,
                    cached_input_tokens, output_tokens, cost_micros, last_used_at)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT DO UPDATE SET
                    requests = requests + excluded.requests, input_tokens = input_tokens + excluded.input_tokens,
                    cached_input_tokens = cached_input_tokens + excluded.cached_input_tokens,
                    output_tokens = output_tokens + excluded.output_tokens, cost_micros = cost_micros + excluded.cost_micros,
                    last_used_at = max(last_used_at, excluded.last_used_at)
                """)
        for (key, delta) in deltas {
            let totals = delta.totals
            try statement.execute(arguments: [
                key.organizationID, key.ownerType, key.ownerID, key.split, totals.requests, totals.inputTokens,
                totals.cachedInputTokens, totals.outputTokens, totals.costMicros, delta.lastUsedAt,
            ])
        }
    }
}
