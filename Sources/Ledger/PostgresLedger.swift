import Foundation
import Logging
import LumenAPI
import PostgresNIO
import RPCSupport
import Storage

/// The ledger in the `ledger` schema of a PostgreSQL database.
///
/// One writer: the process that claims the schema (`PostgresServiceDatabase.claim`) is the only
/// one that writes it, so the `Book` in its memory stays the truth about open holds and pools,
/// as on SQLite. The group commit is the same; a batch is one transaction: the rows its
/// operations will read (their pools, the lines of requests without an open hold, grants by
/// idempotency key) are fetched first, in three queries; the operations are applied to the book
/// and to a `PostgresLedgerBatch`, which keeps their writes; those go out as a few statements
/// over arrays (lines inserted, settled, deleted; pools, rollups and totals upserted), then
/// the commit. A batch that fails rolls back whole and the book is reset, as on SQLite.
final class PostgresLedger: Sendable {
    let database: PostgresServiceDatabase
    /// The schema's own pool (`ledger` first on the search path), the batches' and the reads'.
    let client: PostgresClient
    /// Reads (usage, billing, totals, the invariant check) and retention.
    let tables: PostgresStore
    let logger: Logger

    init(database: PostgresServiceDatabase, logger: Logger) async throws {
        try await database.migrate(schema: "ledger", LedgerStore.migrations)
        self.database = database
        self.tables = PostgresStore(database: database, schema: "ledger", logger: logger)
        self.client = tables.client
        self.logger = logger
    }

    /// The SQLite migrations by the same names, in PostgreSQL's dialect. The backfills of
    /// v4–v7 (rollups and totals computed from lines written before them) have nothing to do
    /// on PostgreSQL, where every ledger starts at the latest schema: they are left out.

    // MARK: - A batch

    /// Writes one batch of the group commit: fetches what its operations read, applies them to
    /// `book` at one time `now`, flushes the book, and sends the writes in one transaction.
    /// The book is reset when the batch fails, and told of the commit when it succeeds.
    func write(
        _ operations: [Metering.Operation], book: Book, now: Int64
    ) async -> Result<[Result<Metering.Outcome, any Error>], any Error> {
        do {
            let outcomes = try await PostgresServiceDatabase.transaction(on: client, logger: logger) { [logger] connection in
                let batch = try await Self.prefetch(operations, book: book, now: now, connection: connection, logger: logger)
                let outcomes = operations.map { operation -> Result<Metering.Outcome, any Error> in
                    Result { try Metering.apply(batch, book, operation, now: now) }
                }
                try book.flush(batch)
                try await batch.send(connection, logger: logger)
                return outcomes
            }
            book.committed()
            return .success(outcomes)
        } catch {
            book.reset()
            return .failure(error)
        }
    }

