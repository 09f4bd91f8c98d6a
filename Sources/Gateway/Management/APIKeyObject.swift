import Foundation
import LumenAPI
import RPCSupport
import SharedRules

/// An API key as the management API shows it (seed 003): never the secret, except `key`
/// in the response to its creation.
struct APIKeyObject: Encodable {
    var id: String
    var name: String
    var keyPrefix: String
    var hint: String
    var status: String
    var limitAmount: Decimal?
    var usedAmount: Decimal
    var models: [String]
    var expiresAt: String?
    var lastUsedAt: String?
    var createdAt: String
    /// Requests / tokens per minute; nil when unlimited.
    var rpmLimit: Int?
    var tpmLimit: Int64?
    /// The full secret: set only in the response to POST.
    var key: String?

    /// `totals` is what the ledger recorded for the key (none: a new key, nothing used).
    init(_ key: Lumen_Keys_V1_Key, totals: Lumen_Ledger_V1_KeyTotals? = nil, secret: String? = nil) {
        self.id = key.id
        self.name = key.name
        self.keyPrefix = key.keyPrefix
        self.hint = key.hint
        self.status = key.status.publicName
        self.limitAmount = key.hasLimitMicros ? USD.amount(key.limitMicros) : nil
        self.usedAmount = USD.amount(totals?.costMicros ?? 0)
        self.models = key.models
        self.expiresAt = key.hasExpiresAt ? RFC3339.format(millis: key.expiresAt.millis) : nil
        self.lastUsedAt = totals.flatMap { $0.hasLastUsedAt ? RFC3339.format(millis: $0.lastUsedAt.millis) : nil }
        self.createdAt = RFC3339.format(millis: key.createdAt.millis)
        self.rpmLimit = key.rpmLimit > 0 ? Int(key.rpmLimit) : nil
        self.tpmLimit = key.tpmLimit > 0 ? key.tpmLimit : nil
        self.key = secret
    }

    enum CodingKeys: String, CodingKey {
        case id, name, hint, status, models, key
        case keyPrefix = "key_prefix"
        case limitAmount = "limit_amount"
        case usedAmount = "used_amount"
        case expiresAt = "expires_at"
        case lastUsedAt = "last_used_at"
        case createdAt = "created_at"
        case rpmLimit = "rpm_limit"
        case tpmLimit = "tpm_limit"
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(id, forKey: .id)
        try container.encode(name, forKey: .name)
        try container.encode(keyPrefix, forKey: .keyPrefix)
        try container.encode(hint, forKey: .hint)
        try container.encode(status, forKey: .status)
        try container.encode(limitAmount, forKey: .limitAmount)
        try container.encode(usedAmount, forKey: .usedAmount)
        try container.encode(models, forKey: .models)
        try container.encode(expiresAt, forKey: .expiresAt)
        try container.encode(lastUsedAt, forKey: .lastUsedAt)
        try container.encode(createdAt, forKey: .createdAt)
        try container.encode(rpmLimit, forKey: .rpmLimit)
        try container.encode(tpmLimit, forKey: .tpmLimit)
        try container.encodeIfPresent(key, forKey: .key)
    }
}

/// `{"object": "list", "data": [...]}`; a page of a list adds `page`, `limit`, `total` and
/// `has_more`.
struct ListObject<Item: Encodable>: Encodable {
    var object = "list"
    var data: [Item]
    var page: Int?
    var limit: Int?
    var total: Int64?
    var hasMore: Bool?

    init(data: [Item]) {
        self.data = data
    }

    init(data: [Item], page info: Lumen_Common_V1_PageInfo) {
        self.data = data
        page = Int(info.page)
        limit = Int(info.limit)
        total = info.total
        hasMore = info.hasMore_p
    }

    enum CodingKeys: String, CodingKey {
        case object, data, page, limit, total
        case hasMore = "has_more"
    }
}
