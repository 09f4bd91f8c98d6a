import Foundation
import Logging
import LumenAPI
import PostgresNIO
import RPCSupport
import Storage
import Synchronization

/// The ledger in the `ledger` schema of a PostgreSQL database.
///
/// One writer: the process that claims the schema (`PostgresServiceDatabase.claim`) is the only
/// one that writes it, so the `Book` in its memory stays the truth about open holds and pools,
/// as on SQLite. The group commit is the same; a batch's writes are one transaction: the rows its
/// operations will read (their pools, the lines of requests without an open hold, grants by
/// idempotency key) are fetched first, in three queries; the operations are applied to the book
/// and to a `PostgresLedgerBatch`, which keeps their writes; those go out as one statement, a
/// part a kind, over arrays (holds placed, lines written, holds deleted; pools, rollups and
/// totals upserted) — a transaction of its own, which a batch with no sync to wait for commits
/// without waiting for its WAL flush — or, with alerts' rows or audit entries to write, between
/// BEGIN and COMMIT. A batch that fails writes nothing and the
/// book is reset, as on SQLite. The statements are SQLite's, declared once in
/// `LedgerStatements`: only how they are run differs.
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

    typealias BatchResult = Result<[Result<Metering.Outcome, any Error>], any Error>

    /// The batch in flight before the next: its outcome once written (committed or failed), the
    /// same once its callers have heard it, and — once it has applied its operations — what it
    /// read and wrote, which the next batch reads instead of the tables while that commit is not
    /// visible yet.
    private let inFlight = Mutex<(written: Task<BatchResult, Never>, answered: Task<Void, Never>, batch: PostgresLedgerBatch?)?>(nil)

    struct PreviousBatchFailed: Error, CustomStringConvertible {
        var description: String { "the ledger's previous batch failed to commit" }
    }

    /// Writes one batch of the group commit, overlapping the one before: fetches what its
    /// operations read, applies them to `book` at one time `now` (`decided` as each succeeds) and
    /// flushes the book — while the batch before may still be committing —, then, once that one
    /// has committed, lets the next batch start (`proceed`) and sends its writes in one
    /// transaction (usually one statement, without BEGIN and COMMIT). So PostgreSQL runs one
    /// batch's statements while the next is applied here.
    /// `done` comes in the order of the batches. A batch that fails, or follows one that failed,
    /// rolls back and resets the book (the next batch reads the tables again); the book is told
    /// of each commit. A batch not `synced` (`GroupCommit`: none of its operations must be on
    /// disk before its caller hears of it) commits without waiting for its WAL flush.
    func write(
        _ operations: [Metering.Operation], synced: Bool, book: Book, now: Int64, decided: @escaping @Sendable (Int, Metering.Outcome) -> Void,
        proceed: @escaping @Sendable () -> Void,
        done: @escaping @Sendable (Result<[Result<Metering.Outcome, any Error>], any Error>) -> Void
    ) {
        inFlight.withLock { state in
            let previous = state
            // A batch started before the one before it was done (it let this one start once it had
            // applied its operations) builds on it; one started after it is done, on the tables.
            let base = previous?.batch != nil ? previous : nil
            let written = Task<BatchResult, Never> {
                await self.write(
                    operations, synced: synced, book: book, now: now, after: base?.written, reading: base?.batch, decided: decided,
                    proceed: proceed)
            }
            // The next batch sends its writes once this one is written, not after its callers
            // have heard it (a batch's answers are a few hundred continuations resumed).
            let answered = Task<Void, Never> {
                let result = await written.value
                _ = await previous?.answered.value  // the batch before is answered first
                done(result)
            }
            state = (written, answered, nil)
        }
    }

    private func write(
        _ operations: [Metering.Operation], synced: Bool, book: Book, now: Int64, after previous: Task<BatchResult, Never>?,
        reading before: PostgresLedgerBatch?, decided: @escaping @Sendable (Int, Metering.Outcome) -> Void,
        proceed: @escaping @Sendable () -> Void
    ) async -> BatchResult {
        do {
            let (outcomes, pools) = try await client.withConnection { [logger] connection in
                // Read at READ COMMITTED, as inside a transaction: the ledger is the schema's one
                // writer, and what the batch before wrote and has not committed yet is taken from it.
                let batch = try await Self.prefetch(
                    operations, book: book, now: now, before: before, connection: connection, logger: logger)
                // The book is touched by one batch at a time (planning its reads, applying its
                // operations, resetting it), under its lock one operation at a time (a hold decided
                // on a caller's thread waits for one operation at most).
                let outcomes = operations.enumerated().map { index, operation -> Result<Metering.Outcome, any Error> in
                    let outcome = book.lock.withLock { Result { try Metering.apply(batch, book, operation, now: now) } }
                    if case .success(let decision) = outcome { decided(index, decision) }
                    return outcome
                }
                let pools = try book.lock.withLock {
                    try book.flush(batch)
                    return book.flushed()
                }
                // Its statement is built while the batch before commits. A batch with no sync to
                // wait for commits without waiting for its WAL flush (as on SQLite: it holds
                // nothing a caller waits on to be on disk — settlements, releases, sweeps; the
                // next commit that waits, or the WAL writer within a few hundred milliseconds,
                // makes it durable).
                let alone = batch.isOneStatement
                let tables = batch.tables(synchronousCommit: synced || !alone)
                // What this batch wrote builds on the batch before: it must have committed.
                if case .failure = await previous?.value { throw PreviousBatchFailed() }
                self.inFlight.withLock { $0?.batch = batch }
                proceed()
                if alone {
                    // One statement is a transaction of its own: committed (and flushed, when
                    // synced) when it returns — no BEGIN and COMMIT round trips.
                    if let tables { try await BulkStatement.run(tables, on: connection, logger: logger) }
                } else {
                    try await PostgresServiceDatabase.transaction(on: connection, logger: logger) { connection in
                        if !synced {
                            try await connection.query("SET LOCAL synchronous_commit = off", logger: logger)
                        }
                        try await batch.send(tables, connection, logger: logger)
                    }
                }
                return (outcomes, pools)
            }
            book.committed(pools)
            return .success(outcomes)
        } catch {
            book.lock.withLock { book.reset() }
            return .failure(error)
        }
    }

    /// Reads, in three queries at most (four on the first batch, which reads the open holds),
    /// every row `operations` will ask `LedgerTables` for — lines and grants the batch `before`
    /// read or wrote are taken from it (its commit may not be visible yet). The book is read
    /// under its lock.
    static func prefetch(
        _ operations: [Metering.Operation], book: Book, now: Int64, before: PostgresLedgerBatch?,
        connection: PostgresConnection, logger: Logger
    ) async throws -> PostgresLedgerBatch {
        let batch = PostgresLedgerBatch()
        var loaded: [String: Book.Hold]?
        if !book.lock.withLock({ book.hasHolds }) {
            var holds: [String: Book.Hold] = [:]
            for try await row in try await connection.query(PostgresQuery(unsafeSQL: OpenHolds.all), logger: logger) {
                let (requestID, hold) = try OpenHolds.hold(SQLRow(row))
                holds[requestID] = hold
            }
            loaded = holds
            batch.pending = holds
        }
        let (missing, requestIDs, grantKeys) = book.lock.withLock { plan(operations, book: book, now: now, loaded: loaded) }
        batch.fetchedPools = missing
        for row in try await LedgerStatements.selectPool.execute(missing.map(LedgerStatements.poolKey), on: connection, logger: logger) {
            let pool = try PoolRecord(row)
            batch.pools[Book.PoolKey(organizationID: pool.organizationID, ownerType: pool.ownerType, ownerID: pool.ownerID)] = pool
        }
        var unread: [String] = []
        for id in requestIDs {
            if let known = before?.lines[id] { batch.lines[id] = known } else { unread.append(id) }
        }
        for id in unread { batch.lines[id] = .some(nil) }
        for row in try await LedgerStatements.selectLine.execute(unread.map { [.text($0)] }, on: connection, logger: logger) {
            let line = try UsageLineRecord(row)
            batch.lines[line.requestID] = line
        }
        var unreadGrants: [PostgresLedgerBatch.GrantKey] = []
        for key in grantKeys {
            if let known = before?.grants[key] { batch.grants[key] = known } else { unreadGrants.append(key) }
        }
        for key in unreadGrants { batch.grants[key] = .some(nil) }
        for row in try await LedgerStatements.selectGrant.execute(
            unreadGrants.map { [.text($0.organizationID), .text($0.idempotencyKey)] }, on: connection, logger: logger)
        {
            let grant = try GrantRow(row)
            if let idempotencyKey = grant.idempotencyKey {
                batch.grants[.init(organizationID: grant.organizationID, idempotencyKey: idempotencyKey)] = grant
            }
        }
        return batch
    }

    /// The pools the book does not keep, the lines and the grants `operations` will read.
    private static func plan(
        _ operations: [Metering.Operation], book: Book, now: Int64, loaded: [String: Book.Hold]?
    ) -> (pools: Set<Book.PoolKey>, lines: Set<String>, grants: Set<PostgresLedgerBatch.GrantKey>) {
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
                    need(Book.PoolKey.path(of: request))
                }
            case .decided(let request, let decision, _):
                // Its line's absence; its pools, kept unless the book was reset since.
                requestIDs.insert(request.requestID)
                need(decision.hold.path)
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
        return (keys.filter { book.keptPool($0) == nil }, requestIDs, grantKeys)
    }

    // MARK: - Retention

    /// `Retention.prune` on PostgreSQL: up to `limit` lines created before `cutoff` deleted, the
    /// cutoff recorded; how many.
    func prune(before cutoff: Int64, limit: Int) async throws -> Int {
        try await tables.write { db in
            try await db.execute(
                """
                INSERT INTO ledger_settings (name, value) VALUES ('retained_from', ?)
                ON CONFLICT (name) DO UPDATE SET value = GREATEST(ledger_settings.value, EXCLUDED.value)
                """, .integer(cutoff))
            let organizations = try await db.rows(Retention.organizations, Retention.arguments(cutoff))
            var deleted = 0
            for organization in organizations where deleted < limit {
                let organizationID: String = try organization[0]
                deleted += try await db.value(
                    Int.self,
                    """
                    WITH gone AS (
                        DELETE FROM usage_lines WHERE request_id IN (
                            SELECT request_id FROM usage_lines WHERE organization_id = ? AND created_at < ? LIMIT ?)
                        RETURNING 1)
                    SELECT count(*) FROM gone
                    """, .text(organizationID), .integer(cutoff), .of(limit - deleted)) ?? 0
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

    /// Holds placed in this batch and still open, in the order placed.
    private var opened: [String: Book.Hold] = [:]
    private var openOrder: [String] = []
    /// Lines written (holds closed), and the holds to delete (those placed before this batch).
    private var closed: [UsageLineRecord] = []
    private var deletedHolds: [String] = []
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

    func openHolds() throws -> [String: Book.Hold] {
        guard let pending else { throw NotFetched(description: "the open holds were not read before the batch") }
        return pending
    }

    func line(_ requestID: String) throws -> UsageLineRecord? {
        guard let line = lines[requestID] else { throw NotFetched(description: "line \(requestID) was not read before the batch") }
        return line
    }

    func hasLine(_ requestID: String) throws -> Bool { try line(requestID) != nil }

    func grant(organizationID: String, idempotencyKey: String) throws -> GrantRow? {
        guard let grant = grants[GrantKey(organizationID: organizationID, idempotencyKey: idempotencyKey)] else {
            throw NotFetched(description: "grant \(idempotencyKey) was not read before the batch")
        }
        return grant
    }

    func insertHold(_ requestID: String, _ hold: Book.Hold) throws {
        opened[requestID] = hold
        openOrder.append(requestID)
    }

    func closeHold(_ line: UsageLineRecord) throws {
        // An open hold has no line yet (the insert's key would refuse a second one at `send`).
        lines[line.requestID] = line
        closed.append(line)
        // A hold placed and closed in the same batch is never written.
        if opened.removeValue(forKey: line.requestID) == nil { deletedHolds.append(line.requestID) }
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

    /// Sends the batch's writes, inside a transaction: the holds, lines, grants, pools, rollups and
    /// totals (`tables`), then the alerts' rows and the audit log's entries, chained in the order
    /// they were made.
    func send(_ tables: PostgresQuery?, _ connection: PostgresConnection, logger: Logger) async throws {
        if let tables { try await BulkStatement.run(tables, on: connection, logger: logger) }
        // Budget alerts' rows, in the order they were made (rare: a change, a crossing, an attempt).
        for write in writes { try await write.statement.execute(write.rows, on: connection, logger: logger) }
        try await AuditTrail.append(audits, on: connection, logger: logger)
    }

    /// Whether the batch's writes are the one statement of `tables` (no alert's row, no audit
    /// entry).
    var isOneStatement: Bool { writes.isEmpty && audits.isEmpty }

    /// The holds placed, lines written and holds deleted (settled or released); grants; pools,
    /// rollups and totals upserted — each statement once for all its rows, all of them as one
    /// statement (`BulkStatement.together`: each writes its own table, and a hold placed and
    /// closed in the same batch is only its line, so none touches a row another writes); nil
    /// when there are none.
    func tables(synchronousCommit: Bool) -> PostgresQuery? {
        typealias Statements = LedgerStatements
        return BulkStatement.together([
            (OpenHolds.insert, openOrder.compactMap { id in opened[id].map { OpenHolds.insert(id, $0) } }),
            (Statements.insertLine, closed.map(Statements.insertLine)),
            (OpenHolds.delete, deletedHolds.map { [.text($0)] }),
            (Statements.insertGrant, newGrants.map(Statements.insertGrant)),
            (Statements.writePool, writtenPools.map(Statements.writePool)),
            (Statements.addRollup, rollups.map(Statements.addRollup)),
            (Statements.addKeyTotals, keyTotals.map { Statements.addTotals(Statements.keyTotalsKey($0), $1) }),
            (Statements.addOwnerModelTotals, ownerTotals.map { Statements.addTotals(Statements.ownerKey($0), $1) }),
            (Statements.addOwnerOriginTotals, originTotals.map { Statements.addTotals(Statements.originKey($0), $1) }),
        ], synchronousCommit: synchronousCommit)
    }
}
