import Foundation
import Logging
import LumenAPI
import RPCSupport
import Storage

/// The keys service's table, in one SQLite file or the `keys` schema of a PostgreSQL database,
/// read and written through the same statements (`SQLStore`). Nothing outside this module reads
/// it. Each method is one transaction; writes are serialised, and a write's `committed` runs
/// after its commit and before the next write starts (events in commit order).
struct KeysStore: AuditLogged {
    let sql: any SQLStore
    /// Every committed update of a key (`update`), counted after its commit.
    let changes = CredentialChanges()

    init(location: ServiceDatabase.Location) throws {
        sql = try SQLiteStore(name: "keys", at: location, migrations: Self.migrations)
    }

    /// Opens (and migrates) the tables at `location`: a SQLite file or the `keys` schema of a
    /// PostgreSQL database.
    init(_ location: StoreLocation, logger: Logger) async throws {
        sql = try await location.open("keys", migrations: Self.migrations, logger: logger)
    }

    static let migrations: [SQLMigration] = [
        SQLMigration(
            "v1: keys",
            sqlite: [
                """
                CREATE TABLE keys (
                    id TEXT PRIMARY KEY NOT NULL,
                    organization_id TEXT NOT NULL,
                    kind INTEGER NOT NULL,
                    owner_type INTEGER NOT NULL,
                    owner_id TEXT NOT NULL,
                    name TEXT NOT NULL,
                    secret_sha256 BLOB NOT NULL UNIQUE,
                    hint TEXT NOT NULL,
                    key_prefix TEXT NOT NULL,
                    status INTEGER NOT NULL,
                    models TEXT NOT NULL DEFAULT '[]',
                    limit_micros INTEGER,
                    used_micros INTEGER NOT NULL DEFAULT 0,
                    request_count INTEGER NOT NULL DEFAULT 0,
                    token_count INTEGER NOT NULL DEFAULT 0,
                    last_used_at INTEGER,
                    expires_at INTEGER,
                    created_at INTEGER NOT NULL,
                    updated_at INTEGER NOT NULL,
                    revoked_at INTEGER,
                    created_by_user_id TEXT NOT NULL DEFAULT ''
                );
                CREATE INDEX keys_by_organization ON keys(organization_id, kind, created_at);
                CREATE INDEX keys_by_owner ON keys(organization_id, owner_type, owner_id);
                """
            ],
            postgres: [
                """
                CREATE TABLE keys (
                    id TEXT PRIMARY KEY NOT NULL,
                    organization_id TEXT NOT NULL,
                    kind BIGINT NOT NULL,
                    owner_type BIGINT NOT NULL,
                    owner_id TEXT NOT NULL,
                    name TEXT NOT NULL,
                    secret_sha256 BYTEA NOT NULL UNIQUE,
                    hint TEXT NOT NULL,
                    key_prefix TEXT NOT NULL,
                    status BIGINT NOT NULL,
                    models TEXT[] NOT NULL DEFAULT '{}',
                    limit_micros BIGINT,
                    used_micros BIGINT NOT NULL DEFAULT 0,
                    request_count BIGINT NOT NULL DEFAULT 0,
                    token_count BIGINT NOT NULL DEFAULT 0,
                    last_used_at BIGINT,
                    expires_at BIGINT,
                    created_at BIGINT NOT NULL,
                    updated_at BIGINT NOT NULL,
                    revoked_at BIGINT,
                    created_by_user_id TEXT NOT NULL DEFAULT ''
                )
                """,
                "CREATE INDEX keys_by_organization ON keys(organization_id, kind, created_at)",
                "CREATE INDEX keys_by_owner ON keys(organization_id, owner_type, owner_id)",
            ]),
        SQLMigration(
            "v2: per-key rate limits",
            sqlite: [
                """
                ALTER TABLE keys ADD COLUMN rpm_limit INTEGER NOT NULL DEFAULT 0;
                ALTER TABLE keys ADD COLUMN tpm_limit INTEGER NOT NULL DEFAULT 0;
                """
            ],
            postgres: [
                "ALTER TABLE keys ADD COLUMN rpm_limit BIGINT NOT NULL DEFAULT 0",
                "ALTER TABLE keys ADD COLUMN tpm_limit BIGINT NOT NULL DEFAULT 0",
            ]),
        // Counted here from the gateway's reports, they drifted from the ledger after a crash;
        // the ledger's key totals are the record now.
        SQLMigration(
            "v3: usage counters are the ledger's",
            "ALTER TABLE keys DROP COLUMN used_micros", "ALTER TABLE keys DROP COLUMN request_count",
            "ALTER TABLE keys DROP COLUMN token_count", "ALTER TABLE keys DROP COLUMN last_used_at"),
        // Newest first, ties by id: the list's own order, so a page deep into a long list walks
        // the index instead of sorting every key before it (22 ms → 3 ms at offset 19,000). It
        // serves everything the index it replaces did.
        SQLMigration(
            "v4: the organisation's keys in list order",
            sqlite: [
                "CREATE INDEX keys_listing ON keys(organization_id, kind, created_at DESC, id)",
                "DROP INDEX keys_by_organization",
            ],
            postgres: [
                #"CREATE INDEX keys_listing ON keys(organization_id, kind, created_at DESC, id COLLATE "C")"#,
                "DROP INDEX keys_by_organization",
            ]),
        // One set of statements for both: the allowlist is a JSON array of text in both, and
        // ids and names compare byte-wise (as SQLite compares them).
        SQLMigration(
            "v5: the same columns as SQLite",
            sqlite: [],
            postgres: [
                "ALTER TABLE keys ALTER COLUMN models DROP DEFAULT",
                "ALTER TABLE keys ALTER COLUMN models TYPE TEXT USING array_to_json(models)::text",
                "ALTER TABLE keys ALTER COLUMN models SET DEFAULT '[]'",
                #"ALTER TABLE keys ALTER COLUMN id TYPE TEXT COLLATE "C""#,
                #"ALTER TABLE keys ALTER COLUMN name TYPE TEXT COLLATE "C""#,
            ]),
        AuditTrail.migration("v6: the audit log"),
        AuditCheckpoint.migration("v7: the audit log's checkpoint"),
    ]

