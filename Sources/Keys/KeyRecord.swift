import Foundation
import GRDB

/// One row of the `keys` table: a credential's metadata and the SHA-256 digest of its secret.
///
/// Times are milliseconds since 1970; money is micro-USD. What a key has used is the
/// ledger's (`GetKeyTotals`), not a column here.
struct KeyRecord: Codable, Sendable, Equatable, FetchableRecord, PersistableRecord {
    static let databaseTableName = "keys"

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

extension KeyRecord {
    /// Read by hand rather than through `Codable`: a list of a thousand keys spent most of its
    /// time decoding rows generically, each `models` column with a JSON decoder of its own.
    init(row: Row) throws {
        id = row["id"]
        organizationID = row["organization_id"]
        kind = row["kind"]
        ownerType = row["owner_type"]
        ownerID = row["owner_id"]
        name = row["name"]
        secretSHA256 = row["secret_sha256"]
        hint = row["hint"]
        keyPrefix = row["key_prefix"]
        status = row["status"]
        let models: String = row["models"] ?? "[]"
        self.models = models == "[]" ? [] : try JSONDecoder().decode([String].self, from: Data(models.utf8))
        limitMicros = row["limit_micros"]
        expiresAt = row["expires_at"]
        createdAt = row["created_at"]
        updatedAt = row["updated_at"]
        revokedAt = row["revoked_at"]
        createdByUserID = row["created_by_user_id"] ?? ""
        rpmLimit = row["rpm_limit"] ?? 0
        tpmLimit = row["tpm_limit"] ?? 0
    }
}
