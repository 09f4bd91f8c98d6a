import Foundation
import Logging
import Storage

/// The registry's tables, in one SQLite file or the `registry` schema of a PostgreSQL database,
/// read and written through the same statements (`SQLStore`); the lists (scenes, groups) are
/// JSON arrays in text in both. Nothing outside this module reads them. The rules are the
/// service's; the store reads and writes rows.
///
/// Each method is one transaction. Writes are serialised, and a write's `then` runs once it has
/// committed and before the next write starts: events published there reach watchers in commit
/// order, so a gateway never applies an older state after a newer one.
struct RegistryStore: AuditLogged {
    let sql: any SQLStore

    init(location: ServiceDatabase.Location) throws {
        sql = try SQLiteStore(name: "registry", at: location, migrations: Self.migrations)
    }

    /// Opens (and migrates) the tables at `location`: a SQLite file or the `registry` schema of a
    /// PostgreSQL database.
    init(_ location: StoreLocation, logger: Logger) async throws {
        sql = try await location.open("registry", migrations: Self.migrations, logger: logger)
    }

    static let migrations: [SQLMigration] = [
        SQLMigration(
            "v1: models, backends, consents",
            sqlite: [
                """
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
                """
            ],
            postgres: [
                """
                CREATE TABLE models (
                    name TEXT PRIMARY KEY NOT NULL,
                    vendor TEXT NOT NULL,
                    scenes BIGINT[] NOT NULL,
                    input_per_million_micros BIGINT NOT NULL,
                    cached_input_per_million_micros BIGINT NOT NULL,
                    output_per_million_micros BIGINT NOT NULL,
                    per_request_micros BIGINT NOT NULL,
                    consent_required BOOLEAN NOT NULL,
                    enabled BOOLEAN NOT NULL,
                    default_max_output_tokens BIGINT NOT NULL,
                    allowed_group_ids TEXT[] NOT NULL,
                    blocked_group_ids TEXT[] NOT NULL,
                    description TEXT NOT NULL,
                    updated_at BIGINT NOT NULL
                )
                """,
                """
                CREATE TABLE backends (
                    model TEXT NOT NULL REFERENCES models(name) ON DELETE CASCADE,
                    id TEXT NOT NULL,
                    provider BIGINT NOT NULL,
                    base_url TEXT NOT NULL,
                    credential_env TEXT NOT NULL,
                    upstream_model TEXT NOT NULL,
                    weight BIGINT NOT NULL,
                    timeout_ms BIGINT NOT NULL,
                    health BIGINT NOT NULL DEFAULT 0,
                    consecutive_failures BIGINT NOT NULL DEFAULT 0,
                    circuit_open_until BIGINT,
                    PRIMARY KEY (model, id)
                )
                """,
                """
                CREATE TABLE consents (
                    organization_id TEXT NOT NULL,
                    principal_type BIGINT NOT NULL,
                    principal_id TEXT NOT NULL,
                    model TEXT NOT NULL,
                    granted_by_user_id TEXT NOT NULL,
                    created_at BIGINT NOT NULL,
                    PRIMARY KEY (organization_id, principal_type, principal_id, model)
                )
                """,
            ]),
        SQLMigration("v2: what a gateway found wrong with a backend", "ALTER TABLE backends ADD COLUMN problem TEXT NOT NULL DEFAULT ''"),
        SQLMigration(
            "v3: attachment ceilings, bring-your-own-key backends",
            sqlite: [
                """
                ALTER TABLE models ADD COLUMN max_attachment_input_tokens INTEGER NOT NULL DEFAULT 8192;
                ALTER TABLE backends ADD COLUMN byok INTEGER NOT NULL DEFAULT 0;
                """
            ],
            postgres: [
                "ALTER TABLE models ADD COLUMN max_attachment_input_tokens BIGINT NOT NULL DEFAULT 8192",
                "ALTER TABLE backends ADD COLUMN byok BOOLEAN NOT NULL DEFAULT FALSE",
            ]),
        SQLMigration(
            "v4: a backend's latest failure",
            sqlite: [
                """
                ALTER TABLE backends ADD COLUMN last_failure TEXT NOT NULL DEFAULT '';
                ALTER TABLE backends ADD COLUMN last_failure_at INTEGER;
                """
            ],
            postgres: [
                "ALTER TABLE backends ADD COLUMN last_failure TEXT NOT NULL DEFAULT ''",
                "ALTER TABLE backends ADD COLUMN last_failure_at BIGINT",
            ]),
        // One set of statements for both: the lists are JSON arrays in text, as on SQLite.
        SQLMigration(
            "v5: the same columns as SQLite",
            sqlite: [],
            postgres: [
                "ALTER TABLE models ALTER COLUMN scenes TYPE TEXT USING array_to_json(scenes)::text",
                "ALTER TABLE models ALTER COLUMN allowed_group_ids TYPE TEXT USING array_to_json(allowed_group_ids)::text",
                "ALTER TABLE models ALTER COLUMN blocked_group_ids TYPE TEXT USING array_to_json(blocked_group_ids)::text",
            ]),
        SQLMigration(
            "v6: cache-write prices",
            sqlite: ["ALTER TABLE models ADD COLUMN cache_write_per_million_micros INTEGER NOT NULL DEFAULT 0"],
            postgres: ["ALTER TABLE models ADD COLUMN cache_write_per_million_micros BIGINT NOT NULL DEFAULT 0"]),
        SQLMigration("v7: an azure backend's API version", "ALTER TABLE backends ADD COLUMN api_version TEXT NOT NULL DEFAULT ''"),
        SQLMigration(
            "v8: a bedrock backend's region and AWS profile", "ALTER TABLE backends ADD COLUMN region TEXT NOT NULL DEFAULT ''",
            "ALTER TABLE backends ADD COLUMN aws_profile TEXT NOT NULL DEFAULT ''"),
        SQLMigration("v9: an azure backend's bearer token source", "ALTER TABLE backends ADD COLUMN token_source TEXT NOT NULL DEFAULT ''"),
        AuditTrail.migration("v10: the audit log"),
        AuditCheckpoint.migration("v11: the audit log's checkpoint"),
    ]