    /// Reads, in three queries at most (four on the first batch, which reads the open holds),
    /// every row `operations` will ask `LedgerTables` for.
    static func prefetch(
        _ operations: [Metering.Operation], book: Book, now: Int64, connection: PostgresConnection, logger: Logger
    ) async throws -> PostgresLedgerBatch {
        let batch = PostgresLedgerBatch()
        var loaded: [String: Book.Hold]?
        if !book.hasHolds {
            var holds: [String: Book.Hold] = [:]
            for line in try await lines(connection, "SELECT \(UsageLineRecord.columns) FROM usage_lines WHERE status = 1", logger: logger) {
                holds[line.requestID] = Book.Hold(line)
            }
            loaded = holds
            batch.pending = holds
        }
        func hold(_ requestID: String) -> Book.Hold? { loaded.map { $0[requestID] } ?? book.keptHold(requestID) }
        var keys = Set<Book.PoolKey>()
        var requestIDs = Set<String>()
        var grantKeys = Set<PostgresLedgerBatch.GrantKey>()
        func need(_ path: [Book.PoolKey]) { keys.formUnion(path) }
        for operation in operations {
            switch operation {
            case .reserve(let request, _):
                if hold(request.requestID) == nil {
                    requestIDs.insert(request.requestID)
                    need(
                        Metering.path(organizationID: request.organizationID, keyID: request.keyID, owner: request.owner).map {
                            Book.PoolKey(organizationID: request.organizationID, owner: $0)
                        })
                }
            case .settle(let request):
                if let open = hold(request.requestID) { need(open.path) } else { requestIDs.insert(request.requestID) }
            case .release(let request):
                if let open = hold(request.requestID) { need(open.path) }
            case .reconcile:
                // Every expired hold's pools (a sweep settles the oldest of them).
                let open = loaded ?? book.keptHolds()
                for candidate in open.values where book.expiry(of: candidate) <= now { need(candidate.path) }
            case .configure(let organizationID, let request):
                if let key = try? PoolAdministration.poolKey(organizationID: organizationID, owner: request.owner) { need([key]) }
            case .grant(let organizationID, _, let request):
                if let key = try? PoolAdministration.poolKey(organizationID: organizationID, owner: request.owner) { need([key]) }
                if !request.idempotencyKey.isEmpty {
                    grantKeys.insert(.init(organizationID: organizationID, idempotencyKey: request.idempotencyKey))
                }
            case .pool(let key):
                need([key])
            }
        }
        // Pools the book keeps need no read.
        let missing = keys.filter { book.keptPool($0) == nil }
        batch.fetchedPools = missing
        if !missing.isEmpty {
            let list = Array(missing)
            let rows = try await connection.query(
                """
                SELECT \(unescaped: PoolRecord.columns) FROM pools
                WHERE (organization_id, owner_type, owner_id) IN (
                    SELECT * FROM unnest(\(list.map(\.organizationID))::text[], \(list.map { Int64($0.ownerType) })::bigint[],
                        \(list.map(\.ownerID))::text[]))
                """, logger: logger)
            for try await row in rows {
                let pool = try PoolRecord(SQLRow(row))
                batch.pools[Book.PoolKey(organizationID: pool.organizationID, ownerType: pool.ownerType, ownerID: pool.ownerID)] = pool
            }
        }
        if !requestIDs.isEmpty {
            for id in requestIDs { batch.lines[id] = .some(nil) }
            for line in try await lines(
                connection, "SELECT \(UsageLineRecord.columns) FROM usage_lines WHERE request_id = ANY($1)", [Array(requestIDs)],
                logger: logger)
            {
                batch.lines[line.requestID] = line
            }
        }
        if !grantKeys.isEmpty {
            let list = Array(grantKeys)
            for key in list { batch.grants[key] = .some(nil) }
            let rows = try await connection.query(
                """
                SELECT \(unescaped: GrantRow.columns) FROM grants
                WHERE (organization_id, idempotency_key) IN (
                    SELECT * FROM unnest(\(list.map(\.organizationID))::text[], \(list.map(\.idempotencyKey))::text[]))
                """, logger: logger)
            for try await row in rows {
                let grant = try GrantRow(SQLRow(row))
                if let idempotencyKey = grant.idempotencyKey {
                    batch.grants[.init(organizationID: grant.organizationID, idempotencyKey: idempotencyKey)] = grant
                }
            }
        }
        return batch
    }

    static func lines(
        _ connection: PostgresConnection, _ sql: String, _ arrays: [[String]] = [], logger: Logger
    ) async throws -> [UsageLineRecord] {
        var binds = PostgresBindings()
        for array in arrays { binds.append(array) }
        var lines: [UsageLineRecord] = []
        for try await row in try await connection.query(PostgresQuery(unsafeSQL: sql, binds: binds), logger: logger) {
            lines.append(try UsageLineRecord(SQLRow(row)))
        }
        return lines
    }

    // MARK: - Retention

