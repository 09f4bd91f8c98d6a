import Foundation
import GRDB
import Storage

/// The registry's tables in one SQLite file (GRDB). Nothing outside this module reads them.
struct SQLiteRegistryStore: RegistryStorage {
    let writer: any DatabaseWriter

    init(location: ServiceDatabase.Location) throws {
        self.writer = try ServiceDatabase.open(name: "registry", at: location, migrator: Self.migrator)
    }

    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1: models, backends, consents") { db in
            try db.execute(
                sql: """
                    CREATE TABLE models (
                        name TEXT PRIMARY KEY NOT NULL,
                        vendor TEXT NOT NULL,
                        scenes TEXT NOT NULL,
                        input_per_million_micros INTEGER NOT NULL,
                        cached_input_per_million_micros INTEGER NOT NULL,
                        output_per_million_micros INTEGER NOT NULL,
                        per_request_micros INTEGER NOT NULL,
                        consent_required INTEGER NOT NULL,
                        enabled INTEGER NOT NULL,
                        default_max_output_tokens INTEGER NOT NULL,
                        allowed_group_ids TEXT NOT NULL,
                        blocked_group_ids TEXT NOT NULL,
                        description TEXT NOT NULL,
                        updated_at INTEGER NOT NULL
                    );
                    CREATE TABLE backends (
                        model TEXT NOT NULL REFERENCES models(name) ON DELETE CASCADE,
                        id TEXT NOT NULL,
                        provider INTEGER NOT NULL,
                        base_url TEXT NOT NULL,
                        credential_env TEXT NOT NULL,
                        upstream_model TEXT NOT NULL,
                        weight INTEGER NOT NULL,
                        timeout_ms INTEGER NOT NULL,
                        health INTEGER NOT NULL DEFAULT 0,
                        consecutive_failures INTEGER NOT NULL DEFAULT 0,
                        circuit_open_until INTEGER,
                        PRIMARY KEY (model, id)
                    );
                    CREATE TABLE consents (
                        organization_id TEXT NOT NULL,
                        principal_type INTEGER NOT NULL,
                        principal_id TEXT NOT NULL,
                        model TEXT NOT NULL,
                        granted_by_user_id TEXT NOT NULL,
                        created_at INTEGER NOT NULL,
                        PRIMARY KEY (organization_id, principal_type, principal_id, model)
                    );
                    """)
        }
        migrator.registerMigration("v2: what a gateway found wrong with a backend") { db in
            try db.execute(sql: "ALTER TABLE backends ADD COLUMN problem TEXT NOT NULL DEFAULT ''")
        }
        migrator.registerMigration("v3: attachment ceilings, bring-your-own-key backends") { db in
            try db.execute(
                sql: """
                    ALTER TABLE models ADD COLUMN max_attachment_input_tokens INTEGER NOT NULL DEFAULT 8192;
                    ALTER TABLE backends ADD COLUMN byok INTEGER NOT NULL DEFAULT 0;
                    """)
        }
        migrator.registerMigration("v4: a backend's latest failure") { db in
            try db.execute(
                sql: """
                    ALTER TABLE backends ADD COLUMN last_failure TEXT NOT NULL DEFAULT '';
                    ALTER TABLE backends ADD COLUMN last_failure_at INTEGER;
                    """)
        }
        return migrator
    }
}


extension ModelRecord: FetchableRecord, PersistableRecord {
    static let databaseTableName = "models"
}

extension BackendRecord: FetchableRecord, PersistableRecord {
    static let databaseTableName = "backends"
}

extension ConsentRecord: FetchableRecord, PersistableRecord {
    static let databaseTableName = "consents"
}

extension SQLiteRegistryStore {
    static func stored(_ record: ModelRecord, _ db: Database) throws -> StoredModel {
        StoredModel(
            record: record, backends: try BackendRecord.filter(Column("model") == record.name).order(Column("id")).fetchAll(db))
    }

    static func stored(named name: String, _ db: Database) throws -> StoredModel? {
        try ModelRecord.fetchOne(db, key: name).map { try stored($0, db) }
    }

    static func all(includeDisabled: Bool, _ db: Database) throws -> [StoredModel] {
        var query = ModelRecord.order(Column("name"))
        if !includeDisabled { query = query.filter(Column("enabled") == true) }
        return try query.fetchAll(db).map { try stored($0, db) }
    }

    static func key(_ key: BackendKey) -> [String: any DatabaseValueConvertible] { ["model": key.model, "id": key.id] }

