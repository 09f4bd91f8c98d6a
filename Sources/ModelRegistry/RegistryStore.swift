import Foundation
import GRDB
import Storage

/// The registry's tables. Nothing outside this module reads them.
struct RegistryStore: Sendable {
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
        return migrator
    }
}

struct ModelRecord: Codable, Sendable, Equatable, FetchableRecord, PersistableRecord {
    static let databaseTableName = "models"
    var name: String
    var vendor: String
    var scenes: [Int]
    var inputPerMillionMicros: Int64
    var cachedInputPerMillionMicros: Int64
    var outputPerMillionMicros: Int64
    var perRequestMicros: Int64
    var consentRequired: Bool
    var enabled: Bool
    var defaultMaxOutputTokens: Int64
    var allowedGroupIDs: [String]
    var blockedGroupIDs: [String]
    var description: String
    var updatedAt: Int64

    enum CodingKeys: String, CodingKey {
        case name, vendor, scenes, enabled, description
        case inputPerMillionMicros = "input_per_million_micros"
        case cachedInputPerMillionMicros = "cached_input_per_million_micros"
        case outputPerMillionMicros = "output_per_million_micros"
        case perRequestMicros = "per_request_micros"
        case consentRequired = "consent_required"
        case defaultMaxOutputTokens = "default_max_output_tokens"
        case allowedGroupIDs = "allowed_group_ids"
        case blockedGroupIDs = "blocked_group_ids"
        case updatedAt = "updated_at"
    }
}

struct BackendRecord: Codable, Sendable, Equatable, FetchableRecord, PersistableRecord {
    static let databaseTableName = "backends"
    var model: String
    var id: String
    var provider: Int
    var baseURL: String
    var credentialEnv: String
    var upstreamModel: String
    var weight: Int
    var timeoutMs: Int
    var health: Int
    var consecutiveFailures: Int
    var circuitOpenUntil: Int64?
    /// What a gateway last reported wrong with it (`Backend.problem`); empty when nothing.
    var problem: String

    enum CodingKeys: String, CodingKey {
        case model, id, provider, weight, health, problem
        case baseURL = "base_url"
        case credentialEnv = "credential_env"
        case upstreamModel = "upstream_model"
        case timeoutMs = "timeout_ms"
        case consecutiveFailures = "consecutive_failures"
        case circuitOpenUntil = "circuit_open_until"
    }
}

struct ConsentRecord: Codable, Sendable, Equatable, FetchableRecord, PersistableRecord {
    static let databaseTableName = "consents"
    var organizationID: String
    var principalType: Int
    var principalID: String
    var model: String
    var grantedByUserID: String
    var createdAt: Int64

    enum CodingKeys: String, CodingKey {
        case model
        case organizationID = "organization_id"
        case principalType = "principal_type"
        case principalID = "principal_id"
        case grantedByUserID = "granted_by_user_id"
        case createdAt = "created_at"
    }
}