    /// `Retention.prune` on PostgreSQL: up to `limit` settled lines created before `cutoff`
    /// deleted, the cutoff recorded; how many.
    func prune(before cutoff: Int64, limit: Int) async throws -> Int {
        try await tables.write { db in
            try await db.execute(
                """
                INSERT INTO ledger_settings (name, value) VALUES ('retained_from', ?)
                ON CONFLICT (name) DO UPDATE SET value = GREATEST(ledger_settings.value, EXCLUDED.value)
                """, .integer(cutoff))
            let keys = try await db.rows(
                "SELECT DISTINCT organization_id, key_id FROM usage_rollups WHERE span = ? AND bucket < ?", .integer(Rollups.day),
                .integer(cutoff))
            var deleted = 0
            for key in keys where deleted < limit {
                let (organizationID, keyID): (String, String) = (try key[0], try key[1])
                deleted += try await db.value(
                    Int.self,
                    """
                    WITH gone AS (
                        DELETE FROM usage_lines WHERE request_id IN (
                            SELECT request_id FROM usage_lines
                            WHERE organization_id = ? AND key_id = ? AND created_at < ? AND status = 2 LIMIT ?)
                        RETURNING 1)
                    SELECT count(*) FROM gone
                    """, .text(organizationID), .text(keyID), .integer(cutoff), .of(limit - deleted)) ?? 0
            }
            return deleted
        }
    }
}

/// One batch's `LedgerTables` on PostgreSQL: reads answered from what `prefetch` fetched (and
/// what the batch itself wrote), writes kept and sent by `send` as statements over arrays.
/// A read of a row that was not fetched is a fault of `prefetch`, and fails the batch rather
/// than be taken for a missing row.
final class PostgresLedgerBatch: LedgerTables, @unchecked Sendable {
    struct GrantKey: Hashable {
        var organizationID: String
        var idempotencyKey: String
    }

    var pending: [String: Book.Hold]?
    var fetchedPools = Set<Book.PoolKey>()
    var pools: [Book.PoolKey: PoolRecord] = [:]
    /// Lines by request id as they stand in this batch: nil inside, none.
    var lines: [String: UsageLineRecord?] = [:]
    var grants: [GrantKey: GrantRow?] = [:]

    private var deleted: [String] = []
    private var inserted: [String: UsageLineRecord] = [:]
    private var insertOrder: [String] = []
    private var settled: [(String, Settlement)] = []
    private var newGrants: [GrantRow] = []
    private var writtenPools: [PoolRecord] = []
    private var rollups: [Rollups.Key: Rollups.Totals] = [:]
    private var keyTotals: [KeyTotals.Key: KeyTotals.Delta] = [:]
    private var ownerTotals: [OwnerTotals.Key: KeyTotals.Delta] = [:]
    private var originTotals: [OwnerTotals.OriginKey: KeyTotals.Delta] = [:]

    struct NotFetched: Error, CustomStringConvertible {
        var description: String
    }

    func pool(_ key: Book.PoolKey) throws -> PoolRecord? {
        guard fetchedPools.contains(key) else { throw NotFetched(description: "pool \(key) was not read before the batch") }
        return pools[key]
    }

    func pendingHolds() throws -> [String: Book.Hold] {
        guard let pending else { throw NotFetched(description: "the open holds were not read before the batch") }
        return pending
    }

    func line(_ requestID: String) throws -> UsageLineRecord? {
        guard let line = lines[requestID] else { throw NotFetched(description: "line \(requestID) was not read before the batch") }
        return line
    }

    func grant(organizationID: String, idempotencyKey: String) throws -> GrantRow? {
        guard let grant = grants[GrantKey(organizationID: organizationID, idempotencyKey: idempotencyKey)] else {
            throw NotFetched(description: "grant \(idempotencyKey) was not read before the batch")
        }
        return grant
    }

    func insertLine(_ line: UsageLineRecord) throws {
        if try self.line(line.requestID) != nil { throw LineExists() }
        lines[line.requestID] = line
        inserted[line.requestID] = line
        insertOrder.append(line.requestID)
    }

    func settleLine(_ requestID: String, hold: Book.Hold, _ settlement: Settlement) throws {
        lines[requestID] = UsageLineRecord(pending: hold, requestID: requestID).settled(settlement)
        settled.append((requestID, settlement))
    }

    func deleteLine(_ requestID: String) throws {
        lines[requestID] = .some(nil)
        if inserted.removeValue(forKey: requestID) != nil {
            insertOrder.removeAll { $0 == requestID }
        } else {
            deleted.append(requestID)
        }
    }

