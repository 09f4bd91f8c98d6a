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
