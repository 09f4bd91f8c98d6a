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
/// and to a `PostgresLedgerBatch`, which keeps their writes; those go out as one statement a
/// kind, over arrays (lines inserted, settled, failed; pools, rollups and totals upserted),
/// then the commit. A batch that fails rolls back whole and the book is reset, as on SQLite.
/// The statements are SQLite's, declared once in `LedgerStatements`: only how they are run
/// differs.
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

    // MARK: - A batch

    /// Writes one batch of the group commit: fetches what its operations read, applies them to
    /// `book` at one time `now`, flushes the book, and sends the writes in one transaction.
    /// The book is reset when the batch fails, and told of the commit when it succeeds.
    func write(
        _ operations: [Metering.Operation], book: Book, now: Int64, decided: @escaping @Sendable (Int, Metering.Outcome) -> Void
    ) async -> Result<[Result<Metering.Outcome, any Error>], any Error> {
        do {
            let outcomes = try await PostgresServiceDatabase.transaction(on: client, logger: logger) { [logger] connection in
                // As on SQLite, a batch that holds nothing a caller waits on to be on disk (settlements,
                // releases, sweeps) commits without waiting for its WAL flush; the next commit that
                // waits, or the WAL writer within a few hundred milliseconds, makes it durable.
                if !operations.contains(where: \.synced) {
                    try await connection.query("SET LOCAL synchronous_commit = off", logger: logger)
                }
                let batch = try await Self.prefetch(operations, book: book, now: now, connection: connection, logger: logger)
                let outcomes = operations.enumerated().map { index, operation -> Result<Metering.Outcome, any Error> in
                    let outcome = Result { try Metering.apply(batch, book, operation, now: now) }
                    if case .success(let decision) = outcome { decided(index, decision) }
                    return outcome
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
            for try await row in try await connection.query(PostgresQuery(unsafeSQL: LedgerStatements.pendingLines), logger: logger) {
                let line = try UsageLineRecord(SQLRow(row))
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
            case .reserve(let request, _, _):
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
            case .configure(let organizationID, let request, _):
                if let key = try? PoolAdministration.poolKey(organizationID: organizationID, owner: request.owner) { need([key]) }
            case .grant(let organizationID, _, let request, _):
                if let key = try? PoolAdministration.poolKey(organizationID: organizationID, owner: request.owner) { need([key]) }
                if !request.idempotencyKey.isEmpty {
                    grantKeys.insert(.init(organizationID: organizationID, idempotencyKey: request.idempotencyKey))
                }
            case .pool(let key):
                need([key])
            case .write:
                break
            }
        }
        // Pools the book keeps need no read.
        let missing = keys.filter { book.keptPool($0) == nil }
        batch.fetchedPools = missing
        for row in try await LedgerStatements.selectPool.execute(missing.map(LedgerStatements.poolKey), on: connection, logger: logger) {
            let pool = try PoolRecord(row)
            batch.pools[Book.PoolKey(organizationID: pool.organizationID, ownerType: pool.ownerType, ownerID: pool.ownerID)] = pool
        }
        for id in requestIDs { batch.lines[id] = .some(nil) }
        for row in try await LedgerStatements.selectLine.execute(requestIDs.map { [.text($0)] }, on: connection, logger: logger) {
            let line = try UsageLineRecord(row)
            batch.lines[line.requestID] = line
        }
        for key in grantKeys { batch.grants[key] = .some(nil) }
        for row in try await LedgerStatements.selectGrant.execute(
            grantKeys.map { [.text($0.organizationID), .text($0.idempotencyKey)] }, on: connection, logger: logger)
        {
            let grant = try GrantRow(row)
            if let idempotencyKey = grant.idempotencyKey {
                batch.grants[.init(organizationID: grant.organizationID, idempotencyKey: idempotencyKey)] = grant
            }
        }
        return batch
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
                            WHERE organization_id = ? AND key_id = ? AND created_at < ? AND status IN (2, 3) LIMIT ?)
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

    private var failed: [(String, Failure)] = []
    private var inserted: [String: UsageLineRecord] = [:]
    private var insertOrder: [String] = []
    private var settled: [(String, Settlement)] = []
    private var newGrants: [GrantRow] = []
    private var writtenPools: [PoolRecord] = []
    private var rollups: [Rollups.Key: Rollups.Totals] = [:]
    private var keyTotals: [KeyTotals.Key: KeyTotals.Delta] = [:]
    private var ownerTotals: [OwnerTotals.Key: KeyTotals.Delta] = [:]
    private var originTotals: [OwnerTotals.OriginKey: KeyTotals.Delta] = [:]
    private var audits: [AuditEntry] = []
    private var writes: [AlertRules.Write] = []

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

    func failLine(_ requestID: String, _ failure: Failure) throws {
        // A line this batch read or wrote is kept as it now stands (one never read needs nothing).
        if case .some(.some(let line)) = lines[requestID] { lines[requestID] = line.failed(failure) }
        failed.append((requestID, failure))
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
    func appendAudit(_ entry: AuditEntry) throws { audits.append(entry) }
    func execute(_ statement: BulkStatement, _ rows: [[SQLValue]]) throws { writes.append(.init(statement: statement, rows: rows)) }

    /// Sends the batch's writes: lines inserted, settled, failed (released holds); grants; pools,
    /// rollups and totals upserted — each statement once for all its rows; the alerts' rows; the
    /// audit log's entries, chained in the order they were made. A line inserted and settled (or
    /// failed) in the same batch is inserted first.
    func send(_ connection: PostgresConnection, logger: Logger) async throws {
        typealias Statements = LedgerStatements
        for (statement, rows) in [
            (Statements.insertLine, insertOrder.compactMap { inserted[$0] }.map(Statements.insertLine)),
            (Statements.settleLine, settled.map(Statements.settleLine)),
            (Statements.failLine, failed.map(Statements.failLine)),
            (Statements.insertGrant, newGrants.map(Statements.insertGrant)),
            (Statements.writePool, writtenPools.map(Statements.writePool)),
            (Statements.addRollup, rollups.map(Statements.addRollup)),
            (Statements.addKeyTotals, keyTotals.map { Statements.addTotals(Statements.keyTotalsKey($0), $1) }),
            (Statements.addOwnerModelTotals, ownerTotals.map { Statements.addTotals(Statements.ownerKey($0), $1) }),
            (Statements.addOwnerOriginTotals, originTotals.map { Statements.addTotals(Statements.originKey($0), $1) }),
        ] {
            try await statement.execute(rows, on: connection, logger: logger)
        }
        // Budget alerts' rows, in the order they were made (rare: a change, a crossing, an attempt).
        for write in writes { try await write.statement.execute(write.rows, on: connection, logger: logger) }
        try await AuditTrail.append(audits, on: connection, logger: logger)
    }
}
