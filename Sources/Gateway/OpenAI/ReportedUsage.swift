import Foundation
import RPCSupport

/// The `usage` object an upstream reports, in either of OpenAI's shapes: chat/completions/
/// embeddings (`prompt_tokens`, `completion_tokens`, `prompt_tokens_details.cached_tokens`) or
/// responses (`input_tokens`, `output_tokens`, `input_tokens_details.cached_tokens`).
struct ReportedUsage: Decodable, Sendable {
    struct Details: Decodable, Sendable {
        var cachedTokens: Int64?
        enum CodingKeys: String, CodingKey { case cachedTokens = "cached_tokens" }
    }

    var promptTokens: Int64?
    var completionTokens: Int64?
    var inputTokens: Int64?
    var outputTokens: Int64?
    var promptTokensDetails: Details?
    var inputTokensDetails: Details?

    enum CodingKeys: String, CodingKey {
        case promptTokens = "prompt_tokens"
        case completionTokens = "completion_tokens"
        case inputTokens = "input_tokens"
        case outputTokens = "output_tokens"
        case promptTokensDetails = "prompt_tokens_details"
        case inputTokensDetails = "input_tokens_details"
    }

    /// The counts Lumen bills: input excludes the cached part, which is priced apart.
    var tokens: Pricing.Tokens? {
        guard let input = promptTokens ?? inputTokens else { return nil }
        let cached = min(input, max(0, promptTokensDetails?.cachedTokens ?? inputTokensDetails?.cachedTokens ?? 0))
        return Pricing.Tokens(input: input - cached, cachedInput: cached, output: completionTokens ?? outputTokens ?? 0)
    }
}

/// The parts of a response body or stream event that metering reads; anything it does not
/// understand is ignored, never an error.
struct MeteredPayload: Decodable, Sendable {
    /// Top-level `usage` (chat, completions, embeddings; responses when not streamed).
    var usage: ReportedUsage?
    /// `response.usage` of a responses stream's `response.completed` event.
    var responseUsage: ReportedUsage?
    /// Whether `choices` is present and empty (the usage-only chunk of a chat stream).
    var hasNoChoices = false
    /// Generated text in this payload: chat messages and deltas, completion text, responses
    /// output and text deltas.
    var text = ""

    private struct Choice: Decodable {
        struct Content: Decodable { var content: String? }
        var delta: Content?
        var message: Content?
        var text: String?
    }

    private struct OutputItem: Decodable {
        struct Part: Decodable { var text: String? }
        var content: [Part]?
    }

    private struct Response: Decodable { var usage: ReportedUsage? }

    enum CodingKeys: String, CodingKey { case usage, response, choices, delta, type, output }

    init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        usage = try? container.decodeIfPresent(ReportedUsage.self, forKey: .usage)
        responseUsage = (try? container.decodeIfPresent(Response.self, forKey: .response))??.usage
        if let choices = try? container.decodeIfPresent([Choice].self, forKey: .choices) {
            hasNoChoices = choices.isEmpty
            text = choices.map { ($0.delta?.content ?? "") + ($0.message?.content ?? "") + ($0.text ?? "") }.joined()
        }
        if let output = try? container.decodeIfPresent([OutputItem].self, forKey: .output) {
            text += output.flatMap { $0.content ?? [] }.compactMap(\.text).joined()
        }
        if let type = try? container.decodeIfPresent(String.self, forKey: .type), type.hasSuffix(".delta"),
            let delta = try? container.decodeIfPresent(String.self, forKey: .delta)
        {
            text += delta
        }
    }

    static func decode(_ data: some DataProtocol) -> MeteredPayload? {
        try? JSONDecoder().decode(MeteredPayload.self, from: Data(data))
    }

    var reported: Pricing.Tokens? { (usage ?? responseUsage)?.tokens }
}

/// Tokens in a text as Lumen counts them when an upstream reports none: about four
/// characters each, at least one for non-empty text.
enum TokenEstimate {
    static func count(_ text: String) -> Int {
        text.isEmpty ? 0 : max(1, (text.unicodeScalars.count + 3) / 4)
    }
}
