import Foundation
import WireFormats

/// A request to Anthropic's `POST /v1/messages` (Claude Code's, the `anthropic` SDKs') as the
/// OpenAI chat request Lumen meters and routes — the other way from `AnthropicRequest`:
///
/// - `system` (a string or text blocks) as one system message;
/// - each turn's blocks: text as text parts, images as `image_url` parts (base64 as a `data:`
///   URL), `tool_result` blocks as `role: tool` messages (before the rest of their turn),
///   an assistant's `tool_use` blocks as `tool_calls`; thinking blocks left out;
/// - `tools` as functions, `tool_choice` (`any` → `required`, `tool` → that function),
///   `disable_parallel_tool_use` → `parallel_tool_calls: false`;
/// - `max_tokens` (required), `stop_sequences`, `temperature`, `top_p`, `metadata.user_id`, `stream`.
///
/// A backend that speaks Anthropic's API gets the caller's own bytes instead (the model name
/// replaced); this translation is for every other provider, and for the hold's measure.
enum MessagesRequest {
    static func chatBody(_ request: [String: JSONValue]) throws(APIError) -> [String: JSONValue] {
        guard case .string(let model)? = request["model"], !model.isEmpty else {
            throw APIError.invalid("missing_model", "model is required: the name of a model from GET /v1/models", param: "model")
        }
        guard let maxTokens = try JSONValue.wholeNumber(
            request["max_tokens"], in: 1...10_000_000,
            else: APIError.invalid("invalid_max_tokens", "max_tokens must be a whole number from 1 to 10000000", param: "max_tokens"))
        else {
            throw APIError.invalid("invalid_max_tokens", "max_tokens is required", param: "max_tokens")
        }
        guard case .array(let turns)? = request["messages"], !turns.isEmpty else {
            throw APIError.invalid("invalid_messages", "messages must be a non-empty array", param: "messages")
        }
        try checkOptions(request)
        var messages: [JSONValue] = []
        switch request["system"] {
        case nil, .null?: break
        case .string(let text)?: if !text.isEmpty { messages.append(message("system", .string(text))) }
        case .array(let blocks)?:
            let text = try blocks.enumerated().map { index, block throws(APIError) in
                try self.text(of: block, param: "system[\(index)]")
            }.joined(separator: "\n")
            if !text.isEmpty { messages.append(message("system", .string(text))) }
        case let other?:
            throw APIError.invalid("invalid_system", "system is a string or an array of text blocks, not \(other.typeName)", param: "system")
        }
        for (index, turn) in turns.enumerated() {
            let param = "messages[\(index)]"
            let role = turn["role"]?.stringValue ?? ""
            guard role == "user" || role == "assistant" else {
                throw APIError.invalid("invalid_messages", "a message's role is user or assistant", param: "\(param).role")
            }
            var parts: [JSONValue] = []
            var calls: [JSONValue] = []
            switch turn["content"] {
            case .string(let text)?: parts.append(.object(["type": .string("text"), "text": .string(text)]))
            case .array(let blocks)? where !blocks.isEmpty:
                for (position, block) in blocks.enumerated() {
                    let where_ = "\(param).content[\(position)]"
                    switch block["type"]?.stringValue {
                    case "text":
                        parts.append(.object(["type": .string("text"), "text": .string(try text(of: block, param: where_))]))
                    case "image":
                        parts.append(.object(["type": .string("image_url"), "image_url": .object(["url": .string(try imageURL(block, param: where_))])]))
                    case "tool_use" where role == "assistant":
                        guard case .string(let id)? = block["id"], case .string(let name)? = block["name"],
                            case .object? = block["input"], let input = block["input"]
                        else {
                            throw APIError.invalid("invalid_messages", "a tool_use block has an id, a name and an input object", param: where_)
                        }
                        calls.append(.object([
                            "id": .string(id), "type": .string("function"),
                            "function": .object(["name": .string(name), "arguments": .string(String(buffer: input.bytes))]),
                        ]))
                    case "tool_result" where role == "user":
                        guard case .string(let id)? = block["tool_use_id"] else {
                            throw APIError.invalid("invalid_messages", "a tool_result block names its tool_use_id", param: where_)
                        }
                        let content: String
                        switch block["content"] {
                        case nil, .null?: content = ""
                        case .string(let text)?: content = text
                        case .array(let inner)?:
                            content = try inner.enumerated().map { index, part throws(APIError) in
                                try text(of: part, param: "\(where_).content[\(index)]")
                            }.joined(separator: "\n")
                        default:
                            throw APIError.invalid("invalid_messages", "a tool_result's content is a string or text blocks", param: "\(where_).content")
                        }
                        messages.append(.object(["role": .string("tool"), "tool_call_id": .string(id), "content": .string(content)]))
                    case "thinking", "redacted_thinking":
                        continue
                    default:
                        throw APIError.invalid(
                            "unsupported_content", "a content block here is text, image, tool_use (assistant) or tool_result (user)",
                            param: where_)
                    }
                }
            default:
                throw APIError.invalid("invalid_messages", "a message's content is a string or an array of blocks", param: "\(param).content")
            }
            guard !parts.isEmpty || !calls.isEmpty else { continue }
            var out: [String: JSONValue] = ["role": .string(role)]
            if role == "assistant" {
                out["content"] = parts.isEmpty ? .null : .string(parts.compactMap { $0["text"]?.stringValue }.joined())
                if !calls.isEmpty { out["tool_calls"] = .array(calls) }
            } else {
                out["content"] = .array(parts)
            }
            messages.append(.object(out))
        }
        var body: [String: JSONValue] = [
            "model": .string(model), "messages": .array(messages), "max_tokens": .number(Decimal(maxTokens)),
        ]
        if request["stream"] == .bool(true) { body["stream"] = .bool(true) }
        for name in ["temperature", "top_p"] {
            if let value = request[name], value != .null { body[name] = value }
        }
        if case .array(let stops)? = request["stop_sequences"], !stops.isEmpty { body["stop"] = .array(stops) }
        if case .string(let user)? = request["metadata"]?["user_id"] { body["user"] = .string(user) }
        if case .array(let tools)? = request["tools"], !tools.isEmpty {
            body["tools"] = .array(tools.compactMap { tool -> JSONValue? in
                // Anthropic's server tools (web search…) have a type and no schema: nothing to translate.
                guard let name = tool["name"]?.stringValue, case .object? = tool["input_schema"] else { return nil }
                var function: [String: JSONValue] = ["name": .string(name), "parameters": tool["input_schema"] ?? .object([:])]
                if let description = tool["description"] { function["description"] = description }
                return .object(["type": .string("function"), "function": .object(function)])
            })
        }
        if let choice = request["tool_choice"], choice != .null {
            switch choice["type"]?.stringValue {
            case "auto": body["tool_choice"] = .string("auto")
            case "any": body["tool_choice"] = .string("required")
            case "none": body["tool_choice"] = .string("none")
            case "tool" where choice["name"]?.stringValue != nil:
                body["tool_choice"] = .object(["type": .string("function"), "function": .object(["name": choice["name"] ?? .string("")])])
            default:
                throw APIError.invalid(
                    "invalid_tool_choice", "tool_choice is {\"type\": \"auto\"}, any, none, or {\"type\": \"tool\", \"name\": …}",
                    param: "tool_choice")
            }
            if choice["disable_parallel_tool_use"] == .bool(true) { body["parallel_tool_calls"] = .bool(false) }
        }
        return body
    }