    static let columns = """
        id, organization_id, kind, owner_type, owner_id, name, secret_sha256, hint, key_prefix, status, models, limit_micros,
        expires_at, created_at, updated_at, revoked_at, created_by_user_id, rpm_limit, tpm_limit
        """

    /// Inserts a key, recording `audit` with it; `committed` runs once it has committed.
    func insert(_ record: KeyRecord, audit: AuditEntry, committed: @escaping @Sendable (KeyRecord) -> Void = { _ in }) async throws {
        try await sql.write { db in
            try await db.execute(
                "INSERT INTO keys (\(Self.columns)) VALUES (\(sqlPlaceholders(19)))",
                [
                    .text(record.id), .text(record.organizationID), .of(record.kind), .of(record.ownerType), .text(record.ownerID),
                    .text(record.name), .blob(record.secretSHA256), .text(record.hint), .text(record.keyPrefix), .of(record.status),
                    .text(try record.modelsJSON), .of(record.limitMicros), .of(record.expiresAt), .integer(record.createdAt),
                    .integer(record.updatedAt), .of(record.revokedAt), .text(record.createdByUserID), .integer(record.rpmLimit),
                    .integer(record.tpmLimit),
                ])
            try await Self.record(audit, before: nil, after: record, in: db)
            db.afterCommit { committed(record) }
        }
    }

    /// Appends `audit` with the key before and after it, its secret's digest left out.
    static func record(_ audit: AuditEntry, before: KeyRecord?, after: KeyRecord, in db: any SQLSession) async throws {
        var entry = audit
        entry.before = before.map { AuditTrail.json($0, omitting: ["secret_sha256"]) } ?? ""
        entry.after = AuditTrail.json(after, omitting: ["secret_sha256"])
        try await AuditTrail.append(entry, in: db)
    }


    func key(id: String, organizationID: String) async throws -> KeyRecord? {
        try await sql.read { db in
            try await db.row("SELECT \(Self.columns) FROM keys WHERE id = ? AND organization_id = ?", .text(id), .text(organizationID))
                .map(KeyRecord.init)
        }
    }

    func key(secretSHA256: Data) async throws -> KeyRecord? {
        try await sql.read { db in
            try await db.row("SELECT \(Self.columns) FROM keys WHERE secret_sha256 = ?", .blob(secretSHA256)).map(KeyRecord.init)
        }
    }

