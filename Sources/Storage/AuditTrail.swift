import Crypto
import Foundation
import GRDB
import Logging
import PostgresNIO

/// One entry of a service's audit log: who changed what, when, from where; the values before
/// and after as JSON (never a secret). Written by the service that made the change, in the
/// transaction that made it.
public struct AuditEntry: Sendable, Equatable {
    /// Milliseconds since 1970.
    public var at: Int64
    /// The organisation the change belongs to; empty for the deployment's own (models, backends).
    public var organizationID: String
    /// Who: `person`, `management_token`, `operator`, `internal`, `cli` (a command on the
    /// machine, by its account) or `anonymous` (a failed sign-in), and their id.
    public var actorType: String
    public var actorID: String
    /// What, as `noun.verb` (`backend.upsert`, `key.revoke`).
    public var action: String
    /// To what: its kind and id.
    public var targetType: String
    public var targetID: String
    /// The values before and after, as JSON; empty when there is none (a creation, a removal).
    public var before: String
    public var after: String
    public var requestID: String
    public var clientAddress: String

    public init(
        at: Int64, organizationID: String = "", actorType: String, actorID: String, action: String, targetType: String,
        targetID: String, before: String = "", after: String = "", requestID: String = "", clientAddress: String = ""
    ) {
        self.at = at
        self.organizationID = organizationID
        self.actorType = actorType
        self.actorID = actorID
        self.action = action
        self.targetType = targetType
        self.targetID = targetID
        self.before = before
        self.after = after
        self.requestID = requestID
        self.clientAddress = clientAddress
    }

    /// The fields in the order the hash covers them.
    var fields: [String] {
        [
            String(at), organizationID, actorType, actorID, action, targetType, targetID, before, after, requestID, clientAddress,
        ]
    }
}

/// A stored entry: its place in the chain and the hashes that link it.
public struct AuditRecord: Sendable, Equatable {
    public var sequence: Int64
    public var entry: AuditEntry
    /// The hash of the entry before (`AuditTrail.genesis` for the first), and this one's:
    /// SHA-256 over the previous hash and each field, length-prefixed, in hex.
    public var previousHash: String
    public var hash: String
}

/// What `AuditTrail.verify` found.
public enum AuditVerification: Sendable, Equatable {
    /// Every entry's hash is right and links to the one before: `count` entries checked, the
    /// last hash; those up to `prunedThrough` were pruned past retention (a signed checkpoint
    /// holds the last one's hash).
    case intact(count: Int64, head: String, prunedThrough: Int64)
    /// The first entry that is not what was written: its sequence and why; `checked` entries
    /// before it were right.
    case broken(sequence: Int64, reason: String, checked: Int64)
}

/// A service's audit log: an append-only table (`audit_log`) in the service's own database,
/// each entry carrying the hash of the one before, so that an entry edited or removed in the
/// database breaks the chain from there on (`verify`). The same statements on SQLite and
/// PostgreSQL; appended in the transaction of the change it records, so that a change is never
/// without its entry nor an entry without its change. Entries removed from the end leave a
/// shorter chain that still holds: only the head hash kept apart from the table (`verify`
/// reports it) tells them missing. Entries pruned past retention are vouched for by a signed
/// checkpoint (`AuditCheckpoint`).
public enum AuditTrail {
    /// The hash before the first entry.
    public static let genesis = String(repeating: "0", count: 64)