    func insertGrant(_ grant: GrantRow) throws {
        newGrants.append(grant)
        if let idempotencyKey = grant.idempotencyKey {
            grants[GrantKey(organizationID: grant.organizationID, idempotencyKey: idempotencyKey)] = grant
        }
    }

    func writePools(_ pools: [PoolRecord]) throws { writtenPools += pools }
    func addRollups(_ deltas: [Rollups.Key: Rollups.Totals]) throws { rollups = deltas }
    func addKeyTotals(_ deltas: [KeyTotals.Key: KeyTotals.Delta]) throws { keyTotals = deltas }
    func addOwnerTotals(_ deltas: [OwnerTotals.Key: KeyTotals.Delta]) throws { ownerTotals = deltas }
    func addOriginTotals(_ deltas: [OwnerTotals.OriginKey: KeyTotals.Delta]) throws { originTotals = deltas }

    /// Sends the batch's writes: lines deleted (released holds of earlier batches), inserted,
    /// settled; grants; pools, rollups and totals upserted. A line inserted and settled in the
    /// same batch is inserted first; one inserted and released is never sent.
    func send(_ connection: PostgresConnection, logger: Logger) async throws {
        if !deleted.isEmpty {
            try await connection.query("DELETE FROM usage_lines WHERE request_id = ANY(\(deleted))", logger: logger)
        }
        if !insertOrder.isEmpty {
            let rows = insertOrder.compactMap { inserted[$0] }
            try await connection.query(
                """
                INSERT INTO usage_lines (request_id, created_at, organization_id, key_id, owner_type, owner_id, logical_model,
                    model_vendor, scene, access_channel, cost_micros, status, origin)
                SELECT * FROM unnest(\(rows.map(\.requestID))::text[], \(rows.map(\.createdAt))::bigint[],
                    \(rows.map(\.organizationID))::text[], \(rows.map(\.keyID))::text[], \(rows.map { Int64($0.ownerType) })::bigint[],
                    \(rows.map(\.ownerID))::text[], \(rows.map(\.logicalModel))::text[], \(rows.map(\.modelVendor))::text[],
                    \(rows.map { Int64($0.scene) })::bigint[], \(rows.map { Int64($0.accessChannel) })::bigint[],
                    \(rows.map(\.costMicros))::bigint[], \(rows.map { Int64($0.status) })::bigint[],
                    \(rows.map { Int64($0.origin) })::bigint[])
                """, logger: logger)
        }
        if !settled.isEmpty {
            let ids = settled.map(\.0)
            let rows = settled.map(\.1)
            try await connection.query(
                """
                UPDATE usage_lines AS line SET billing_transaction_id = v.transaction, settled_at = v.settled_at,
                    input_tokens = v.input_tokens, cached_input_tokens = v.cached_input_tokens, output_tokens = v.output_tokens,
                    cost_micros = v.cost_micros, latency_ms = v.latency_ms, status = 2, estimated = v.estimated,
                    expired = v.expired, overrun_micros = v.overrun_micros, backend_id = v.backend_id
                FROM unnest(\(ids)::text[], \(rows.map(\.billingTransactionID))::text[], \(rows.map(\.settledAt))::bigint[],
                    \(rows.map(\.inputTokens))::bigint[], \(rows.map(\.cachedInputTokens))::bigint[],
                    \(rows.map(\.outputTokens))::bigint[], \(rows.map(\.costMicros))::bigint[], \(rows.map(\.latencyMs))::bigint[],
                    \(rows.map(\.estimated))::boolean[], \(rows.map(\.expired))::boolean[], \(rows.map(\.overrunMicros))::bigint[],
                    \(rows.map(\.backendID))::text[])
                    AS v(request_id, transaction, settled_at, input_tokens, cached_input_tokens, output_tokens, cost_micros,
                        latency_ms, estimated, expired, overrun_micros, backend_id)
                WHERE line.request_id = v.request_id
                """, logger: logger)
        }
        for grant in newGrants {
            try await connection.query(
                """
                INSERT INTO grants (id, organization_id, owner_type, owner_id, amount_micros, reason, granted_by_user_id,
                    idempotency_key, created_at)
                VALUES (\(grant.id), \(grant.organizationID), \(Int64(grant.ownerType)), \(grant.ownerID), \(grant.amountMicros),
                    \(grant.reason), \(grant.grantedByUserID), \(grant.idempotencyKey), \(grant.createdAt))
                """, logger: logger)
        }
        if !writtenPools.isEmpty {
            let pools = writtenPools
            try await connection.query(
                """
                INSERT INTO pools (organization_id, owner_type, owner_id, mode, balance_micros, reserved_micros, limit_micros,
                    refill_per_hour_micros, refilled_at, spent_micros, granted_micros)
                SELECT organization_id, owner_type, owner_id, mode, balance_micros, reserved_micros,
                    CASE WHEN has_limit THEN limit_micros END, refill_per_hour_micros, refilled_at, spent_micros, granted_micros
                FROM unnest(\(pools.map(\.organizationID))::text[], \(pools.map { Int64($0.ownerType) })::bigint[],
                    \(pools.map(\.ownerID))::text[], \(pools.map { Int64($0.mode) })::bigint[], \(pools.map(\.balanceMicros))::bigint[],
                    \(pools.map(\.reservedMicros))::bigint[], \(pools.map { $0.limitMicros ?? 0 })::bigint[],
                    \(pools.map { $0.limitMicros != nil })::boolean[], \(pools.map(\.refillPerHourMicros))::bigint[],
                    \(pools.map(\.refilledAt))::bigint[], \(pools.map(\.spentMicros))::bigint[], \(pools.map(\.grantedMicros))::bigint[])
                    AS v(organization_id, owner_type, owner_id, mode, balance_micros, reserved_micros, limit_micros, has_limit,
                        refill_per_hour_micros, refilled_at, spent_micros, granted_micros)
                ON CONFLICT (organization_id, owner_type, owner_id) DO UPDATE SET
                    mode = EXCLUDED.mode, balance_micros = EXCLUDED.balance_micros, reserved_micros = EXCLUDED.reserved_micros,
                    limit_micros = EXCLUDED.limit_micros, refill_per_hour_micros = EXCLUDED.refill_per_hour_micros,
                    refilled_at = EXCLUDED.refilled_at, spent_micros = EXCLUDED.spent_micros, granted_micros = EXCLUDED.granted_micros
                """, logger: logger)
        }
        if !rollups.isEmpty {
            let keys = Array(rollups.keys)
            let totals = keys.map { rollups[$0]! }
            try await connection.query(
                """
                INSERT INTO usage_rollups (organization_id, key_id, span, bucket, logical_model, model_vendor, scene, access_channel,
                    requests, input_tokens, cached_input_tokens, output_tokens, cost_micros)
                SELECT * FROM unnest(\(keys.map(\.organizationID))::text[], \(keys.map(\.keyID))::text[], \(keys.map(\.span))::bigint[],
                    \(keys.map(\.bucket))::bigint[], \(keys.map(\.logicalModel))::text[], \(keys.map(\.modelVendor))::text[],
                    \(keys.map { Int64($0.scene) })::bigint[], \(keys.map { Int64($0.accessChannel) })::bigint[],
                    \(totals.map(\.requests))::bigint[], \(totals.map(\.inputTokens))::bigint[],
                    \(totals.map(\.cachedInputTokens))::bigint[], \(totals.map(\.outputTokens))::bigint[],
                    \(totals.map(\.costMicros))::bigint[])
                ON CONFLICT (organization_id, key_id, span, bucket, logical_model, model_vendor, scene, access_channel) DO UPDATE SET
                    requests = usage_rollups.requests + EXCLUDED.requests,
                    input_tokens = usage_rollups.input_tokens + EXCLUDED.input_tokens,
                    cached_input_tokens = usage_rollups.cached_input_tokens + EXCLUDED.cached_input_tokens,
                    output_tokens = usage_rollups.output_tokens + EXCLUDED.output_tokens,
                    cost_micros = usage_rollups.cost_micros + EXCLUDED.cost_micros
                """, logger: logger)
        }
        if !keyTotals.isEmpty {
            let keys = Array(keyTotals.keys)
            let deltas = keys.map { keyTotals[$0]! }
            try await connection.query(
                """
                INSERT INTO key_totals (organization_id, key_id, requests, input_tokens, cached_input_tokens, output_tokens,
                    cost_micros, last_used_at)
                SELECT * FROM unnest(\(keys.map(\.organizationID))::text[], \(keys.map(\.keyID))::text[],
                    \(deltas.map(\.totals.requests))::bigint[], \(deltas.map(\.totals.inputTokens))::bigint[],
                    \(deltas.map(\.totals.cachedInputTokens))::bigint[], \(deltas.map(\.totals.outputTokens))::bigint[],
                    \(deltas.map(\.totals.costMicros))::bigint[], \(deltas.map(\.lastUsedAt))::bigint[])
                ON CONFLICT (organization_id, key_id) DO UPDATE SET
                    requests = key_totals.requests + EXCLUDED.requests, input_tokens = key_totals.input_tokens + EXCLUDED.input_tokens,
                    cached_input_tokens = key_totals.cached_input_tokens + EXCLUDED.cached_input_tokens,
                    output_tokens = key_totals.output_tokens + EXCLUDED.output_tokens,
                    cost_micros = key_totals.cost_micros + EXCLUDED.cost_micros,
                    last_used_at = GREATEST(coalesce(key_totals.last_used_at, 0), EXCLUDED.last_used_at)
                """, logger: logger)
        }
        try await sendOwnerTotals(
            "owner_model_totals", "logical_model", ownerTotals, split: { key, binds in binds.append(key.map(\.logicalModel)) },
            splitType: "text", connection, logger: logger)
        try await sendOwnerTotals(
            "owner_origin_totals", "origin", originTotals, split: { key, binds in binds.append(key.map { Int64($0.origin) }) },
            splitType: "bigint", connection, logger: logger)
    }

