import Foundation
import GRDB
import LumenAPI
import RPCSupport
import Storage

/// The ledger's tables as the metering reads and writes them, inside one batch's transaction
/// (`Metering`, `PoolAdministration`, `Book.flush`): the rules are written once, against this.
///
/// The statements are declared once, for both databases (`LedgerStatements`). On SQLite
/// (`SQLiteLedgerTables`) each call runs one for one row in the batch's transaction on the
/// writer. On PostgreSQL (`PostgresLedgerBatch`) the rows a batch reads are fetched before it
/// is applied and its writes are sent when it commits, each statement once for all its rows.
protocol LedgerTables {
    /// The stored row of a pool, if any.
    func pool(_ key: Book.PoolKey) throws -> PoolRecord?
    /// Every open hold, by request id (`usage_holds`).
    func openHolds() throws -> [String: Book.Hold]
    /// The usage line of a request (settled, or FAILED: released), if any.
    func line(_ requestID: String) throws -> UsageLineRecord?
    /// Whether a request has a usage line (a hold's check that its request was never closed).
    func hasLine(_ requestID: String) throws -> Bool
    /// The grant made with an idempotency key, if any.
    func grant(organizationID: String, idempotencyKey: String) throws -> GrantRow?
    /// Records a new hold.
    func insertHold(_ requestID: String, _ hold: Book.Hold) throws
    /// Closes an open hold: its request's line (settled or FAILED) written, the hold deleted.
    func closeHold(_ line: UsageLineRecord) throws
    func insertGrant(_ grant: GrantRow) throws
    /// Inserts or replaces pools.
    func writePools(_ pools: [PoolRecord]) throws
    /// Adds a batch's sums to the rollups and to the key, owner and origin totals.
    func addRollups(_ deltas: [Rollups.Key: Rollups.Totals]) throws
    func addKeyTotals(_ deltas: [KeyTotals.Key: KeyTotals.Delta]) throws
    func addOwnerTotals(_ deltas: [OwnerTotals.Key: KeyTotals.Delta]) throws
    func addOriginTotals(_ deltas: [OwnerTotals.OriginKey: KeyTotals.Delta]) throws
    /// Appends an entry to the ledger's audit log, in the batch's transaction.
    func appendAudit(_ entry: AuditEntry) throws
    /// Runs `statement` for `rows` (the ledger's other tables: budget alerts).
    func execute(_ statement: BulkStatement, _ rows: [[SQLValue]]) throws
}

/// What settling writes on a hold's line.
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
    /// Input tokens written to the provider's cache.
    var cacheWriteTokens: Int64 = 0
    /// What the caller got, and when its first byte went out.
    var httpStatus: Int = 0
    var ttftMs: Int64 = 0
}

/// How a released request ended: its line is FAILED with these.
struct Failure {
    var settledAt: Int64
    var httpStatus: Int
    var errorCode: String
    var latencyMs: Int64
    var backendID: String
}

extension UsageLineRecord {
    /// An open hold as a PENDING line (its estimate its cost): what its settled or failed line
    /// starts from.
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
        line.cacheWriteTokens = settlement.cacheWriteTokens
        line.outputTokens = settlement.outputTokens
        line.costMicros = settlement.costMicros
        line.latencyMs = settlement.latencyMs
        line.status = Lumen_Ledger_V1_UsageStatus.settled.rawValue
        line.estimated = settlement.estimated
        line.expired = settlement.expired
        line.overrunMicros = settlement.overrunMicros
        line.backendID = settlement.backendID
        line.httpStatus = settlement.httpStatus
        line.ttftMs = settlement.ttftMs
        return line
    }

    /// The line once `failure` applies.
    func failed(_ failure: Failure) -> UsageLineRecord {
        var line = self
        line.settledAt = failure.settledAt
        line.costMicros = 0
        line.latencyMs = failure.latencyMs
        line.status = Lumen_Ledger_V1_UsageStatus.failed.rawValue
        line.httpStatus = failure.httpStatus
        line.errorCode = failure.errorCode
        line.backendID = failure.backendID
        return line
    }
}

/// The metering's statements on the SQLite writer, inside the group commit's transaction:
/// each `LedgerStatements` statement run for one row as the operations go, cached (prepared
/// once).
struct SQLiteLedgerTables: LedgerTables {
    let db: Database

    func pool(_ key: Book.PoolKey) throws -> PoolRecord? {
        try LedgerStatements.selectPool.rows(LedgerStatements.poolKey(key), in: db).first.map(PoolRecord.init)
    }

    func openHolds() throws -> [String: Book.Hold] {
        var loaded: [String: Book.Hold] = [:]
        let rows = try Row.fetchCursor(db, sql: OpenHolds.all)
        while let row = try rows.next() {
            let (requestID, hold) = try OpenHolds.hold(SQLRow(row))
            loaded[requestID] = hold
        }
        return loaded
    }

    func line(_ requestID: String) throws -> UsageLineRecord? {
        try LedgerStatements.selectLine.rows([.text(requestID)], in: db).first.map(UsageLineRecord.init)
    }

    /// Read from `usage_lines`' key alone: a hold's request has no line, and decoding the
    /// 27 columns of one that is not there cost more than the hold's own insert.
    func hasLine(_ requestID: String) throws -> Bool {
        try !LedgerStatements.lineExists.rows([.text(requestID)], in: db).isEmpty
    }

    func grant(organizationID: String, idempotencyKey: String) throws -> GrantRow? {
        try LedgerStatements.selectGrant.rows([.text(organizationID), .text(idempotencyKey)], in: db).first.map(GrantRow.init)
    }

    func insertHold(_ requestID: String, _ hold: Book.Hold) throws {
        try OpenHolds.insert.execute([OpenHolds.insert(requestID, hold)], in: db)
    }

    func closeHold(_ line: UsageLineRecord) throws {
        try LedgerStatements.insertLine.execute([LedgerStatements.insertLine(line)], in: db)
        try OpenHolds.delete.execute([[.text(line.requestID)]], in: db)
    }

    func insertGrant(_ grant: GrantRow) throws {
        try LedgerStatements.insertGrant.execute([LedgerStatements.insertGrant(grant)], in: db)
    }

    func writePools(_ pools: [PoolRecord]) throws {
        try LedgerStatements.writePool.execute(pools.map(LedgerStatements.writePool), in: db)
    }

    func addRollups(_ deltas: [Rollups.Key: Rollups.Totals]) throws {
        try LedgerStatements.addRollup.execute(deltas.map(LedgerStatements.addRollup), in: db)
    }

    func addKeyTotals(_ deltas: [KeyTotals.Key: KeyTotals.Delta]) throws {
        try LedgerStatements.addKeyTotals.execute(
            deltas.map { LedgerStatements.addTotals(LedgerStatements.keyTotalsKey($0), $1) }, in: db)
    }

    func addOwnerTotals(_ deltas: [OwnerTotals.Key: KeyTotals.Delta]) throws {
        try LedgerStatements.addOwnerModelTotals.execute(
            deltas.map { LedgerStatements.addTotals(LedgerStatements.ownerKey($0), $1) }, in: db)
    }

    func addOriginTotals(_ deltas: [OwnerTotals.OriginKey: KeyTotals.Delta]) throws {
        try LedgerStatements.addOwnerOriginTotals.execute(
            deltas.map { LedgerStatements.addTotals(LedgerStatements.originKey($0), $1) }, in: db)
    }

    func appendAudit(_ entry: AuditEntry) throws { try AuditTrail.append([entry], in: db) }

    func execute(_ statement: BulkStatement, _ rows: [[SQLValue]]) throws { try statement.execute(rows, in: db) }
}
