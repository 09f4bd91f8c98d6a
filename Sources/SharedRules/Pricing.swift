import LumenAPI

/// What a request costs at a model's prices, in micro-USD.
///
/// Prices are micro-USD per million tokens (and per request for non-token scenes). The
/// exact cost is Σ tokens × price / 1,000,000, computed in integers and rounded once, half
/// up, to the micro-dollar; so a usage line's cost is reproducible from its tokens and the
/// configured prices.
public enum Pricing {
    /// Token counts of one request.
    public struct Tokens: Sendable, Equatable {
        /// Input tokens, excluding cached ones and cache writes.
        public var input: Int64
        /// Cached input tokens (read from the provider's prompt cache).
        public var cachedInput: Int64
        /// Input tokens written to the provider's prompt cache.
        public var cacheWrite: Int64
        /// Output tokens.
        public var output: Int64

        public init(input: Int64, cachedInput: Int64 = 0, cacheWrite: Int64 = 0, output: Int64) {
            self.input = max(0, input)
            self.cachedInput = max(0, cachedInput)
            self.cacheWrite = max(0, cacheWrite)
            self.output = max(0, output)
        }

        public var total: Int64 { input &+ cachedInput &+ cacheWrite &+ output }
    }

    /// The cost of one request with these token counts.
    public static func cost(_ tokens: Tokens, at prices: Lumen_Registry_V1_Prices) -> Int64 {
        let perMillion =
            product(tokens.input, prices.inputPerMillionMicros)
            &+ product(tokens.cachedInput, prices.cachedInputPerMillionMicros)
            &+ product(tokens.cacheWrite, cacheWritePrice(prices))
            &+ product(tokens.output, prices.outputPerMillionMicros)
        return (perMillion + 500_000) / 1_000_000 + max(0, prices.perRequestMicros)
    }

    /// What a million cache-write tokens cost: the model's cache-write price, or its input price
    /// when it names none.
    public static func cacheWritePrice(_ prices: Lumen_Registry_V1_Prices) -> Int64 {
        prices.cacheWritePerMillionMicros > 0 ? prices.cacheWritePerMillionMicros : prices.inputPerMillionMicros
    }

    /// The most output a request may produce, per choice times the choices asked for (`n`): its
    /// own limit (`max_tokens` and kin) when it gives one below the model's `max_output_tokens`,
    /// else the model's.
    public static func maxOutput(_ maxOutputTokens: Int64?, choices: Int64 = 1, model: Lumen_Registry_V1_Model) -> Int64 {
        // A model always has one (the registry requires it); 4096 only for a message made by hand.
        let ceiling = model.maxOutputTokens > 0 ? model.maxOutputTokens : 4096
        return product(min(maxOutputTokens ?? ceiling, ceiling), max(1, choices))
    }

    /// tokens × price, saturating: absurd counts cost the most, never wrap to a refund.
    private static func product(_ tokens: Int64, _ price: Int64) -> Int64 {
        let (value, overflow) = max(0, tokens).multipliedReportingOverflow(by: max(0, price))
        return overflow ? Int64.max / 4 : value
    }
}
