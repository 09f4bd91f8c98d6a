import Foundation
import Logging
import LumenAPI
import PostgresNIO
import RPCSupport
import Storage

/// The keys service's table in the `keys` schema of a PostgreSQL database: the same table and
/// migrations as `SQLiteKeysStore`, in PostgreSQL's dialect (`models` an array, the digest
/// `BYTEA`). Orders are SQLite's: ids and names compared byte-wise (`COLLATE "C"`), names
/// without case (ASCII, as SQLite's NOCASE).
struct PostgresKeysStore: KeysStorage {
    let database: PostgresServiceDatabase
    let logger: Logger
    let changes = CredentialChanges()
    let writes = SerialWrites()

    static let migrations: [(name: String, statements: [String])] = [
        (
            "v1: keys",
            [
                """
                CREATE TABLE keys.keys (
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
                "CREATE INDEX keys_by_organization ON keys.keys(organization_id, kind, created_at)",
                "CREATE INDEX keys_by_owner ON keys.keys(organization_id, owner_type, owner_id)",
            ]
        ),
        (
            "v2: per-key rate limits",
            [
                "ALTER TABLE keys.keys ADD COLUMN rpm_limit BIGINT NOT NULL DEFAULT 0",
                "ALTER TABLE keys.keys ADD COLUMN tpm_limit BIGINT NOT NULL DEFAULT 0",
            ]
        ),
        (
            "v3: usage counters are the ledger's",
            [
                "ALTER TABLE keys.keys DROP COLUMN used_micros",
                "ALTER TABLE keys.keys DROP COLUMN request_count",
                "ALTER TABLE keys.keys DROP COLUMN token_count",
                "ALTER TABLE keys.keys DROP COLUMN last_used_at",
            ]
        ),
        (
            "v4: the organisation's keys in list order",
            [
                #"CREATE INDEX keys_listing ON keys.keys(organization_id, kind, created_at DESC, id COLLATE "C")"#,
                "DROP INDEX keys.keys_by_organization",
            ]
        ),
    ]

    init(database: PostgresServiceDatabase, logger: Logger) async throws {
        self.database = database
        self.logger = logger
        try await database.migrate(schema: "keys", Self.migrations)
    }

    static let columns = """
        id, organization_id, kind, owner_type, owner_id, name, secret_sha256, hint, key_prefix, status, models, limit_micros,
        expires_at, created_at, updated_at, revoked_at, created_by_user_id, rpm_limit, tpm_limit
        """

    static func records(_ rows: PostgresRowSequence) async throws -> [KeyRecord] {
        var records: [KeyRecord] = []
        for try await row in rows.decode(
            (String, String, Int, Int, String, String, Data, String, String, Int, [String], Int64?, Int64?, Int64, Int64,
             Int64?, String, Int64, Int64).self)
        {
            records.append(
                KeyRecord(
                    id: row.0, organizationID: row.1, kind: row.2, ownerType: row.3, ownerID: row.4, name: row.5,
                    secretSHA256: row.6, hint: row.7, keyPrefix: row.8, status: row.9, models: row.10, limitMicros: row.11,
                    expiresAt: row.12, createdAt: row.13, updatedAt: row.14, revokedAt: row.15, createdByUserID: row.16,
                    rpmLimit: row.17, tpmLimit: row.18))
        }
        return records
    }

    func insert(_ record: KeyRecord, committed: @escaping @Sendable (KeyRecord) -> Void) async throws {
        try await writes.run {
            try await database.client.query(
                """
                INSERT INTO keys.keys (\(unescaped: Self.columns)) VALUES (\(record.id), \(record.organizationID), \(record.kind),
                    \(record.ownerType), \(record.ownerID), \(record.name), \(record.secretSHA256), \(record.hint),
                    \(record.keyPrefix), \(record.status), \(record.models), \(record.limitMicros), \(record.expiresAt),
                    \(record.createdAt), \(record.updatedAt), \(record.revokedAt), \(record.createdByUserID), \(record.rpmLimit),
                    \(record.tpmLimit))
                """, logger: logger)
            committed(record)
        }
    }

    func key(id: String, organizationID: String) async throws -> KeyRecord? {
        try await Self.records(
            try await database.client.query(
                "SELECT \(unescaped: Self.columns) FROM keys.keys WHERE id = \(id) AND organization_id = \(organizationID)",
                logger: logger)
        ).first
    }

    func key(secretSHA256: Data) async throws -> KeyRecord? {
        try await Self.records(
            try await database.client.query(
                "SELECT \(unescaped: Self.columns) FROM keys.keys WHERE secret_sha256 = \(secretSHA256)", logger: logger)
        ).first
    }

    func update(
        id: String, organizationID: String, _ change: @escaping @Sendable (inout KeyRecord) throws -> Void,
        committed: @escaping @Sendable (KeyRecord) -> Void
    ) async throws -> KeyRecord? {
        try await writes.run {
            let (record, changed) = try await database.transaction { connection -> (KeyRecord?, Bool) in
                guard
                    var record = try await Self.records(
                        try await connection.query(
                            "SELECT \(unescaped: Self.columns) FROM keys.keys WHERE id = \(id) AND organization_id = \(organizationID) FOR UPDATE",
                            logger: logger)
                    ).first
                else { return (nil, false) }
                let before = record
                try change(&record)
                guard record != before else { return (record, false) }
                try await connection.query(
                    """
                    UPDATE keys.keys SET name = \(record.name), status = \(record.status), models = \(record.models),
                        limit_micros = \(record.limitMicros), expires_at = \(record.expiresAt), updated_at = \(record.updatedAt),
                        revoked_at = \(record.revokedAt), rpm_limit = \(record.rpmLimit), tpm_limit = \(record.tpmLimit),
                        owner_type = \(record.ownerType), owner_id = \(record.ownerID), hint = \(record.hint),
                        key_prefix = \(record.keyPrefix), secret_sha256 = \(record.secretSHA256), kind = \(record.kind),
                        created_by_user_id = \(record.createdByUserID)
                    WHERE id = \(record.id)
                    """, logger: logger)
                return (record, true)
            }
            if changed, let record {
                changes.record()
                committed(record)
            }
            return record
        }
    }

    /// The WHERE clause and ORDER BY … LIMIT of `query`, with its values bound in order.
    private static func listed(_ query: KeyListQuery, revokedStatus: Int) throws -> (filter: String, page: String, binds: PostgresBindings) {
        var binds = PostgresBindings()
        var conditions: [String] = []
        func bind(_ value: some PostgresEncodable & Sendable) throws -> String {
            try binds.append(value)
            return "$\(binds.count)"
        }
        conditions.append("organization_id = \(try bind(query.organizationID))")
        conditions.append("kind = \(try bind(query.kind))")
        if let ownerType = query.ownerType, let ownerID = query.ownerID {
            conditions.append("owner_type = \(try bind(ownerType)) AND owner_id = \(try bind(ownerID))")
        }
        if !query.includeRevoked { conditions.append("status <> \(try bind(revokedStatus))") }
        if !query.nameContains.isEmpty {
            // SQLite's lower() folds ASCII alone; so does this (`C` collation).
            conditions.append("strpos(lower(name COLLATE \"C\"), lower(\(try bind(query.nameContains)) COLLATE \"C\")) > 0")
        }
        if !query.keyIDs.isEmpty { conditions.append("id = ANY(\(try bind(query.keyIDs)))") }
        if let after = query.after {
            let createdAt = try bind(after.createdAt)
            let id = try bind(after.id)
            conditions.append(
                query.newestFirst
                    ? "(created_at < \(createdAt) OR (created_at = \(createdAt) AND id COLLATE \"C\" > \(id)))"
                    : "(created_at > \(createdAt) OR (created_at = \(createdAt) AND id COLLATE \"C\" > \(id)))")
            let order = query.newestFirst ? "created_at DESC" : "created_at ASC"
            return (conditions.joined(separator: " AND "), "ORDER BY \(order), id COLLATE \"C\" LIMIT \(query.limit + 1)", binds)
        }
        let order: String
        switch query.sort {
        case .name: order = "lower(name COLLATE \"C\") \(query.reverse ? "DESC" : "ASC")"
        case .created: order = "created_at \(query.reverse ? "DESC" : "ASC")"
        default: order = "created_at \(query.reverse ? "ASC" : "DESC")"
        }
        return (
            conditions.joined(separator: " AND "),
            "ORDER BY \(order), id COLLATE \"C\" LIMIT \(query.limit) OFFSET \(query.offset)", binds
        )
    }

    private func count(_ filter: String, _ binds: PostgresBindings) async throws -> Int {
        var total = 0
        for try await count in try await database.client.query(
            PostgresQuery(unsafeSQL: "SELECT count(*) FROM keys.keys WHERE \(filter)", binds: binds), logger: logger
        ).decode(Int.self) {
            total = count
        }
        return total
    }

    func list(_ query: KeyListQuery, revokedStatus: Int) async throws -> (records: [KeyRecord], total: Int?) {
        let (filter, page, binds) = try Self.listed(query, revokedStatus: revokedStatus)
        let records = try await Self.records(
            try await database.client.query(
                PostgresQuery(unsafeSQL: "SELECT \(Self.columns) FROM keys.keys WHERE \(filter) \(page)", binds: binds),
                logger: logger))
        return (records, query.after == nil ? try await count(filter, binds) : nil)
    }

    func listIDs(_ query: KeyListQuery, revokedStatus: Int) async throws -> (ids: [KeyListPosition], total: Int?) {
        let (filter, page, binds) = try Self.listed(query, revokedStatus: revokedStatus)
        var ids: [KeyListPosition] = []
        for try await (id, createdAt) in try await database.client.query(
            PostgresQuery(unsafeSQL: "SELECT id, created_at FROM keys.keys WHERE \(filter) \(page)", binds: binds), logger: logger
        ).decode((String, Int64).self) {
            ids.append(KeyListPosition(createdAt: createdAt, id: id))
        }
        return (ids, query.after == nil ? try await count(filter, binds) : nil)
    }

    func all(organizationID: String?) async throws -> [KeyRecord] {
        let operatorKind = Lumen_Keys_V1_KeyKind.operator.rawValue
        if let organizationID {
            return try await Self.records(
                try await database.client.query(
                    """
                    SELECT \(unescaped: Self.columns) FROM keys.keys WHERE kind <> \(operatorKind) AND organization_id = \(organizationID)
                    ORDER BY created_at, id COLLATE "C"
                    """, logger: logger))
        }
        return try await Self.records(
            try await database.client.query(
                "SELECT \(unescaped: Self.columns) FROM keys.keys WHERE kind <> \(operatorKind) ORDER BY created_at, id COLLATE \"C\"",
                logger: logger))
    }

    func operatorTokens() async throws -> [KeyRecord] {
        let operatorKind = Lumen_Keys_V1_KeyKind.operator.rawValue
        return try await Self.records(
            try await database.client.query(
                "SELECT \(unescaped: Self.columns) FROM keys.keys WHERE kind = \(operatorKind) ORDER BY created_at, id COLLATE \"C\"",
                logger: logger))
    }
}