    private func sendOwnerTotals<K: OwnerTotals.RowKey>(
        _ table: String, _ column: String, _ deltas: [K: KeyTotals.Delta], split: ([K], inout PostgresBindings) -> Void,
        splitType: String, _ connection: PostgresConnection, logger: Logger
    ) async throws {
        guard !deltas.isEmpty else { return }
        let keys = Array(deltas.keys)
        let rows = keys.map { deltas[$0]! }
        var binds = PostgresBindings()
        binds.append(keys.map(\.organizationID))
        binds.append(keys.map { Int64($0.ownerType) })
        binds.append(keys.map(\.ownerID))
        split(keys, &binds)
        binds.append(rows.map(\.totals.requests))
        binds.append(rows.map(\.totals.inputTokens))
        binds.append(rows.map(\.totals.cachedInputTokens))
        binds.append(rows.map(\.totals.outputTokens))
        binds.append(rows.map(\.totals.costMicros))
        binds.append(rows.map(\.lastUsedAt))
        try await connection.query(
            PostgresQuery(
                unsafeSQL: """
                    INSERT INTO \(table) (organization_id, owner_type, owner_id, \(column), requests, input_tokens,
                        cached_input_tokens, output_tokens, cost_micros, last_used_at)
                    SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[], $4::\(splitType)[], $5::bigint[], $6::bigint[],
                        $7::bigint[], $8::bigint[], $9::bigint[], $10::bigint[])
                    ON CONFLICT (organization_id, owner_type, owner_id, \(column)) DO UPDATE SET
                        requests = \(table).requests + EXCLUDED.requests, input_tokens = \(table).input_tokens + EXCLUDED.input_tokens,
                        cached_input_tokens = \(table).cached_input_tokens + EXCLUDED.cached_input_tokens,
                        output_tokens = \(table).output_tokens + EXCLUDED.output_tokens,
                        cost_micros = \(table).cost_micros + EXCLUDED.cost_micros,
                        last_used_at = GREATEST(\(table).last_used_at, EXCLUDED.last_used_at)
                    """, binds: binds), logger: logger)
    }
}
