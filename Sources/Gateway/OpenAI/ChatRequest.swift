import Foundation
import WireFormats

/// The parts of an OpenAI chat completion request that Lumen reads; everything else is
/// passed to the upstream untouched.
struct ChatRequest {
    var model: String
    var stream: Bool
    var includeUsage: Bool
    var maxTokens: Int?
    /// The text of every message, for counting prompt tokens.
    var promptText: String
    /// The text of the last user message.
    var lastUserText: String

    init(_ body: [String: JSONValue]) throws(APIError) {
        let model = try InferenceRequest.model(body)
        guard case .array(let messages)? = body["messages"], !messages.isEmpty else {
            throw APIError.invalid("invalid_messages", "messages must be a non-empty array", param: "messages")
        }
        var texts: [String] = []
        var lastUser = ""
        for message in messages {
            guard case .object(let fields) = message, case .string(let role)? = fields["role"] else {
                throw APIError.invalid("invalid_messages", "each message needs a role", param: "messages")
            }
            let text = Self.text(of: fields["content"])
            texts.append(text)
            if role == "user" { lastUser = text }
        }
        stream = try InferenceRequest.stream(body)
        includeUsage = try InferenceRequest.includeUsage(body)
        // max_completion_tokens is OpenAI's current name; max_tokens the older one.
        maxTokens = try InferenceRequest.maxTokens(body, fields: ["max_completion_tokens", "max_tokens"])
        self.model = model
        self.promptText = texts.joined(separator: "\n")
        self.lastUserText = lastUser
    }

    /// A message's text: a string, or the text parts of an array of content parts.
    static func text(of content: JSONValue?) -> String {
        switch content {
        case .string(let text)?: return text
        case .array(let parts)?:
            return parts.compactMap { part -> String? in
                guard case .object(let fields) = part, case .string(let text)? = fields["text"] else { return nil }
                return text
            }.joined(separator: "\n")
        default: return ""
        }
    }
}
