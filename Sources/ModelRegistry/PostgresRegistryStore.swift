import Logging
import PostgresNIO
import Storage

/// The registry's tables in the `registry` schema of a PostgreSQL database: the same tables and
/// migrations as `SQLiteRegistryStore`, in PostgreSQL's dialect (arrays for the lists SQLite
/// keeps as JSON text). Names sort byte-wise (`COLLATE "C"`), as in SQLite, whatever the
/// database's collation.
struct PostgresRegistryStore: RegistryStorage {
    let database: PostgresServiceDatabase
    let logger: Logger
    let writes = SerialWrites()

    static let migrations: [(name: String, statements: [String])] = [
        (
            "v1: models, backends, consents",
            [
                """
                CREATE TABLE registry.models (
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
                CREATE TABLE registry.backends (
                    model TEXT NOT NULL REFERENCES registry.models(name) ON DELETE CASCADE,
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
                CREATE TABLE registry.consents (
                    organization_id TEXT NOT NULL,
                    principal_type BIGINT NOT NULL,
                    principal_id TEXT NOT NULL,
                    model TEXT NOT NULL,
                    granted_by_user_id TEXT NOT NULL,
                    created_at BIGINT NOT NULL,
                    PRIMARY KEY (organization_id, principal_type, principal_id, model)
                )
                """,
            ]
        ),
        (
            "v2: what a gateway found wrong with a backend",
            ["ALTER TABLE registry.backends ADD COLUMN problem TEXT NOT NULL DEFAULT ''"]
        ),
        (
            "v3: attachment ceilings, bring-your-own-key backends",
            [
                "ALTER TABLE registry.models ADD COLUMN max_attachment_input_tokens BIGINT NOT NULL DEFAULT 8192",
                "ALTER TABLE registry.backends ADD COLUMN byok BOOLEAN NOT NULL DEFAULT FALSE",
            ]
        ),
        (
            "v4: a backend's latest failure",
            [
                "ALTER TABLE registry.backends ADD COLUMN last_failure TEXT NOT NULL DEFAULT ''",
                "ALTER TABLE registry.backends ADD COLUMN last_failure_at BIGINT",
            ]
        ),
    ]

    init(database: PostgresServiceDatabase, logger: Logger) async throws {
        self.database = database
        self.logger = logger
        try await database.migrate(schema: "registry", Self.migrations)
    }

    // MARK: Rows

    static let modelColumns = """
        name, vendor, scenes, input_per_million_micros, cached_input_per_million_micros, output_per_million_micros,
        per_request_micros, consent_required, enabled, default_max_output_tokens, allowed_group_ids, blocked_group_ids,
        description, updated_at, max_attachment_input_tokens
        """
    static let backendColumns = """
        model, id, provider, base_url, credential_env, upstream_model, weight, timeout_ms, health, consecutive_failures,
        circuit_open_until, problem, byok, last_failure, last_failure_at
        """
    static let consentColumns = "organization_id, principal_type, principal_id, model, granted_by_user_id, created_at"

    static func models(_ rows: PostgresRowSequence) async throws -> [ModelRecord] {
        var records: [ModelRecord] = []
        for try await row in rows.decode(
            (String, String, [Int], Int64, Int64, Int64, Int64, Bool, Bool, Int64, [String], [String], String, Int64, Int64).self)
        {
            records.append(
                ModelRecord(
                    name: row.0, vendor: row.1, scenes: row.2, inputPerMillionMicros: row.3, cachedInputPerMillionMicros: row.4,
                    outputPerMillionMicros: row.5, perRequestMicros: row.6, consentRequired: row.7, enabled: row.8,
                    maxOutputTokens: row.9, maxAttachmentInputTokens: row.14, allowedGroupIDs: row.10, blockedGroupIDs: row.11,
                    description: row.12, updatedAt: row.13))
        }
        return records
    }

