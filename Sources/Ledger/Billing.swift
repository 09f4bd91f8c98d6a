import LumenAPI
import RPCSupport
import SharedRules

/// `GetBilling`'s answer: the settled totals of one key, broken down by model, vendor,
/// scene, access channel and UTC day.
enum Billing {
    static func response(_ groups: [Rollups.Group: Rollups.Totals]) -> Lumen_Ledger_V1_GetBillingResponse {
        var total = Rollups.Totals()
        var byModel: [String: Rollups.Totals] = [:]
        var byVendor: [String: Rollups.Totals] = [:]
        var byScene: [String: Rollups.Totals] = [:]
        var byChannel: [String: Rollups.Totals] = [:]
        var byDay: [Int64: Rollups.Totals] = [:]
        for (group, totals) in groups {
            total.add(totals)
            byModel[group.logicalModel, default: .init()].add(totals)
            byVendor[group.modelVendor, default: .init()].add(totals)
            byScene[(Lumen_Common_V1_Scene(rawValue: group.scene) ?? .unspecified).publicName, default: .init()].add(totals)
            byChannel[(Lumen_Common_V1_AccessChannel(rawValue: group.accessChannel) ?? .unspecified).publicName, default: .init()]
                .add(totals)
            byDay[group.day, default: .init()].add(totals)
        }
        func buckets(_ totals: [String: Rollups.Totals]) -> [Lumen_Ledger_V1_BillingBucket] {
            totals.sorted { $0.key < $1.key }.map { bucket($0.key, $0.value) }
        }
        return .with {
            $0.total = bucket("total", total)
            $0.byModel = buckets(byModel)
            $0.byVendor = buckets(byVendor)
            $0.byScene = buckets(byScene)
            $0.byAccessChannel = buckets(byChannel)
            $0.byDay = byDay.sorted { $0.key < $1.key }.map { bucket(RFC3339.formatDay(millis: $0.key), $0.value) }
        }
    }

    static func bucket(_ key: String, _ totals: Rollups.Totals) -> Lumen_Ledger_V1_BillingBucket {
        .with {
            $0.key = key
            $0.requests = totals.requests
            $0.inputTokens = totals.inputTokens
            $0.cachedInputTokens = totals.cachedInputTokens
            $0.cacheWriteTokens = totals.cacheWriteTokens
            $0.outputTokens = totals.outputTokens
            $0.costMicros = totals.costMicros
        }
    }
}