    /// The table, as a step of a service's migrations.
    public static func migration(_ name: String) -> SQLMigration {
        SQLMigration(
            name,
            sqlite: [
                """
                CREATE TABLE audit_log (
                    sequence INTEGER PRIMARY KEY, at_ms INTEGER NOT NULL, organization_id TEXT NOT NULL, actor_type TEXT NOT NULL,
                    actor_id TEXT NOT NULL, action TEXT NOT NULL, target_type TEXT NOT NULL, target_id TEXT NOT NULL,
                    before_json TEXT NOT NULL, after_json TEXT NOT NULL, request_id TEXT NOT NULL, client_address TEXT NOT NULL,
                    previous_hash TEXT NOT NULL, hash TEXT NOT NULL
                )
                """,
                "CREATE INDEX audit_log_by_organization ON audit_log (organization_id, sequence)",
            ],
            postgres: [
                """
                CREATE TABLE audit_log (
                    sequence BIGINT PRIMARY KEY, at_ms BIGINT NOT NULL, organization_id TEXT NOT NULL, actor_type TEXT NOT NULL,
                    actor_id TEXT NOT NULL, action TEXT NOT NULL, target_type TEXT NOT NULL, target_id TEXT NOT NULL,
                    before_json TEXT NOT NULL, after_json TEXT NOT NULL, request_id TEXT NOT NULL, client_address TEXT NOT NULL,
                    previous_hash TEXT NOT NULL, hash TEXT NOT NULL
                )
                """,
                "CREATE INDEX audit_log_by_organization ON audit_log (organization_id, sequence)",
            ])
    }

    /// The columns in the order `values` and `record` take them (the insert's).
    static let columns = insert.columns.map(\.name).joined(separator: ", ")