    static func backends(_ rows: PostgresRowSequence) async throws -> [BackendRecord] {
        var records: [BackendRecord] = []
        for try await row in rows.decode(
            (String, String, Int, String, String, String, Int, Int, Int, Int, Int64?, String, Bool, String, Int64?).self)
        {
            records.append(
                BackendRecord(
                    model: row.0, id: row.1, provider: row.2, baseURL: row.3, credentialEnv: row.4, upstreamModel: row.5,
                    weight: row.6, timeoutMs: row.7, health: row.8, consecutiveFailures: row.9, circuitOpenUntil: row.10,
                    problem: row.11, byok: row.12, lastFailure: row.13, lastFailureAt: row.14))
        }
        return records
    }

    static func consents(_ rows: PostgresRowSequence) async throws -> [ConsentRecord] {
        var records: [ConsentRecord] = []
        for try await row in rows.decode((String, Int, String, String, String, Int64).self) {
            records.append(
                ConsentRecord(
                    organizationID: row.0, principalType: row.1, principalID: row.2, model: row.3, grantedByUserID: row.4,
                    createdAt: row.5))
        }
        return records
    }

    /// Models (all, or those named) with their backends, read on `connection`.
    func stored(_ connection: PostgresConnection, includeDisabled: Bool = true, named: String? = nil) async throws -> [StoredModel] {
        let models: [ModelRecord]
        let backends: [BackendRecord]
        if let named {
            models = try await Self.models(
                try await connection.query(
                    "SELECT \(unescaped: Self.modelColumns) FROM registry.models WHERE name = \(named)", logger: logger))
            backends = try await Self.backends(
                try await connection.query(
                    "SELECT \(unescaped: Self.backendColumns) FROM registry.backends WHERE model = \(named) ORDER BY id COLLATE \"C\"",
                    logger: logger))
        } else {
            models = try await Self.models(
                try await connection.query(
                    "SELECT \(unescaped: Self.modelColumns) FROM registry.models \(unescaped: includeDisabled ? "" : "WHERE enabled") ORDER BY name COLLATE \"C\"",
                    logger: logger))
            backends = try await Self.backends(
                try await connection.query(
                    "SELECT \(unescaped: Self.backendColumns) FROM registry.backends ORDER BY model COLLATE \"C\", id COLLATE \"C\"",
                    logger: logger))
        }
        let byModel = Dictionary(grouping: backends, by: \.model)
        return models.map { StoredModel(record: $0, backends: byModel[$0.name] ?? []) }
    }

    /// Runs `body` in a transaction, one write at a time; `then` after its commit, before the
    /// next write starts.
    func write<Result: Sendable>(
        _ body: @escaping @Sendable (PostgresConnection) async throws -> Result, then: @Sendable (Result) -> Void = { _ in }
    ) async throws -> Result {
        try await writes.run {
            let result = try await database.transaction(body)
            then(result)
            return result
        }
    }

    func read<Result: Sendable>(_ body: @escaping @Sendable (PostgresConnection) async throws -> Result) async throws -> Result {
        try await database.client.withConnection { try await body($0) }
    }

    // MARK: RegistryStorage

    func models(includeDisabled: Bool) async throws -> [StoredModel] {
        try await read { try await stored($0, includeDisabled: includeDisabled) }
    }

    func model(named name: String) async throws -> StoredModel? {
        try await read { try await stored($0, named: name).first }
    }

    func snapshot() async throws -> (models: [StoredModel], consents: [ConsentRecord]) {
        try await database.transaction { connection in
            try await connection.query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ", logger: logger)
            let models = try await stored(connection)
            let consents = try await Self.consents(
                try await connection.query("SELECT \(unescaped: Self.consentColumns) FROM registry.consents", logger: logger))
            return (models, consents)
        }
    }