    static let modelColumns = """
        name, vendor, scenes, input_per_million_micros, cached_input_per_million_micros, output_per_million_micros,
        per_request_micros, consent_required, enabled, default_max_output_tokens, allowed_group_ids, blocked_group_ids,
        description, updated_at, max_attachment_input_tokens, cache_write_per_million_micros
        """
    static let backendColumns = """
        model, id, provider, base_url, credential_env, upstream_model, weight, timeout_ms, health, consecutive_failures,
        circuit_open_until, problem, byok, last_failure, last_failure_at, api_version, region, aws_profile, token_source
        """
    static let consentColumns = "organization_id, principal_type, principal_id, model, granted_by_user_id, created_at"

    /// Models (all, the enabled ones, or the one named) with their backends by id; names in
    /// byte order, as both dialects compare them here.
    static func stored(_ db: any SQLSession, includeDisabled: Bool = true, named: String? = nil) async throws -> [StoredModel] {
        let order = db.dialect.byteOrder
        let models: [ModelRecord]
        let backends: [BackendRecord]
        if let named {
            models = try await db.rows("SELECT \(modelColumns) FROM models WHERE name = ?", .text(named)).map(ModelRecord.init)
            backends = try await db.rows("SELECT \(backendColumns) FROM backends WHERE model = ? ORDER BY id\(order)", .text(named))
                .map(BackendRecord.init)
        } else {
            models = try await db.rows(
                "SELECT \(modelColumns) FROM models\(includeDisabled ? "" : " WHERE enabled = TRUE") ORDER BY name\(order)"
            ).map(ModelRecord.init)
            backends = try await db.rows("SELECT \(backendColumns) FROM backends ORDER BY model\(order), id\(order)")
                .map(BackendRecord.init)
        }
        let byModel = Dictionary(grouping: backends, by: \.model)
        return models.map { StoredModel(record: $0, backends: byModel[$0.name] ?? []) }
    }

    /// Models by name, with their backends by id; only the enabled ones unless `includeDisabled`.
    func models(includeDisabled: Bool) async throws -> [StoredModel] {
        try await sql.read { try await Self.stored($0, includeDisabled: includeDisabled) }
    }

    func model(named name: String) async throws -> StoredModel? {
        try await sql.read { try await Self.stored($0, named: name).first }
    }

    /// Every model and every consent, read at one point in time (a watch's snapshot).
    func snapshot() async throws -> (models: [StoredModel], consents: [ConsentRecord]) {
        try await sql.snapshot { db in
            (try await Self.stored(db), try await db.rows("SELECT \(Self.consentColumns) FROM consents").map(ConsentRecord.init))
        }
    }

