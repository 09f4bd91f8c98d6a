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
        /// Input tokens, excluding cached ones.
        public var input: Int64
        /// Cached input tokens.
        public var cachedInput: Int64
        /// Output tokens.
        public var output: Int64

        public init(input: Int64, cachedInput: Int64 = 0, output: Int64) {
            self.input = max(0, input)
            self.cachedInput = max(0, cachedInput)
            self.output = max(0, output)
        }

        public var total: Int64 { input + cachedInput + output }
    }

    /// The cost of one request with these token counts.
    public static func cost(_ tokens: Tokens, at prices: Lumen_Registry_V1_Prices) -> Int64 {
        let perMillion =
            product(tokens.input, prices.inputPerMillionMicros)
            &+ product(tokens.cachedInput, prices.cachedInputPerMillionMicros)
            &+ product(tokens.output, prices.outputPerMillionMicros)
        return (perMillion + 500_000) / 1_000_000 + max(0, prices.perRequestMicros)
    }

    /// The hold placed before the upstream call: the prompt at the input price plus the most
    /// output the request may produce (`max_tokens`, or the model's default) at the output price.
    public static func estimate(
        promptTokens: Int64, maxOutputTokens: Int64?, choices: Int64 = 1, model: Lumen_Registry_V1_Model
    ) -> Int64 {
        cost(Tokens(input: promptTokens, output: maxOutput(maxOutputTokens, choices: choices, model: model)), at: model.prices)
    }

    /// The most output a request may produce: its own limit, else the model's default, else
    /// 4096 — per choice, times the choices asked for (`n`).
    public static func maxOutput(_ maxOutputTokens: Int64?, choices: Int64 = 1, model: Lumen_Registry_V1_Model) -> Int64 {
        let each = maxOutputTokens ?? (model.defaultMaxOutputTokens > 0 ? model.defaultMaxOutputTokens : 4096)
        return product(each, max(1, choices))
    }

    /// tokens × price, saturating: absurd counts cost the most, never wrap to a refund.
    private static func product(_ tokens: Int64, _ price: Int64) -> Int64 {
        let (value, overflow) = max(0, tokens).multipliedReportingOverflow(by: max(0, price))
        return overflow ? Int64.max / 4 : value
    }
}