    func save(_ model: ModelRecord, then: @escaping @Sendable (StoredModel) -> Void) async throws -> StoredModel {
        let saved = try await write({ connection in
            try await connection.query(
                """
                INSERT INTO registry.models (\(unescaped: Self.modelColumns)) VALUES (\(model.name), \(model.vendor), \(model.scenes),
                    \(model.inputPerMillionMicros), \(model.cachedInputPerMillionMicros), \(model.outputPerMillionMicros),
                    \(model.perRequestMicros), \(model.consentRequired), \(model.enabled), \(model.maxOutputTokens),
                    \(model.allowedGroupIDs), \(model.blockedGroupIDs), \(model.description), \(model.updatedAt),
                    \(model.maxAttachmentInputTokens))
                ON CONFLICT (name) DO UPDATE SET vendor = excluded.vendor, scenes = excluded.scenes,
                    input_per_million_micros = excluded.input_per_million_micros,
                    cached_input_per_million_micros = excluded.cached_input_per_million_micros,
                    output_per_million_micros = excluded.output_per_million_micros, per_request_micros = excluded.per_request_micros,
                    consent_required = excluded.consent_required, enabled = excluded.enabled,
                    default_max_output_tokens = excluded.default_max_output_tokens, allowed_group_ids = excluded.allowed_group_ids,
                    blocked_group_ids = excluded.blocked_group_ids, description = excluded.description, updated_at = excluded.updated_at,
                    max_attachment_input_tokens = excluded.max_attachment_input_tokens
                """, logger: logger)
            return try await stored(connection, named: model.name)[0]
        }, then: then)
        return saved
    }

    func saveBackend(
        _ key: BackendKey, make: @escaping @Sendable (BackendRecord?) throws -> BackendRecord,
        then: @escaping @Sendable (StoredModel) -> Void
    ) async throws -> (backend: BackendRecord, model: StoredModel)? {
        try await write({ connection -> (backend: BackendRecord, model: StoredModel)? in
            // The model's row locked: a concurrent removal of the model waits for this.
            let model = try await Self.models(
                try await connection.query(
                    "SELECT \(unescaped: Self.modelColumns) FROM registry.models WHERE name = \(key.model) FOR UPDATE", logger: logger))
            guard !model.isEmpty else { return nil }
            let existing = try await Self.backends(
                try await connection.query(
                    "SELECT \(unescaped: Self.backendColumns) FROM registry.backends WHERE model = \(key.model) AND id = \(key.id)",
                    logger: logger)
            ).first
            let record = try make(existing)
            try await connection.query(
                """
                INSERT INTO registry.backends (\(unescaped: Self.backendColumns)) VALUES (\(record.model), \(record.id),
                    \(record.provider), \(record.baseURL), \(record.credentialEnv), \(record.upstreamModel), \(record.weight),
                    \(record.timeoutMs), \(record.health), \(record.consecutiveFailures), \(record.circuitOpenUntil), \(record.problem),
                    \(record.byok), \(record.lastFailure), \(record.lastFailureAt))
                ON CONFLICT (model, id) DO UPDATE SET provider = excluded.provider, base_url = excluded.base_url,
                    credential_env = excluded.credential_env, upstream_model = excluded.upstream_model, weight = excluded.weight,
                    timeout_ms = excluded.timeout_ms, health = excluded.health, consecutive_failures = excluded.consecutive_failures,
                    circuit_open_until = excluded.circuit_open_until, problem = excluded.problem, byok = excluded.byok,
                    last_failure = excluded.last_failure, last_failure_at = excluded.last_failure_at
                """, logger: logger)
            return (record, try await stored(connection, named: key.model)[0])
        }, then: { result in if let result { then(result.model) } })
    }

    func removeBackend(_ key: BackendKey, then: @escaping @Sendable (StoredModel) -> Void) async throws -> StoredModel? {
        try await write({ connection -> StoredModel? in
            var removed = 0
            for try await _ in try await connection.query(
                "DELETE FROM registry.backends WHERE model = \(key.model) AND id = \(key.id) RETURNING id", logger: logger)
            {
                removed += 1
            }
            guard removed > 0 else { return nil }
            return try await stored(connection, named: key.model).first
        }, then: { model in if let model { then(model) } })
    }

