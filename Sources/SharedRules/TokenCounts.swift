import LumenAPI

/// The token figures of a ledger total (a key's, an owner's by model or origin, a billing
/// group's): whoever shows "tokens" adds the same four.
public protocol TokenCounts {
    var inputTokens: Int64 { get }
    var cachedInputTokens: Int64 { get }
    var cacheWriteTokens: Int64 { get }
    var outputTokens: Int64 { get }
}

extension TokenCounts {
    /// Every token counted: input, cached input, cache writes and output.
    public var tokens: Int64 { inputTokens &+ cachedInputTokens &+ cacheWriteTokens &+ outputTokens }
}

extension Lumen_Ledger_V1_KeyTotals: TokenCounts {}
extension Lumen_Ledger_V1_ModelTotals: TokenCounts {}
extension Lumen_Ledger_V1_OriginTotals: TokenCounts {}
extension Lumen_Ledger_V1_BillingBucket: TokenCounts {}
extension Lumen_Ledger_V1_UsageLine: TokenCounts {}
extension Lumen_Ledger_V1_UsageSums: TokenCounts {}