    /// `value` as the JSON of an entry's before or after: keys sorted, so that the same value
    /// reads the same; the top-level members `omitting` names left out (a secret's digest).
    public static func json(_ value: some Encodable, omitting: Set<String> = []) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        guard var data = try? encoder.encode(value) else { return "" }
        if !omitting.isEmpty, var object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] {
            for name in omitting { object[name] = nil }
            data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])) ?? data
        }
        return String(decoding: data, as: UTF8.self)
    }

    /// The hash of `entry` after `previous`.
    public static func hash(_ entry: AuditEntry, after previous: String) -> String {
        var hasher = SHA256()
        for field in [previous] + entry.fields {
            let bytes = Array(field.utf8)
            hasher.update(data: Array("\(bytes.count):".utf8))
            hasher.update(data: bytes)
        }
        return Hex.string(hasher.finalize())
    }

    /// Appends `entry` in `session`'s transaction (a store's `write`, whose writes are
    /// serialised, so that two entries never claim the same place).
    @discardableResult
    public static func append(_ entry: AuditEntry, in session: any SQLSession) async throws -> AuditRecord {
        let head = try await session.row(headQuery).map { (sequence: try $0[0] as Int64, hash: try $0[1] as String) }
        let record = chain([entry], after: head)[0]
        try await session.execute(insert.sqlite, values(record))
        return record
    }

    /// The last entry's sequence and hash.
    static let headQuery = "SELECT sequence, hash FROM audit_log ORDER BY sequence DESC LIMIT 1"

    /// `entries` as the records that follow `head` (nil: the chain is empty), in order.
    static func chain(_ entries: [AuditEntry], after head: (sequence: Int64, hash: String)?) -> [AuditRecord] {
        var sequence = head?.sequence ?? 0
        var previous = head?.hash ?? genesis
        return entries.map { entry in
            sequence += 1
            let record = AuditRecord(sequence: sequence, entry: entry, previousHash: previous, hash: hash(entry, after: previous))
            previous = record.hash
            return record
        }
    }

    static let insert = BulkStatement.insert(
        into: "audit_log",
        [
            .bigint("sequence"), .bigint("at_ms"), .text("organization_id"), .text("actor_type"), .text("actor_id"),
            .text("action"), .text("target_type"), .text("target_id"), .text("before_json"), .text("after_json"),
            .text("request_id"), .text("client_address"), .text("previous_hash"), .text("hash"),
        ])

    /// Appends `entries` in the transaction of a group commit's writer on SQLite (`db`).
    public static func append(_ entries: [AuditEntry], in db: Database) throws {
        guard !entries.isEmpty else { return }
        let head = try Row.fetchOne(db, sql: headQuery).map { (sequence: $0[0] as Int64, hash: $0[1] as String) }
        try insert.execute(chain(entries, after: head).map(values), in: db)
    }

    /// Appends `entries` in the transaction of a group commit's connection to PostgreSQL, in one
    /// statement after reading the head (the ledger, the table's one writer, holds the schema's claim).
    public static func append(_ entries: [AuditEntry], on connection: PostgresConnection, logger: Logger) async throws {
        guard !entries.isEmpty else { return }
        var head: (sequence: Int64, hash: String)?
        for try await row in try await connection.query(PostgresQuery(unsafeSQL: headQuery), logger: logger) {
            let values = try SQLRow(row)
            head = (try values[0], try values[1])
        }
        try await insert.execute(chain(entries, after: head).map(values), on: connection, logger: logger)
    }

    static func values(_ record: AuditRecord) -> [SQLValue] {
        let entry = record.entry
        return [
            .integer(record.sequence), .integer(entry.at), .text(entry.organizationID), .text(entry.actorType), .text(entry.actorID),
            .text(entry.action), .text(entry.targetType), .text(entry.targetID), .text(entry.before), .text(entry.after),
            .text(entry.requestID), .text(entry.clientAddress), .text(record.previousHash), .text(record.hash),
        ]
    }

    static func record(_ row: SQLRow) throws -> AuditRecord {
        AuditRecord(
            sequence: try row[0],
            entry: AuditEntry(
                at: try row[1], organizationID: try row[2], actorType: try row[3], actorID: try row[4], action: try row[5],
                targetType: try row[6], targetID: try row[7], before: try row[8], after: try row[9], requestID: try row[10],
                clientAddress: try row[11]),
            previousHash: try row[12], hash: try row[13])
    }

    /// The entries matching `filter`, newest first, from the `offset`-th, at most `limit`; and
    /// how many match in all.
    public static func newest(
        matching filter: AuditFilter, offset: Int, limit: Int, in session: any SQLSession
    ) async throws -> (records: [AuditRecord], total: Int64) {
        let (condition, arguments) = filter.condition
        let total: Int64 = try await session.rows("SELECT count(*) FROM audit_log WHERE \(condition)", arguments)[0][0]
        let records = try await session.rows(
            "SELECT \(columns) FROM audit_log WHERE \(condition) ORDER BY sequence DESC LIMIT ? OFFSET ?",
            arguments + [.of(limit), .of(offset)]
        ).map(record)
        return (records, total)
    }

    /// Entries in order of sequence, after `sequence` (0: from the first), at most `limit`;
    /// only those matching `filter`.
    public static func records(
        after sequence: Int64 = 0, limit: Int = 1_000, matching filter: AuditFilter = AuditFilter(), in session: any SQLSession
    ) async throws -> [AuditRecord] {
        let (condition, arguments) = filter.condition
        return try await session.rows(
            "SELECT \(columns) FROM audit_log WHERE sequence > ? AND \(condition) ORDER BY sequence LIMIT ?",
            [.integer(sequence)] + arguments + [.of(limit)]
        ).map(record)
    }

    /// Walks the whole chain, a page at a time: each entry's hash recomputed from its fields and
    /// the hash before it, its sequence the one after the last. Where entries were pruned, the
    /// chain starts at the checkpoint, whose signature must be `signer`'s (the deployment's).
    public static func verify(in store: any SQLStore, signer: AuditSigner? = nil) async throws -> AuditVerification {
        var previous = genesis
        var expected: Int64 = 1
        var prunedThrough: Int64 = 0
        if let checkpoint = try await store.read({ session in try await AuditCheckpoint.read(in: session) }) {
            guard let signer else {
                return .broken(
                    sequence: checkpoint.throughSequence + 1,
                    reason: "entries up to \(checkpoint.throughSequence) were pruned; their checkpoint is checked with the deployment's audit signing key, which was not given",
                    checked: 0)
            }
            guard signer.signed(checkpoint) else {
                return .broken(
                    sequence: checkpoint.throughSequence + 1,
                    reason: "the checkpoint of the entries pruned up to \(checkpoint.throughSequence) is not signed with this deployment's audit signing key",
                    checked: 0)
            }
            previous = checkpoint.hash
            expected = checkpoint.throughSequence + 1
            prunedThrough = checkpoint.throughSequence
        }
        while true {
            let after = expected - 1
            let page = try await store.read { session in try await records(after: after, limit: 1_000, in: session) }
            for record in page {
                let checked = expected - 1 - prunedThrough
                if record.sequence != expected {
                    return .broken(
                        sequence: expected, reason: "entry \(expected) is missing (the next is \(record.sequence))", checked: checked)
                }
                if record.previousHash != previous {
                    return .broken(
                        sequence: record.sequence, reason: "entry \(record.sequence) does not follow the entry before it", checked: checked)
                }
                if hash(record.entry, after: previous) != record.hash {
                    return .broken(
                        sequence: record.sequence, reason: "entry \(record.sequence) was changed after it was written", checked: checked)
                }
                previous = record.hash
                expected += 1
            }
            if page.count < 1_000 { return .intact(count: expected - 1 - prunedThrough, head: previous, prunedThrough: prunedThrough) }
        }
    }
}