    func updateBackends(
        _ keys: [BackendKey], change: @escaping @Sendable (_ index: Int, inout BackendRecord) -> Bool,
        then: @escaping @Sendable ([StoredModel]) -> Void
    ) async throws {
        _ = try await write({ connection -> [StoredModel] in
            var changed = Set<String>()
            for (index, key) in keys.enumerated() {
                guard
                    var record = try await Self.backends(
                        try await connection.query(
                            "SELECT \(unescaped: Self.backendColumns) FROM registry.backends WHERE model = \(key.model) AND id = \(key.id) FOR UPDATE",
                            logger: logger)
                    ).first,
                    change(index, &record)
                else { continue }
                try await connection.query(
                    """
                    UPDATE registry.backends SET health = \(record.health), consecutive_failures = \(record.consecutiveFailures),
                        circuit_open_until = \(record.circuitOpenUntil), problem = \(record.problem),
                        last_failure = \(record.lastFailure), last_failure_at = \(record.lastFailureAt)
                    WHERE model = \(record.model) AND id = \(record.id)
                    """, logger: logger)
                changed.insert(record.model)
            }
            var models: [StoredModel] = []
            for name in changed.sorted() { models += try await stored(connection, named: name) }
            return models
        }, then: { models in if !models.isEmpty { then(models) } })
    }

    func consentedModels(organizationID: String, principalType: Int, principalID: String) async throws -> Set<String> {
        try await read { connection in
            var models = Set<String>()
            for try await model in try await connection.query(
                """
                SELECT model FROM registry.consents
                WHERE organization_id = \(organizationID) AND principal_type = \(principalType) AND principal_id = \(principalID)
                """, logger: logger
            ).decode(String.self) {
                models.insert(model)
            }
            return models
        }
    }

    func grantConsent(
        _ consent: ConsentRecord, check: @escaping @Sendable (ModelRecord) throws -> Void,
        then: @escaping @Sendable (ConsentRecord) -> Void
    ) async throws -> ConsentRecord? {
        let result = try await write({ connection -> (ConsentRecord, inserted: Bool)? in
            guard
                let model = try await Self.models(
                    try await connection.query(
                        "SELECT \(unescaped: Self.modelColumns) FROM registry.models WHERE name = \(consent.model) FOR SHARE",
                        logger: logger)
                ).first
            else { return nil }
            try check(model)
            let inserted = try await Self.consents(
                try await connection.query(
                    """
                    INSERT INTO registry.consents (\(unescaped: Self.consentColumns)) VALUES (\(consent.organizationID),
                        \(consent.principalType), \(consent.principalID), \(consent.model), \(consent.grantedByUserID), \(consent.createdAt))
                    ON CONFLICT DO NOTHING RETURNING \(unescaped: Self.consentColumns)
                    """, logger: logger))
            if let record = inserted.first { return (record, true) }
            let existing = try await Self.consents(
                try await connection.query(
                    """
                    SELECT \(unescaped: Self.consentColumns) FROM registry.consents WHERE organization_id = \(consent.organizationID)
                        AND principal_type = \(consent.principalType) AND principal_id = \(consent.principalID) AND model = \(consent.model)
                    """, logger: logger))
            return existing.first.map { ($0, false) }
        }, then: { result in if let (record, inserted) = result, inserted { then(record) } })
        return result?.0
    }

    func revokeConsent(_ key: ConsentKey, then: @escaping @Sendable () -> Void) async throws -> Bool {
        try await write({ connection -> Bool in
            var removed = false
            for try await _ in try await connection.query(
                """
                DELETE FROM registry.consents WHERE organization_id = \(key.organizationID) AND principal_type = \(key.principalType)
                    AND principal_id = \(key.principalID) AND model = \(key.model) RETURNING model
                """, logger: logger)
            {
                removed = true
            }
            return removed
        }, then: { removed in if removed { then() } })
    }

    func consents(organizationID: String, principalType: Int?, principalID: String?) async throws -> [ConsentRecord] {
        try await read { connection in
            if let principalType, let principalID {
                return try await Self.consents(
                    try await connection.query(
                        """
                        SELECT \(unescaped: Self.consentColumns) FROM registry.consents WHERE organization_id = \(organizationID)
                            AND principal_type = \(principalType) AND principal_id = \(principalID)
                        ORDER BY created_at DESC, model COLLATE "C"
                        """, logger: logger))
            }
            return try await Self.consents(
                try await connection.query(
                    """
                    SELECT \(unescaped: Self.consentColumns) FROM registry.consents WHERE organization_id = \(organizationID)
                    ORDER BY created_at DESC, model COLLATE "C"
                    """, logger: logger))
        }
    }
}
