import Foundation
import GRDB
import RPCSupport
import LumenAPI
import Storage

/// The keys service's table in one SQLite file (GRDB). Nothing outside this module reads it.
struct SQLiteKeysStore: KeysStorage {
    let writer: any DatabaseWriter
    /// Every committed update of a key (`update`), counted after its commit.
    let changes = CredentialChanges()

    init(location: ServiceDatabase.Location) throws {
        self.writer = try ServiceDatabase.open(name: "keys", at: location, migrator: Self.migrator)
    }

    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1: keys") { db in
            try db.execute(
                sql: """
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
                    """)
        }
        migrator.registerMigration("v2: per-key rate limits") { db in
            try db.execute(
                sql: """
                    ALTER TABLE keys ADD COLUMN rpm_limit INTEGER NOT NULL DEFAULT 0;
                    ALTER TABLE keys ADD COLUMN tpm_limit INTEGER NOT NULL DEFAULT 0;
                    """)
        }
        migrator.registerMigration("v3: usage counters are the ledger's") { db in
            // Counted here from the gateway's reports, they drifted from the ledger after a crash;
            // the ledger's key totals are the record now.
            try db.execute(
                sql: """
                    ALTER TABLE keys DROP COLUMN used_micros;
                    ALTER TABLE keys DROP COLUMN request_count;
                    ALTER TABLE keys DROP COLUMN token_count;
                    ALTER TABLE keys DROP COLUMN last_used_at;
                    """)
        }
        migrator.registerMigration("v4: the organisation's keys in list order") { db in
            // Newest first, ties by id: the list's own order, so a page deep into a long list
            // walks the index instead of sorting every key before it (22 ms → 3 ms at offset
            // 19,000). It serves everything the index it replaces did.
            try db.execute(
                sql: """
                    CREATE INDEX keys_listing ON keys(organization_id, kind, created_at DESC, id);
                    DROP INDEX keys_by_organization;
                    """)
        }
        return migrator
    }

    /// Inserts a key; `committed` runs once the transaction commits, on the writer, so that what
    /// it publishes goes out in commit order.
    func insert(_ record: KeyRecord, committed: @escaping @Sendable (KeyRecord) -> Void) async throws {
        try await writer.write { db in
            try record.insert(db)
            db.afterNextTransaction { _ in committed(record) }
        }
    }

    func key(id: String, organizationID: String) async throws -> KeyRecord? {
        try await writer.read { db in
            try KeyRecord.filter(Column("id") == id && Column("organization_id") == organizationID).fetchOne(db)
        }
    }

    func key(secretSHA256: Data) async throws -> KeyRecord? {
        try await writer.read { db in
            try KeyRecord.filter(Column("secret_sha256") == secretSHA256).fetchOne(db)
        }
    }

    /// Reads the key, lets `change` modify it, writes it back, all in one transaction; when the
    /// row changed, `committed` runs once the transaction commits, on the writer (commit order).
    /// Returns nil when there is no such key in the organisation.
    func update(
        id: String, organizationID: String, _ change: @escaping @Sendable (inout KeyRecord) throws -> Void,
        committed: @escaping @Sendable (KeyRecord) -> Void
    ) async throws -> KeyRecord? {
        try await writer.write { db in
            guard
                var record = try KeyRecord.filter(Column("id") == id && Column("organization_id") == organizationID)
                    .fetchOne(db)
            else { return nil }
            let before = record
            try change(&record)
            guard record != before else { return record }
            try record.update(db)
            let changed = record
            db.afterNextTransaction { [changes] _ in
                changes.record()
                committed(changed)
            }
            return record
        }
    }

    /// A page of keys; `total` is nil when the query went on from a position (not counted).
    func list(_ query: KeyListQuery, revokedStatus: Int) async throws -> (records: [KeyRecord], total: Int?) {
        try await writer.read { db in
            let (request, total) = try Self.listed(db, query, revokedStatus: revokedStatus)
            return (try request.fetchAll(db), total)
        }
    }

    /// `list`'s page as ids and creation times alone (no row decoded).
    func listIDs(_ query: KeyListQuery, revokedStatus: Int) async throws -> (ids: [KeyListPosition], total: Int?) {
        try await writer.read { db in
            let (request, total) = try Self.listed(db, query, revokedStatus: revokedStatus)
            let rows = try Row.fetchAll(db, request.select(Column("id"), Column("created_at")))
            return (rows.map { KeyListPosition(createdAt: $0[1], id: $0[0]) }, total)
        }
    }

    /// The page `query` asks for (`limit` rows, one more after a position: whether there are
    /// more), and how many keys match in all (unless it goes on from a position).
    private static func listed(_ db: Database, _ query: KeyListQuery, revokedStatus: Int) throws
        -> (QueryInterfaceRequest<KeyRecord>, Int?)
    {
        var request = KeyRecord.filter(Column("organization_id") == query.organizationID && Column("kind") == query.kind)
        if let ownerType = query.ownerType, let ownerID = query.ownerID {
            request = request.filter(Column("owner_type") == ownerType && Column("owner_id") == ownerID)
        }
        if !query.includeRevoked {
            request = request.filter(Column("status") != revokedStatus)
        }
        if !query.nameContains.isEmpty {
            request = request.filter(sql: "instr(lower(name), lower(?)) > 0", arguments: [query.nameContains])
        }
        if !query.keyIDs.isEmpty {
            request = request.filter(query.keyIDs.contains(Column("id")))
        }
        if let after = query.after {
            // In index order (`keys_listing`: created_at DESC, id): the range on created_at
            // first, then past the position's id among keys created the same millisecond.
            let createdAt = Column("created_at")
            let past = query.newestFirst
                ? createdAt <= after.createdAt && (createdAt < after.createdAt || Column("id") > after.id)
                : createdAt >= after.createdAt && (createdAt > after.createdAt || Column("id") > after.id)
            let order = query.newestFirst ? createdAt.desc : createdAt.asc
            return (request.filter(past).order(order, Column("id").asc).limit(query.limit + 1), nil)
        }
        let total = try request.fetchCount(db)
        let descending = !query.reverse
        let order: [SQLOrdering]
        switch query.sort {
        case .name:
            order = [query.reverse ? Column("name").collating(.nocase).desc : Column("name").collating(.nocase).asc]
        case .created:
            order = [query.reverse ? Column("created_at").desc : Column("created_at").asc]
        default:
            order = [descending ? Column("created_at").desc : Column("created_at").asc]
        }
        return (request.order(order + [Column("id").asc]).limit(query.limit, offset: query.offset), total)
    }

    /// The keys of one organisation, or of every one; never the operator tokens.
    func all(organizationID: String?) async throws -> [KeyRecord] {
        try await writer.read { db in
            var request = KeyRecord.filter(Column("kind") != Lumen_Keys_V1_KeyKind.operator.rawValue)
            if let organizationID { request = request.filter(Column("organization_id") == organizationID) }
            return try request.order(Column("created_at")).fetchAll(db)
        }
    }

    /// Every operator token, revoked ones too, oldest first.
    func operatorTokens() async throws -> [KeyRecord] {
        try await writer.read { db in
            try KeyRecord.filter(Column("kind") == Lumen_Keys_V1_KeyKind.operator.rawValue)
                .order(Column("created_at"), Column("id")).fetchAll(db)
        }
    }
}

