/// The registry's rows, as the stores read and write them (`RegistryStorage`).

struct ModelRecord: Codable, Sendable, Equatable {
    var name: String
    var vendor: String
    var scenes: [Int]
    var inputPerMillionMicros: Int64
    var cachedInputPerMillionMicros: Int64
    var outputPerMillionMicros: Int64
    var perRequestMicros: Int64
    var consentRequired: Bool
    var enabled: Bool
    /// `Model.max_output_tokens` (kept in the column first named `default_max_output_tokens`).
    var maxOutputTokens: Int64
    var maxAttachmentInputTokens: Int64
    var allowedGroupIDs: [String]
    var blockedGroupIDs: [String]
    var description: String
    var updatedAt: Int64
    /// `Prices.cache_write_per_million_micros` (0: the input price).
    var cacheWritePerMillionMicros: Int64 = 0

    enum CodingKeys: String, CodingKey {
        case name, vendor, scenes, enabled, description
        case inputPerMillionMicros = "input_per_million_micros"
        case cachedInputPerMillionMicros = "cached_input_per_million_micros"
        case outputPerMillionMicros = "output_per_million_micros"
        case perRequestMicros = "per_request_micros"
        case consentRequired = "consent_required"
        case maxOutputTokens = "default_max_output_tokens"
        case maxAttachmentInputTokens = "max_attachment_input_tokens"
        case allowedGroupIDs = "allowed_group_ids"
        case blockedGroupIDs = "blocked_group_ids"
        case updatedAt = "updated_at"
        case cacheWritePerMillionMicros = "cache_write_per_million_micros"
    }
}

struct BackendRecord: Codable, Sendable, Equatable {
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
    /// Whether callers may bring their own upstream key (`Backend.byok`).
    var byok: Bool
    /// The latest failed call, in words, and when (`Backend.last_failure`, `last_failure_at`).
    var lastFailure = ""
    var lastFailureAt: Int64?
    /// An azure backend's `api-version` (`Backend.api_version`); empty: the default.
    var apiVersion = ""
    /// A bedrock backend's AWS region (`Backend.region`) and shared-credentials profile (`Backend.aws_profile`).
    var region = ""
    var awsProfile = ""
    /// An azure backend's bearer token source (`Backend.token_source`); empty: its key.
    var tokenSource = ""

    enum CodingKeys: String, CodingKey {
        case model, id, provider, weight, health, problem, byok
        case lastFailure = "last_failure"
        case lastFailureAt = "last_failure_at"
        case baseURL = "base_url"
        case credentialEnv = "credential_env"
        case upstreamModel = "upstream_model"
        case timeoutMs = "timeout_ms"
        case consecutiveFailures = "consecutive_failures"
        case circuitOpenUntil = "circuit_open_until"
        case apiVersion = "api_version"
        case region
        case awsProfile = "aws_profile"
        case tokenSource = "token_source"
    }
}

struct ConsentRecord: Codable, Sendable, Equatable {
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

/// A model as stored: its row and its backends' rows, by id.
struct StoredModel: Sendable, Equatable {
    var record: ModelRecord
    var backends: [BackendRecord]
}

struct BackendKey: Sendable, Hashable {
    var model: String
    var id: String
}

struct ConsentKey: Sendable, Hashable {
    var organizationID: String
    var principalType: Int
    var principalID: String
    var model: String
}