    /// Inserts or replaces a model (its backends stay); the model after it. `audit` (its actor,
    /// time, action and target) is recorded with the model before and after, unless nothing changed.
    func save(_ model: ModelRecord, audit: AuditEntry, then: @escaping @Sendable (StoredModel) -> Void) async throws -> StoredModel {
        try await sql.write { db in
            var before = try await db.row("SELECT \(Self.modelColumns) FROM models WHERE name = ?", .text(model.name)).map(ModelRecord.init)
            try await db.execute(
                """
                INSERT INTO models (\(Self.modelColumns)) VALUES (\(sqlPlaceholders(16)))
                ON CONFLICT (name) DO UPDATE SET vendor = excluded.vendor, scenes = excluded.scenes,
                    input_per_million_micros = excluded.input_per_million_micros,
                    cached_input_per_million_micros = excluded.cached_input_per_million_micros,
                    output_per_million_micros = excluded.output_per_million_micros, per_request_micros = excluded.per_request_micros,
                    consent_required = excluded.consent_required, enabled = excluded.enabled,
                    default_max_output_tokens = excluded.default_max_output_tokens, allowed_group_ids = excluded.allowed_group_ids,
                    blocked_group_ids = excluded.blocked_group_ids, description = excluded.description, updated_at = excluded.updated_at,
                    max_attachment_input_tokens = excluded.max_attachment_input_tokens,
                    cache_write_per_million_micros = excluded.cache_write_per_million_micros
                """, try model.values)
            let beforeJSON = before.map { AuditTrail.json($0) } ?? ""
            before?.updatedAt = model.updatedAt
            if before != model { try await Self.record(audit, before: beforeJSON, after: AuditTrail.json(model), in: db) }
            let stored = try await Self.stored(db, named: model.name)[0]
            db.afterCommit { then(stored) }
            return stored
        }
    }

    /// Appends `audit` with the target's JSON before and after.
    static func record(_ audit: AuditEntry, before: String, after: String, in db: any SQLSession) async throws {
        var entry = audit
        entry.before = before
        entry.after = after
        try await AuditTrail.append(entry, in: db)
    }

    /// Inserts or replaces a backend of an existing model, `make` building it from the one it
    /// replaces; nil when the model does not exist (nothing written).
    func saveBackend(
        _ key: BackendKey, make: @escaping @Sendable (BackendRecord?) throws -> BackendRecord, audit: AuditEntry,
        then: @escaping @Sendable (StoredModel) -> Void
    ) async throws -> (backend: BackendRecord, model: StoredModel)? {
        try await sql.write { db in
            // The model's row locked: a concurrent removal of the model waits for this.
            guard try await db.row("SELECT name FROM models WHERE name = ?\(db.dialect.forUpdate)", .text(key.model)) != nil else {
                return nil
            }
            let before = try await Self.backend(key, db)
            let record = try make(before)
            try await db.execute(
                """
                INSERT INTO backends (\(Self.backendColumns)) VALUES (\(sqlPlaceholders(19)))
                ON CONFLICT (model, id) DO UPDATE SET provider = excluded.provider, base_url = excluded.base_url,
                    credential_env = excluded.credential_env, upstream_model = excluded.upstream_model, weight = excluded.weight,
                    timeout_ms = excluded.timeout_ms, health = excluded.health, consecutive_failures = excluded.consecutive_failures,
                    circuit_open_until = excluded.circuit_open_until, problem = excluded.problem, byok = excluded.byok,
                    last_failure = excluded.last_failure, last_failure_at = excluded.last_failure_at,
                    api_version = excluded.api_version, region = excluded.region, aws_profile = excluded.aws_profile,
                    token_source = excluded.token_source
                """, record.values)
            if before != record {
                try await Self.record(audit, before: before.map { AuditTrail.json($0) } ?? "", after: AuditTrail.json(record), in: db)
            }
            let stored = try await Self.stored(db, named: key.model)[0]
            db.afterCommit { then(stored) }
            return (record, stored)
        }
    }

    static func backend(_ key: BackendKey, _ db: any SQLSession, locked: Bool = false) async throws -> BackendRecord? {
        try await db.row(
            "SELECT \(backendColumns) FROM backends WHERE model = ? AND id = ?\(locked ? db.dialect.forUpdate : "")", .text(key.model),
            .text(key.id)
        ).map(BackendRecord.init)
    }

