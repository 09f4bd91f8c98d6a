import Foundation
import WireFormats

/// An OpenAI chat completion request as Anthropic's Messages API takes it:
///
/// - every `system` (and `developer`) message, in order, as one block each of `system`;
/// - user and assistant turns as `messages`, consecutive messages of one role merged into one
///   (Anthropic alternates), text and images as content blocks — an image inline (a `data:`
///   URL) as base64, an image by URL as the bytes Lumen fetched (`ImageFetcher`, where the
///   operator allows its host), else refused (400 `image_url_not_supported`);
/// - an assistant's `tool_calls` as `tool_use` blocks (arguments parsed), `role: tool` results
///   as `tool_result` blocks of the next user turn;
/// - `tools` as `input_schema`s, `tool_choice` (`auto`, `none`, `required` → `any`, a function
///   → `tool`), `parallel_tool_calls: false` → `disable_parallel_tool_use`;
/// - `stop` → `stop_sequences`, `temperature`, `top_p`, `user` → `metadata.user_id`;
/// - `max_tokens` (Anthropic requires it): the request's, else the model's most output;
/// - `n` above 1 refused (400 `n_not_supported`): Anthropic answers one choice; and refused
///   (400 `unsupported_parameter`) what has no equivalent here: `logprobs`, `top_logprobs`,
///   `logit_bias`, `presence_penalty`, `frequency_penalty`, `seed`, `audio`, `prediction`,
///   `web_search_options`, `response_format` other than text, `reasoning_effort`.
enum AnthropicRequest {
    /// `fetched`: the images by URL Lumen fetched, by URL (`ChatImages.urls`).
    static func body(
        _ request: [String: JSONValue], model: String, stream: Bool, maxTokens: Int64, fetched: [String: FetchedImage] = [:]
    ) throws(APIError) -> JSONValue {
        try ChatTranscript.refuseSeveralChoices(request, provider: "Anthropic")
        try UnmappedParameters.refuse(
            request,
            [
                "logprobs", "top_logprobs", "logit_bias", "presence_penalty", "frequency_penalty", "seed", "audio", "prediction",
                "web_search_options", "response_format", "reasoning_effort",
            ], provider: "Anthropic")
        let transcript = try ChatTranscript(
            request, field: "content", assistantRole: "assistant",
            blocks: { content, param throws(APIError) in try blocks(content, param: param, fetched: fetched) },
            isText: { $0["type"]?.stringValue == "text" }, toolCall: toolUse,
            toolResult: { id, content, _ in
                .object(["type": .string("tool_result"), "tool_use_id": .string(id), "content": .string(ChatRequest.text(of: content))])
            })
        var out: [String: JSONValue] = [
            "model": .string(model),
            "messages": .array(transcript.turns),
            "max_tokens": .number(Decimal(maxTokens)),
        ]
        if !transcript.system.isEmpty { out["system"] = .array(transcript.system) }
        if stream { out["stream"] = .bool(true) }
        for name in ["temperature", "top_p"] {
            if let value = request[name], value != .null { out[name] = value }
        }
        switch request["stop"] {
        case .string(let stop)?: out["stop_sequences"] = .array([.string(stop)])
        case .array(let stops)?: out["stop_sequences"] = .array(stops)
        default: break
        }
        if case .string(let user)? = request["user"] { out["metadata"] = .object(["user_id": .string(user)]) }
        if case .array(let tools)? = request["tools"], !tools.isEmpty {
            out["tools"] = .array(try tools.enumerated().map { index, tool throws(APIError) in try self.tool(tool, param: "tools[\(index)]") })
        }
        if var choice = try toolChoice(request["tool_choice"]) {
            if request["parallel_tool_calls"] == .bool(false), case .object(var fields) = choice {
                fields["disable_parallel_tool_use"] = .bool(true)
                choice = .object(fields)
            }
            out["tool_choice"] = choice
        }
        return .object(out)
    }

    /// A message's content as Anthropic's blocks: text, and images inline as base64.
    static func blocks(_ content: JSONValue?, param: String, fetched: [String: FetchedImage] = [:]) throws(APIError) -> [JSONValue] {
        try ChatTranscript.blocks(
            content, param: param, provider: "Anthropic", fetched: fetched,
            text: { .object(["type": .string("text"), "text": .string($0)]) },
            image: { image, _ in
                .object([
                    "type": .string("image"),
                    "source": .object(["type": .string("base64"), "media_type": .string(image.mediaType), "data": .string(image.base64)]),
                ])
            })
    }

    /// An assistant's tool call as a `tool_use` block, its arguments parsed.
    static func toolUse(_ call: JSONValue, param: String) throws(APIError) -> JSONValue {
        guard let id = call["id"]?.stringValue, let name = call["function"]?["name"]?.stringValue else {
            throw APIError.invalid("invalid_messages", "a tool call needs an id and a function name", param: param)
        }
        let arguments = call["function"]?["arguments"]?.stringValue ?? "{}"
        let input: JSONValue
        do {
            input = try JSONValue.parse(Array((arguments.isEmpty ? "{}" : arguments).utf8))
        } catch {
            throw APIError.invalid("invalid_messages", "a tool call's arguments are a JSON object", param: "\(param).function.arguments")
        }
        return .object(["type": .string("tool_use"), "id": .string(id), "name": .string(name), "input": input])
    }

    static func tool(_ tool: JSONValue, param: String) throws(APIError) -> JSONValue {
        guard tool["type"]?.stringValue == "function", let function = tool["function"], let name = function["name"]?.stringValue else {
            throw APIError.invalid("invalid_tools", "each tool is {\"type\": \"function\", \"function\": {\"name\": …}}", param: param)
        }
        var out: [String: JSONValue] = [
            "name": .string(name), "input_schema": function["parameters"] ?? .object(["type": .string("object"), "properties": .object([:])]),
        ]
        if let description = function["description"], description != .null { out["description"] = description }
        return .object(out)
    }

    static func toolChoice(_ choice: JSONValue?) throws(APIError) -> JSONValue? {
        switch choice {
        case nil, .null?: return nil
        case .string("auto")?: return .object(["type": .string("auto")])
        case .string("none")?: return .object(["type": .string("none")])
        case .string("required")?: return .object(["type": .string("any")])
        case .object?:
            guard let name = choice?["function"]?["name"]?.stringValue else { fallthrough }
            return .object(["type": .string("tool"), "name": .string(name)])
        default:
            throw APIError.invalid(
                "invalid_tool_choice", "tool_choice is auto, none, required or {\"type\": \"function\", \"function\": {\"name\": …}}",
                param: "tool_choice")
        }
    }
}