/// Which entries of an audit log to read: each field given must match (an `action` ending in a
/// dot matches every action that starts with it); times in milliseconds, both bounds included.
public struct AuditFilter: Sendable, Equatable {
    public var organizationID: String?
    public var actorType: String?
    public var actorID: String?
    public var action: String?
    public var targetType: String?
    public var targetID: String?
    public var from: Int64?
    public var to: Int64?

    public init(
        organizationID: String? = nil, actorType: String? = nil, actorID: String? = nil, action: String? = nil,
        targetType: String? = nil, targetID: String? = nil, from: Int64? = nil, to: Int64? = nil
    ) {
        self.organizationID = organizationID
        self.actorType = actorType
        self.actorID = actorID
        self.action = action
        self.targetType = targetType
        self.targetID = targetID
        self.from = from
        self.to = to
    }

    /// The `WHERE` condition and its arguments.
    var condition: (String, [SQLValue]) {
        var terms = ["TRUE"]
        var arguments: [SQLValue] = []
        for (column, value) in [
            ("organization_id", organizationID), ("actor_type", actorType), ("actor_id", actorID), ("target_type", targetType),
            ("target_id", targetID),
        ] {
            guard let value else { continue }
            terms.append("\(column) = ?")
            arguments.append(.text(value))
        }
        if let action {
            if action.hasSuffix(".") {
                // By comparison, not LIKE: `%` and `_` are plain characters.
                terms.append("substr(action, 1, length(?)) = ?")
                arguments += [.text(action), .text(action)]
            } else {
                terms.append("action = ?")
                arguments.append(.text(action))
            }
        }
        if let from {
            terms.append("at_ms >= ?")
            arguments.append(.integer(from))
        }
        if let to {
            terms.append("at_ms <= ?")
            arguments.append(.integer(to))
        }
        return (terms.joined(separator: " AND "), arguments)
    }
}

/// A service's store that keeps an audit log (`AuditTrail`) in its database, `sql`.
public protocol AuditLogged: Sendable {
    var sql: any SQLStore { get }
}

extension AuditLogged {
    /// The audit log after `sequence`, at most `limit` entries, those matching `filter`.
    public func auditRecords(after sequence: Int64, limit: Int, matching filter: AuditFilter) async throws -> [AuditRecord] {
        try await sql.read { db in try await AuditTrail.records(after: sequence, limit: limit, matching: filter, in: db) }
    }

    /// The entries matching `filter`, newest first, from the `offset`-th, at most `limit`, and
    /// how many match (one consistent read).
    public func newestAuditRecords(
        matching filter: AuditFilter, offset: Int, limit: Int
    ) async throws -> (records: [AuditRecord], total: Int64) {
        try await sql.snapshot { db in try await AuditTrail.newest(matching: filter, offset: offset, limit: limit, in: db) }
    }

    /// The whole chain checked (`AuditTrail.verify`), a checkpoint with `signer`'s key.
    public func verifyAudit(signer: AuditSigner?) async throws -> AuditVerification {
        try await AuditTrail.verify(in: sql, signer: signer)
    }

    /// Entries older than `days` pruned behind a checkpoint `signer` signs (`AuditTrail.prune`);
    /// none without a signer or a retention.
    public func pruneAudit(olderThan days: Int, signer: AuditSigner?, now: Int64) async throws -> Int64 {
        guard let signer, let cutoff = AuditTrail.cutoff(retentionDays: days, now: now) else { return 0 }
        return try await sql.write { session in try await AuditTrail.prune(before: cutoff, signer: signer, now: now, in: session) }
    }
}
