import Foundation

/// One row of the `keys` table: a credential's metadata and the SHA-256 digest of its secret.
///
/// Times are milliseconds since 1970; money is micro-USD. What a key has used is the
/// ledger's (`GetKeyTotals`), not a column here.
struct KeyRecord: Codable, Sendable, Equatable {
    var id: String
    var organizationID: String
    var kind: Int
    var ownerType: Int
    var ownerID: String
    var name: String
    var secretSHA256: Data
    var hint: String
    var keyPrefix: String
    var status: Int
    var models: [String]
    var limitMicros: Int64?
    var expiresAt: Int64?
    var createdAt: Int64
    var updatedAt: Int64
    var revokedAt: Int64?
    var createdByUserID: String
    /// Requests per minute; 0: no limit.
    var rpmLimit: Int64 = 0
    /// Tokens per minute; 0: no limit.
    var tpmLimit: Int64 = 0

    enum CodingKeys: String, CodingKey {
        case id
        case organizationID = "organization_id"
        case kind
        case ownerType = "owner_type"
        case ownerID = "owner_id"
        case name
        case secretSHA256 = "secret_sha256"
        case hint
        case keyPrefix = "key_prefix"
        case status
        case models
        case limitMicros = "limit_micros"
        case expiresAt = "expires_at"
        case createdAt = "created_at"
        case updatedAt = "updated_at"
        case revokedAt = "revoked_at"
        case createdByUserID = "created_by_user_id"
        case rpmLimit = "rpm_limit"
        case tpmLimit = "tpm_limit"
    }
}
