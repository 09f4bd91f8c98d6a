import Foundation
import LumenAPI
import NIOCore
import RPCSupport
import SharedRules
import WireFormats

/// An API key as the management API shows it (seed 003): never the secret, except `key`
/// in the response to its creation.
struct APIKeyObject: Encodable {
    var id: String
    var name: String
    var keyPrefix: String
    var hint: String
    var status: String
    /// The spending cap and what the key has used, in micro-USD (USD in the JSON).
    var limitMicros: Int64?
    var usedMicros: Int64
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
        self.limitMicros = key.hasLimitMicros ? key.limitMicros : nil
        self.usedMicros = totals?.costMicros ?? 0
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
        try container.encode(limitMicros.map(USD.amount), forKey: .limitAmount)
        try container.encode(USD.amount(usedMicros), forKey: .usedAmount)
        try container.encode(models, forKey: .models)
        try container.encode(expiresAt, forKey: .expiresAt)
        try container.encode(lastUsedAt, forKey: .lastUsedAt)
        try container.encode(createdAt, forKey: .createdAt)
        try container.encode(rpmLimit, forKey: .rpmLimit)
        try container.encode(tpmLimit, forKey: .tpmLimit)
        try container.encodeIfPresent(key, forKey: .key)
    }
}

extension APIKeyObject: JSONWritable {
    func writeJSON(to buffer: inout ByteBuffer) {
        var members = JSONMembers(opening: &buffer)
        members.string("created_at", createdAt, in: &buffer)
        members.string("expires_at", expiresAt, in: &buffer)
        members.string("hint", hint, in: &buffer)
        members.string("id", id, in: &buffer)
        if let key { members.string("key", key, in: &buffer) }
        members.string("key_prefix", keyPrefix, in: &buffer)
        members.string("last_used_at", lastUsedAt, in: &buffer)
        members.number("limit_amount", limitMicros.map(USD.text), in: &buffer)
        members.array("models", models, in: &buffer) { JSONValue.writeString($0, to: &$1) }
        members.string("name", name, in: &buffer)
        members.number("rpm_limit", rpmLimit.map(String.init), in: &buffer)
        members.string("status", status, in: &buffer)
        members.number("tpm_limit", tpmLimit.map(String.init), in: &buffer)
        members.number("used_amount", USD.text(usedMicros), in: &buffer)
        members.close(&buffer)
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

extension ListObject: JSONWritable where Item: JSONWritable {
    func writeJSON(to buffer: inout ByteBuffer) {
        var members = JSONMembers(opening: &buffer)
        members.array("data", data, in: &buffer) { $0.writeJSON(to: &$1) }
        if let hasMore { members.number("has_more", hasMore ? "true" : "false", in: &buffer) }
        if let limit { members.number("limit", String(limit), in: &buffer) }
        members.string("object", object, in: &buffer)
        if let page { members.number("page", String(page), in: &buffer) }
        if let total { members.number("total", String(total), in: &buffer) }
        members.close(&buffer)
    }
}