    static func key(_ key: ConsentKey) -> [String: any DatabaseValueConvertible] {
        [
            "organization_id": key.organizationID, "principal_type": key.principalType, "principal_id": key.principalID,
            "model": key.model,
        ]
    }

    func models(includeDisabled: Bool) async throws -> [StoredModel] {
        try await writer.read { try Self.all(includeDisabled: includeDisabled, $0) }
    }

    func model(named name: String) async throws -> StoredModel? {
        try await writer.read { try Self.stored(named: name, $0) }
    }

    func snapshot() async throws -> (models: [StoredModel], consents: [ConsentRecord]) {
        try await writer.read { db in (try Self.all(includeDisabled: true, db), try ConsentRecord.fetchAll(db)) }
    }

    // Each write's `then` runs in GRDB's after-commit hook, on the writer: in commit order.

    func save(_ model: ModelRecord, then: @escaping @Sendable (StoredModel) -> Void) async throws -> StoredModel {
        try await writer.write { db in
            try model.save(db)
            let stored = try Self.stored(model, db)
            db.afterNextTransaction { _ in then(stored) }
            return stored
        }
    }

    func saveBackend(
        _ key: BackendKey, make: @escaping @Sendable (BackendRecord?) throws -> BackendRecord,
        then: @escaping @Sendable (StoredModel) -> Void
    ) async throws -> (backend: BackendRecord, model: StoredModel)? {
        try await writer.write { db in
            guard let model = try ModelRecord.fetchOne(db, key: key.model) else { return nil }
            let record = try make(try BackendRecord.fetchOne(db, key: Self.key(key)))
            try record.save(db)
            let stored = try Self.stored(model, db)
            db.afterNextTransaction { _ in then(stored) }
            return (record, stored)
        }
    }

    func removeBackend(_ key: BackendKey, then: @escaping @Sendable (StoredModel) -> Void) async throws -> StoredModel? {
        try await writer.write { db in
            guard try BackendRecord.deleteOne(db, key: Self.key(key)), let stored = try Self.stored(named: key.model, db) else {
                return nil
            }
            db.afterNextTransaction { _ in then(stored) }
            return stored
        }
    }

    func updateBackends(
        _ keys: [BackendKey], change: @escaping @Sendable (_ index: Int, inout BackendRecord) -> Bool,
        then: @escaping @Sendable ([StoredModel]) -> Void
    ) async throws {
        try await writer.write { db in
            var changed = Set<String>()
            for (index, key) in keys.enumerated() {
                guard var record = try BackendRecord.fetchOne(db, key: Self.key(key)), change(index, &record) else { continue }
                try record.update(db)
                changed.insert(record.model)
            }
            guard !changed.isEmpty else { return }
            let models = try changed.sorted().compactMap { try Self.stored(named: $0, db) }
            db.afterNextTransaction { _ in then(models) }
        }
    }

    func consentedModels(organizationID: String, principalType: Int, principalID: String) async throws -> Set<String> {
        try await writer.read { db in
            try String.fetchSet(
                db, sql: "SELECT model FROM consents WHERE organization_id = ? AND principal_type = ? AND principal_id = ?",
                arguments: [organizationID, principalType, principalID])
        }
    }

    func grantConsent(
        _ consent: ConsentRecord, check: @escaping @Sendable (ModelRecord) throws -> Void,
        then: @escaping @Sendable (ConsentRecord) -> Void
    ) async throws -> ConsentRecord? {
        try await writer.write { db in
            guard let model = try ModelRecord.fetchOne(db, key: consent.model) else { return nil }
            try check(model)
            let key = ConsentKey(
                organizationID: consent.organizationID, principalType: consent.principalType, principalID: consent.principalID,
                model: consent.model)
            if let existing = try ConsentRecord.fetchOne(db, key: Self.key(key)) { return existing }
            try consent.insert(db)
            db.afterNextTransaction { _ in then(consent) }
            return consent
        }
    }

    func revokeConsent(_ key: ConsentKey, then: @escaping @Sendable () -> Void) async throws -> Bool {
        try await writer.write { db in
            guard try ConsentRecord.deleteOne(db, key: Self.key(key)) else { return false }
            db.afterNextTransaction { _ in then() }
            return true
        }
    }

    func consents(organizationID: String, principalType: Int?, principalID: String?) async throws -> [ConsentRecord] {
        try await writer.read { db in
            var query = ConsentRecord.filter(Column("organization_id") == organizationID)
            if let principalType, let principalID {
                query = query.filter(Column("principal_type") == principalType && Column("principal_id") == principalID)
            }
            return try query.order(Column("created_at").desc, Column("model")).fetchAll(db)
        }
    }
}