    /// Reads the key, lets `change` modify it, writes it back, in one transaction; when the row
    /// changed, `audit` is recorded with it (the key before and after), `changes` counts it and
    /// `committed` runs once it has committed. nil when there is no such key in the organisation.
    func update(
        id: String, organizationID: String, audit: AuditEntry, _ change: @escaping @Sendable (inout KeyRecord) throws -> Void,
        committed: @escaping @Sendable (KeyRecord) -> Void = { _ in }
    ) async throws -> KeyRecord? {
        try await sql.write { [changes] db in
            guard
                var record = try await db.row(
                    "SELECT \(Self.columns) FROM keys WHERE id = ? AND organization_id = ?\(db.dialect.forUpdate)", .text(id),
                    .text(organizationID)
                ).map(KeyRecord.init)
            else { return nil }
            let before = record
            try change(&record)
            guard record != before else { return record }
            try await db.execute(
                """
                UPDATE keys SET name = ?, status = ?, models = ?, limit_micros = ?, expires_at = ?, updated_at = ?, revoked_at = ?,
                    rpm_limit = ?, tpm_limit = ?, owner_type = ?, owner_id = ?, hint = ?, key_prefix = ?, secret_sha256 = ?, kind = ?,
                    created_by_user_id = ?
                WHERE id = ?
                """,
                [
                    .text(record.name), .of(record.status), .text(try record.modelsJSON), .of(record.limitMicros), .of(record.expiresAt),
                    .integer(record.updatedAt), .of(record.revokedAt), .integer(record.rpmLimit), .integer(record.tpmLimit),
                    .of(record.ownerType), .text(record.ownerID), .text(record.hint), .text(record.keyPrefix),
                    .blob(record.secretSHA256), .of(record.kind), .text(record.createdByUserID), .text(record.id),
                ])
            try await Self.record(audit, before: before, after: record, in: db)
            let changed = record
            db.afterCommit {
                changes.record()
                committed(changed)
            }
            return record
        }
    }

    /// A page of keys; `total` is nil when the query went on from a position (not counted).
    func list(_ query: KeyListQuery, revokedStatus: Int) async throws -> (records: [KeyRecord], total: Int?) {
        try await sql.read { db in
            let (filter, page, arguments) = Self.listed(query, revokedStatus: revokedStatus, db.dialect)
            let records = try await db.rows("SELECT \(Self.columns) FROM keys WHERE \(filter) \(page)", arguments).map(KeyRecord.init)
            return (records, query.after == nil ? try await Self.count(filter, arguments, db) : nil)
        }
    }

    /// `list`'s page as ids and creation times alone (no row decoded).
    func listIDs(_ query: KeyListQuery, revokedStatus: Int) async throws -> (ids: [KeyListPosition], total: Int?) {
        try await sql.read { db in
            let (filter, page, arguments) = Self.listed(query, revokedStatus: revokedStatus, db.dialect)
            let ids = try await db.rows("SELECT id, created_at FROM keys WHERE \(filter) \(page)", arguments).map { row in
                KeyListPosition(createdAt: try row[1], id: try row[0])
            }
            return (ids, query.after == nil ? try await Self.count(filter, arguments, db) : nil)
        }
    }

    static func count(_ filter: String, _ arguments: [SQLValue], _ db: any SQLSession) async throws -> Int {
        try await db.rows("SELECT count(*) FROM keys WHERE \(filter)", arguments).first.map { try $0[0] } ?? 0
    }