    /// The text of a text block; 400 for anything else.
    static func text(of block: JSONValue, param: String) throws(APIError) -> String {
        guard block["type"]?.stringValue == "text", case .string(let text)? = block["text"] else {
            throw APIError.invalid("invalid_messages", "a text block is {\"type\": \"text\", \"text\": …}", param: param)
        }
        return text
    }

    /// The optional members' types, as Anthropic's API documents them.
    static func checkOptions(_ request: [String: JSONValue]) throws(APIError) {
        func check(_ name: String, _ valid: (JSONValue) -> Bool, _ what: String) throws(APIError) {
            guard let value = request[name], value != .null else { return }
            guard valid(value) else { throw APIError.invalid("invalid_\(name)", "\(name) must be \(what)", param: name) }
        }
        try check("stream", { if case .bool = $0 { true } else { false } }, "true or false")
        try check("temperature", { if case .number = $0 { true } else { false } }, "a number")
        try check("top_p", { if case .number = $0 { true } else { false } }, "a number")
        try check("stop_sequences", { $0.arrayValue?.allSatisfy { $0.stringValue != nil } ?? false }, "an array of strings")
        try check("metadata", { value in
            guard case .object = value else { return false }
            return value["user_id"].map { $0 == .null || $0.stringValue != nil } ?? true
        }, "an object whose user_id is a string")
        try check("tools", { tools in
            tools.arrayValue?.allSatisfy { tool in
                guard tool["name"]?.stringValue != nil else { return false }
                if case .object? = tool["input_schema"] { return true }
                // Anthropic's server tools (web search…) carry a type instead of a schema.
                return tool["type"]?.stringValue != nil
            } ?? false
        }, "an array of tools, each with a name and an input_schema object")
    }

    static func message(_ role: String, _ content: JSONValue) -> JSONValue {
        .object(["role": .string(role), "content": content])
    }

    /// An image block's source as a URL: base64 as a `data:` URL, a URL as it is.
    static func imageURL(_ block: JSONValue, param: String) throws(APIError) -> String {
        let source = block["source"]
        switch source?["type"]?.stringValue {
        case "base64":
            guard let mediaType = source?["media_type"]?.stringValue, let data = source?["data"]?.stringValue else { break }
            return "data:\(mediaType);base64,\(data)"
        case "url":
            if let url = source?["url"]?.stringValue { return url }
        default: break
        }
        throw APIError.invalid("invalid_image", "an image's source is base64 data or a URL", param: "\(param).source")
    }
}
