import LumenAPI
import SharedRules
import Storage
import SwiftProtobuf

/// The figures every totals row of the ledger has — by key, by owner and model, by owner and
/// origin — read from a row in one place.
protocol TotalsFigures {
    var requests: Int64 { get set }
    var inputTokens: Int64 { get set }
    var cachedInputTokens: Int64 { get set }
    var cacheWriteTokens: Int64 { get set }
    var outputTokens: Int64 { get set }
    var costMicros: Int64 { get set }
    var lastUsedAt: SwiftProtobuf.Google_Protobuf_Timestamp { get set }
}

extension Lumen_Ledger_V1_KeyTotals: TotalsFigures {}
extension Lumen_Ledger_V1_ModelTotals: TotalsFigures {}
extension Lumen_Ledger_V1_OriginTotals: TotalsFigures {}

enum Totals {
    /// The columns `read(_:)` takes, in its order.
    static let columns = "requests, input_tokens, cached_input_tokens, output_tokens, cost_micros, last_used_at, cache_write_tokens"
}

extension TotalsFigures {
    /// The figures of `Totals.columns`, starting at column `first` of `row` (no last use: left unset).
    mutating func read(_ row: SQLRow, from first: Int) throws {
        requests = try row[first]
        inputTokens = try row[first + 1]
        cachedInputTokens = try row[first + 2]
        outputTokens = try row[first + 3]
        costMicros = try row[first + 4]
        if let lastUsed: Int64 = try row[first + 5] { lastUsedAt = .init(millis: lastUsed) }
        cacheWriteTokens = try row[first + 6]
    }
}
