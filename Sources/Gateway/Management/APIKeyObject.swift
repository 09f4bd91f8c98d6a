import Foundation
import LumenAPI
import NIOCore
import RPCSupport
import SharedRules
import WireFormats

/// An API key as the management API shows it (seed 003): never the secret, except `key`
/// in the response to its creation.
struct APIKeyObject: Encodable {
    /// The key as the keys service gave it, and what the ledger recorded for it (none: a new
    /// key, nothing used). Kept as they came, not copied field by field: a list of 20,000
    /// keys builds 20,000 of these.
    let key: Lumen_Keys_V1_Key
    let totals: Lumen_Ledger_V1_KeyTotals?
    /// The full secret: set only in the response to POST.
    let secret: String?

    init(_ key: Lumen_Keys_V1_Key, totals: Lumen_Ledger_V1_KeyTotals? = nil, secret: String? = nil) {
        self.key = key
        self.totals = totals
        self.secret = secret
    }

    var status: String { key.status.publicName }
    /// The spending cap and what the key has used, in micro-USD (USD in the JSON).
    var limitMicros: Int64? { key.hasLimitMicros ? key.limitMicros : nil }
    var usedMicros: Int64 { totals?.costMicros ?? 0 }
    var expiresAt: String? { key.hasExpiresAt ? RFC3339.format(millis: key.expiresAt.millis) : nil }
    var lastUsedAt: String? { totals.flatMap { $0.hasLastUsedAt ? RFC3339.format(millis: $0.lastUsedAt.millis) : nil } }
    var createdAt: String { RFC3339.format(millis: key.createdAt.millis) }
    /// Requests / tokens per minute; nil when unlimited.
    var rpmLimit: Int? { key.rpmLimit > 0 ? Int(key.rpmLimit) : nil }
    var tpmLimit: Int64? { key.tpmLimit > 0 ? key.tpmLimit : nil }

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
        try container.encode(key.id, forKey: .id)
        try container.encode(key.name, forKey: .name)
        try container.encode(key.keyPrefix, forKey: .keyPrefix)
        try container.encode(key.hint, forKey: .hint)
        try container.encode(status, forKey: .status)
        try container.encode(limitMicros.map(USD.amount), forKey: .limitAmount)
        try container.encode(USD.amount(usedMicros), forKey: .usedAmount)
        try container.encode(key.models, forKey: .models)
        try container.encode(expiresAt, forKey: .expiresAt)
        try container.encode(lastUsedAt, forKey: .lastUsedAt)
        try container.encode(createdAt, forKey: .createdAt)
        try container.encode(rpmLimit, forKey: .rpmLimit)
        try container.encode(tpmLimit, forKey: .tpmLimit)
        try container.encodeIfPresent(secret, forKey: .key)
    }
}

extension APIKeyObject: JSONWritable {
    func writeJSON(to buffer: inout ByteBuffer) {
        var members = JSONMembers(opening: &buffer)
        members.string("created_at", createdAt, in: &buffer)
        members.string("expires_at", expiresAt, in: &buffer)
        members.string("hint", key.hint, in: &buffer)
        members.string("id", key.id, in: &buffer)
        if let secret { members.string("key", secret, in: &buffer) }
        members.string("key_prefix", key.keyPrefix, in: &buffer)
        members.string("last_used_at", lastUsedAt, in: &buffer)
        members.number("limit_amount", limitMicros.map(USD.text), in: &buffer)
        members.array("models", key.models, in: &buffer) { JSONValue.writeString($0, to: &$1) }
        members.string("name", key.name, in: &buffer)
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