extension KeyRecord: FetchableRecord, PersistableRecord {
    static let databaseTableName = "keys"

    /// The columns every read of a key selects, in this order: `init(row:)` reads them by
    /// position (a lookup by name hashes the name, twenty times a row).
    static var databaseSelection: [any SQLSelectable] {
        [
            CodingKeys.id, .organizationID, .kind, .ownerType, .ownerID, .name, .secretSHA256, .hint, .keyPrefix, .status,
            .models, .limitMicros, .expiresAt, .createdAt, .updatedAt, .revokedAt, .createdByUserID, .rpmLimit, .tpmLimit,
        ].map { Column($0.rawValue) }
    }

    /// Read by hand rather than through `Codable`: a list of a thousand keys spent most of its
    /// time decoding rows generically, each `models` column with a JSON decoder of its own.
    init(row: Row) throws {
        id = row[0]
        organizationID = row[1]
        kind = row[2]
        ownerType = row[3]
        ownerID = row[4]
        name = row[5]
        secretSHA256 = row[6]
        hint = row[7]
        keyPrefix = row[8]
        status = row[9]
        let models: String = row[10] ?? "[]"
        self.models = models == "[]" ? [] : try JSONDecoder().decode([String].self, from: Data(models.utf8))
        limitMicros = row[11]
        expiresAt = row[12]
        createdAt = row[13]
        updatedAt = row[14]
        revokedAt = row[15]
        createdByUserID = row[16] ?? ""
        rpmLimit = row[17] ?? 0
        tpmLimit = row[18] ?? 0
    }
}