    /// Removes a backend; its model after it, nil when there was no such backend.
    func removeBackend(
        _ key: BackendKey, audit: AuditEntry, then: @escaping @Sendable (StoredModel) -> Void
    ) async throws -> StoredModel? {
        try await sql.write { db in
            guard let before = try await Self.backend(key, db, locked: true) else { return nil }
            try await db.execute("DELETE FROM backends WHERE model = ? AND id = ?", .text(key.model), .text(key.id))
            try await Self.record(audit, before: AuditTrail.json(before), after: "", in: db)
            guard let stored = try await Self.stored(db, named: key.model).first else { return nil }
            db.afterCommit { then(stored) }
            return stored
        }
    }

    /// Applies `change` to each listed backend that exists (`index` into `keys`), writes those it
    /// changed (it answers true), and hands the models whose backends changed, by name, to `then`.
    func updateBackends(
        _ keys: [BackendKey], change: @escaping @Sendable (_ index: Int, inout BackendRecord) -> Bool,
        then: @escaping @Sendable ([StoredModel]) -> Void
    ) async throws {
        try await sql.write { db in
            var changed = Set<String>()
            for (index, key) in keys.enumerated() {
                guard var record = try await Self.backend(key, db, locked: true), change(index, &record) else { continue }
                try await db.execute(
                    """
                    UPDATE backends SET health = ?, consecutive_failures = ?, circuit_open_until = ?, problem = ?, last_failure = ?,
                        last_failure_at = ?
                    WHERE model = ? AND id = ?
                    """, .of(record.health), .of(record.consecutiveFailures), .of(record.circuitOpenUntil), .text(record.problem),
                    .text(record.lastFailure), .of(record.lastFailureAt), .text(record.model), .text(record.id))
                changed.insert(record.model)
            }
            guard !changed.isEmpty else { return }
            var models: [StoredModel] = []
            for name in changed.sorted() { models += try await Self.stored(db, named: name) }
            db.afterCommit { [models] in then(models) }
        }
    }

    /// The models a principal has consented to.
    func consentedModels(organizationID: String, principalType: Int, principalID: String) async throws -> Set<String> {
        try await sql.read { db in
            Set(
                try await db.column(
                    String.self, "SELECT model FROM consents WHERE organization_id = ? AND principal_type = ? AND principal_id = ?",
                    .text(organizationID), .of(principalType), .text(principalID)))
        }
    }

    /// Records `consent` unless the same one exists (answered then, `then` not called); `check`
    /// sees the model first and may refuse; nil when the model does not exist.
    func grantConsent(
        _ consent: ConsentRecord, check: @escaping @Sendable (ModelRecord) throws -> Void, audit: AuditEntry,
        then: @escaping @Sendable (ConsentRecord) -> Void
    ) async throws -> ConsentRecord? {
        try await sql.write { db in
            guard
                let model = try await db.row(
                    "SELECT \(Self.modelColumns) FROM models WHERE name = ?\(db.dialect.forUpdate)", .text(consent.model)
                ).map(ModelRecord.init)
            else { return nil }
            try check(model)
            let key: [SQLValue] = [.text(consent.organizationID), .of(consent.principalType), .text(consent.principalID), .text(consent.model)]
            if let existing = try await db.rows(
                """
                SELECT \(Self.consentColumns) FROM consents
                WHERE organization_id = ? AND principal_type = ? AND principal_id = ? AND model = ?
                """, key
            ).first {
                return try ConsentRecord(existing)
            }
            try await db.execute(
                "INSERT INTO consents (\(Self.consentColumns)) VALUES (?, ?, ?, ?, ?, ?)",
                key + [.text(consent.grantedByUserID), .integer(consent.createdAt)])
            try await Self.record(audit, before: "", after: AuditTrail.json(consent), in: db)
            db.afterCommit { then(consent) }
            return consent
        }
    }

    /// Removes a consent; whether there was one (`then` runs only then).
    func revokeConsent(_ key: ConsentKey, audit: AuditEntry, then: @escaping @Sendable () -> Void) async throws -> Bool {
        try await sql.write { db in
            let arguments: [SQLValue] = [.text(key.organizationID), .of(key.principalType), .text(key.principalID), .text(key.model)]
            let condition = "organization_id = ? AND principal_type = ? AND principal_id = ? AND model = ?"
            guard let before = try await db.rows("SELECT \(Self.consentColumns) FROM consents WHERE \(condition)", arguments).first else {
                return false
            }
            try await db.execute("DELETE FROM consents WHERE \(condition)", arguments)
            try await Self.record(audit, before: AuditTrail.json(try ConsentRecord(before)), after: "", in: db)
            db.afterCommit { then() }
            return true
        }
    }


