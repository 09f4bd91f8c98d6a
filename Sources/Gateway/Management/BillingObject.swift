import Foundation
import LumenAPI
import RPCSupport
import SharedRules

/// A key's billing as the management API shows it: settled totals, by model, vendor, scene,
/// access channel and UTC day; money in USD.
struct BillingObject: Encodable {
    var object = "billing"
    var keyID: String
    var currency = "USD"
    var total: Totals
    var byModel: [Totals]
    var byVendor: [Totals]
    var byScene: [Totals]
    var byAccessChannel: [Totals]
    var byDay: [Totals]

    enum CodingKeys: String, CodingKey {
        case object
        case keyID = "key_id"
        case currency, total
        case byModel = "by_model"
        case byVendor = "by_vendor"
        case byScene = "by_scene"
        case byAccessChannel = "by_access_channel"
        case byDay = "by_day"
    }

    /// One group's totals; `name` is the group's field (`logical_model`, `model_vendor`,
    /// `scene`, `access_channel` or `date`), absent for the grand total.
    struct Totals: Encodable {
        var name: String?
        var value: String
        var requests: Int64
        var inputTokens: Int64
        var cachedInputTokens: Int64
        var cacheWriteTokens: Int64
        var outputTokens: Int64
        var cost: Decimal

        init(_ name: String?, _ bucket: Lumen_Ledger_V1_BillingBucket) {
            self.name = name
            value = bucket.key
            requests = bucket.requests
            inputTokens = bucket.inputTokens
            cachedInputTokens = bucket.cachedInputTokens
            cacheWriteTokens = bucket.cacheWriteTokens
            outputTokens = bucket.outputTokens
            cost = USD.amount(bucket.costMicros)
        }

        struct Key: CodingKey {
            var stringValue: String
            var intValue: Int? { nil }
            init(_ string: String) { stringValue = string }
            init?(stringValue: String) { self.stringValue = stringValue }
            init?(intValue: Int) { nil }
        }

        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: Key.self)
            if let name { try container.encode(value, forKey: Key(name)) }
            try container.encode(requests, forKey: Key("requests"))
            try container.encode(inputTokens, forKey: Key("input_tokens"))
            try container.encode(cachedInputTokens, forKey: Key("cached_input_tokens"))
            try container.encode(cacheWriteTokens, forKey: Key("cache_write_tokens"))
            try container.encode(outputTokens, forKey: Key("output_tokens"))
            try container.encode(cost, forKey: Key("cost"))
        }
    }

    init(keyID: String, _ response: Lumen_Ledger_V1_GetBillingResponse) {
        self.keyID = keyID
        total = Totals(nil, response.total)
        byModel = response.byModel.map { Totals("logical_model", $0) }
        byVendor = response.byVendor.map { Totals("model_vendor", $0) }
        byScene = response.byScene.map { Totals("scene", $0) }
        byAccessChannel = response.byAccessChannel.map { Totals("access_channel", $0) }
        byDay = response.byDay.map { Totals("date", $0) }
    }
}