    /// The WHERE clause and ORDER BY … LIMIT of `query` (`limit` rows, one more after a
    /// position: whether there are more), with its values in order.
    static func listed(_ query: KeyListQuery, revokedStatus: Int, _ dialect: SQLDialect) -> (filter: String, page: String, arguments: [SQLValue]) {
        var conditions = ["organization_id = ?", "kind = ?"]
        var arguments: [SQLValue] = [.text(query.organizationID), .of(query.kind)]
        if let ownerType = query.ownerType, let ownerID = query.ownerID {
            conditions.append("owner_type = ? AND owner_id = ?")
            arguments += [.of(ownerType), .text(ownerID)]
        }
        if !query.includeRevoked {
            conditions.append("status <> ?")
            arguments.append(.of(revokedStatus))
        }
        if !query.nameContains.isEmpty {
            // lower() folds ASCII alone, in both.
            conditions.append(dialect.contains("lower(name)", "lower(?)"))
            arguments.append(.text(query.nameContains))
        }
        if !query.keyIDs.isEmpty {
            conditions.append("id IN (\(dialect.jsonStrings))")
            arguments.append(.text(String(decoding: (try? JSONEncoder().encode(query.keyIDs)) ?? Data("[]".utf8), as: UTF8.self)))
        }
        if let after = query.after {
            // In index order (`keys_listing`: created_at DESC, id): the range on created_at
            // first, then past the position's id among keys created the same millisecond.
            conditions.append(
                query.newestFirst ? "(created_at < ? OR (created_at = ? AND id > ?))" : "(created_at > ? OR (created_at = ? AND id > ?))")
            arguments += [.integer(after.createdAt), .integer(after.createdAt), .text(after.id)]
            let order = query.newestFirst ? "created_at DESC" : "created_at ASC"
            return (conditions.joined(separator: " AND "), "ORDER BY \(order), id LIMIT \(query.limit + 1)", arguments)
        }
        let order =
            switch query.sort {
            case .name: "lower(name) \(query.reverse ? "DESC" : "ASC")"
            case .created: "created_at \(query.reverse ? "DESC" : "ASC")"
            default: "created_at \(query.reverse ? "ASC" : "DESC")"
            }
        return (conditions.joined(separator: " AND "), "ORDER BY \(order), id LIMIT \(query.limit) OFFSET \(query.offset)", arguments)
    }

    /// The keys of one organisation, or of every one; never the operator tokens; oldest first.
    func all(organizationID: String?) async throws -> [KeyRecord] {
        try await sql.read { db in
            let operatorKind = SQLValue.of(Lumen_Keys_V1_KeyKind.operator.rawValue)
            if let organizationID {
                return try await db.rows(
                    "SELECT \(Self.columns) FROM keys WHERE kind <> ? AND organization_id = ? ORDER BY created_at, id", operatorKind,
                    .text(organizationID)
                ).map(KeyRecord.init)
            }
            return try await db.rows("SELECT \(Self.columns) FROM keys WHERE kind <> ? ORDER BY created_at, id", operatorKind)
                .map(KeyRecord.init)
        }
    }

    /// Every operator token, revoked ones too, oldest first.
    func operatorTokens() async throws -> [KeyRecord] {
        try await sql.read { db in
            try await db.rows(
                "SELECT \(Self.columns) FROM keys WHERE kind = ? ORDER BY created_at, id", .of(Lumen_Keys_V1_KeyKind.operator.rawValue)
            ).map(KeyRecord.init)
        }
    }
}

extension KeyRecord {
    /// A row of `KeysStore.columns`, read by position.
    init(_ row: SQLRow) throws {
        id = try row[0]
        organizationID = try row[1]
        kind = try row[2]
        ownerType = try row[3]
        ownerID = try row[4]
        name = try row[5]
        secretSHA256 = try row[6]
        hint = try row[7]
        keyPrefix = try row[8]
        status = try row[9]
        let models: String = try row[10]
        self.models = models == "[]" ? [] : try JSONDecoder().decode([String].self, from: Data(models.utf8))
        limitMicros = try row[11]
        expiresAt = try row[12]
        createdAt = try row[13]
        updatedAt = try row[14]
        revokedAt = try row[15]
        createdByUserID = try row[16]
        rpmLimit = try row[17]
        tpmLimit = try row[18]
    }

    /// The allowlist as the `models` column keeps it: a JSON array of names.
    var modelsJSON: String {
        get throws { models.isEmpty ? "[]" : String(decoding: try JSONEncoder().encode(models), as: UTF8.self) }
    }
}

struct KeyListQuery: Sendable {
    var organizationID: String
    var kind: Int
    var ownerType: Int?
    var ownerID: String?
    var includeRevoked: Bool
    var nameContains: String
    /// Only these keys (none: every key).
    var keyIDs: [String] = []
    var sort: Lumen_Keys_V1_KeySort
    var reverse: Bool
    var offset: Int
    var limit: Int
    /// Go on after this key (a page token's position) instead of counting past `offset`;
    /// nothing is counted then.
    var after: KeyListPosition? = nil

    /// Newest first: the default order, or creation order reversed.
    var newestFirst: Bool {
        switch sort {
        case .name: false
        case .created: reverse
        default: !reverse
        }
    }
}

/// Where a page of a list in creation order ended: its last key's creation time and id.
struct KeyListPosition: Sendable, Equatable {
    var createdAt: Int64
    var id: String
}