    /// An organisation's consents (one principal's, when given), newest first, then by model.
    func consents(organizationID: String, principalType: Int?, principalID: String?) async throws -> [ConsentRecord] {
        try await sql.read { db in
            var condition = "organization_id = ?"
            var arguments: [SQLValue] = [.text(organizationID)]
            if let principalType, let principalID {
                condition += " AND principal_type = ? AND principal_id = ?"
                arguments += [.of(principalType), .text(principalID)]
            }
            return try await db.rows(
                "SELECT \(Self.consentColumns) FROM consents WHERE \(condition) ORDER BY created_at DESC, model\(db.dialect.byteOrder)",
                arguments
            ).map(ConsentRecord.init)
        }
    }
}

/// A list column: a JSON array in text.
private func jsonList<T: Codable>(_ text: String, _: T.Type = T.self) throws -> [T] {
    try JSONDecoder().decode([T].self, from: Data(text.utf8))
}

private func jsonText(_ list: some Encodable) throws -> SQLValue {
    .text(String(decoding: try JSONEncoder().encode(list), as: UTF8.self))
}

extension ModelRecord {
    /// A row of `RegistryStore.modelColumns`, by position.
    init(_ row: SQLRow) throws {
        name = try row[0]
        vendor = try row[1]
        scenes = try jsonList(try row[2])
        inputPerMillionMicros = try row[3]
        cachedInputPerMillionMicros = try row[4]
        outputPerMillionMicros = try row[5]
        perRequestMicros = try row[6]
        consentRequired = try row[7]
        enabled = try row[8]
        maxOutputTokens = try row[9]
        allowedGroupIDs = try jsonList(try row[10])
        blockedGroupIDs = try jsonList(try row[11])
        description = try row[12]
        updatedAt = try row[13]
        maxAttachmentInputTokens = try row[14]
        cacheWritePerMillionMicros = try row[15]
    }

    /// The values of `RegistryStore.modelColumns`, in order.
    var values: [SQLValue] {
        get throws {
            [
                .text(name), .text(vendor), try jsonText(scenes), .integer(inputPerMillionMicros), .integer(cachedInputPerMillionMicros),
                .integer(outputPerMillionMicros), .integer(perRequestMicros), .bool(consentRequired), .bool(enabled),
                .integer(maxOutputTokens), try jsonText(allowedGroupIDs), try jsonText(blockedGroupIDs), .text(description),
                .integer(updatedAt), .integer(maxAttachmentInputTokens), .integer(cacheWritePerMillionMicros),
            ]
        }
    }
}

extension BackendRecord {
    /// A row of `RegistryStore.backendColumns`, by position.
    init(_ row: SQLRow) throws {
        self.init(
            model: try row[0], id: try row[1], provider: try row[2], baseURL: try row[3], credentialEnv: try row[4],
            upstreamModel: try row[5], weight: try row[6], timeoutMs: try row[7], health: try row[8], consecutiveFailures: try row[9],
            circuitOpenUntil: try row[10], problem: try row[11], byok: try row[12], lastFailure: try row[13],
            lastFailureAt: try row[14], apiVersion: try row[15], region: try row[16], awsProfile: try row[17], tokenSource: try row[18])
    }

    /// The values of `RegistryStore.backendColumns`, in order.
    var values: [SQLValue] {
        [
            .text(model), .text(id), .of(provider), .text(baseURL), .text(credentialEnv), .text(upstreamModel), .of(weight),
            .of(timeoutMs), .of(health), .of(consecutiveFailures), .of(circuitOpenUntil), .text(problem), .bool(byok),
            .text(lastFailure), .of(lastFailureAt), .text(apiVersion), .text(region), .text(awsProfile), .text(tokenSource),
        ]
    }
}

extension ConsentRecord {
    /// A row of `RegistryStore.consentColumns`, by position.
    init(_ row: SQLRow) throws {
        self.init(
            organizationID: try row[0], principalType: try row[1], principalID: try row[2], model: try row[3],
            grantedByUserID: try row[4], createdAt: try row[5])
    }
}
