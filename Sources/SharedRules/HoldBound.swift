import LumenAPI

/// The most a request can cost, in tokens: what its hold is priced from, so that a pool never
/// pays for more than it held (README, "Budgets").
///
/// - Input: every byte of the request's text as sent upstream (a byte-level BPE token covers
///   at least one byte of UTF-8, so no tokenizer in use makes more tokens than bytes), plus
///   `templateAllowance` for what the provider adds around it (role markers, the tool-use
///   system prompt: Anthropic's is 346 tokens) and the model name Lumen puts in, plus the
///   model's `max_attachment_input_tokens` for every image or file part (an image by URL or
///   file id has no bytes in the request; an inline one may count more tokens than its bytes).
/// - Output: `Pricing.maxOutput` — the request's `max_tokens` (or kin) up to the model's
///   `max_output_tokens`, times `n`.
public struct HoldBound: Sendable, Equatable {
    public var inputTokens: Int64
    public var outputTokens: Int64

    /// Tokens a provider may add to a request beyond its own text.
    public static let templateAllowance: Int64 = 1_024
    /// `Model.max_attachment_input_tokens` when a model leaves it 0: above what OpenAI's,
    /// Anthropic's or Google's image encodings count for one image.
    public static let defaultAttachmentInputTokens: Int64 = 8_192

    public init(inputTokens: Int64, outputTokens: Int64) {
        self.inputTokens = inputTokens
        self.outputTokens = outputTokens
    }

    /// The bound of a request of `textBytes` bytes with `attachments` image or file parts,
    /// asking for at most `maxOutputTokens` per choice (nil: the model's most) and `choices` of them.
    public init(
        textBytes: Int64, attachments: Int64, maxOutputTokens: Int64?, choices: Int64 = 1, model: Lumen_Registry_V1_Model
    ) {
        let longestName = model.backends.reduce(Int64(model.name.utf8.count)) { max($0, Int64($1.upstreamModel.utf8.count)) }
        let perAttachment = model.maxAttachmentInputTokens > 0 ? model.maxAttachmentInputTokens : Self.defaultAttachmentInputTokens
        let (attachmentTokens, overflow) = max(0, attachments).multipliedReportingOverflow(by: perAttachment)
        inputTokens = max(0, textBytes) &+ Self.templateAllowance &+ longestName &+ (overflow ? Int64.max / 4 : attachmentTokens)
        outputTokens = Pricing.maxOutput(maxOutputTokens, choices: choices, model: model)
    }

    /// The bound as token counts to price at `prices`: all input at the dearest price an input
    /// token can have — uncached, or written to the provider's cache when that costs more.
    public func tokens(at prices: Lumen_Registry_V1_Prices) -> Pricing.Tokens {
        Pricing.cacheWritePrice(prices) > prices.inputPerMillionMicros
            ? Pricing.Tokens(input: 0, cacheWrite: inputTokens, output: outputTokens)
            : Pricing.Tokens(input: inputTokens, output: outputTokens)
    }

    /// The hold: the bound at the model's prices, micro-USD.
    public func cost(at prices: Lumen_Registry_V1_Prices) -> Int64 { Pricing.cost(tokens(at: prices), at: prices) }
}
