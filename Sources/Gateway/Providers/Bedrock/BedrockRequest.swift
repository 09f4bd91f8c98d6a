import Foundation
import WireFormats

/// An OpenAI chat completion request as Bedrock's Converse API takes it:
///
/// - every `system` (and `developer`) message's text as a block of `system`;
/// - user and assistant turns as `messages` (consecutive turns of one role merged: Converse
///   alternates), text as `text` blocks, images as `image` blocks with their bytes — inline
///   (`data:` URLs of PNG, JPEG, GIF or WebP) or as Lumen fetched them where the operator allows
///   the host, else refused (400 `image_url_not_supported`);
/// - an assistant's `tool_calls` as `toolUse` blocks (arguments parsed), `role: tool` results as
///   `toolResult` blocks of the next user turn (a JSON object as `json`, other content as `text`);
/// - `tools` as `toolConfig.tools[].toolSpec` (the JSON Schema as `inputSchema.json`),
///   `tool_choice` as `toolConfig.toolChoice` (`auto`, `required` → `any`, a function → `tool`);
/// - `inferenceConfig`: `max_tokens`/`max_completion_tokens` (else the model's most output),
///   `temperature`, `top_p`, `stop`;
/// - refused (400): `n` above 1, `tool_choice: none`, `parallel_tool_calls: false`,
///   `response_format` other than text, `logprobs`, `top_logprobs`, `logit_bias`,
///   `presence_penalty`, `frequency_penalty`, `seed`, `audio`, `prediction`,
///   `web_search_options`, `reasoning_effort` — Converse has no equivalent of them.
enum BedrockRequest {
    static let provider = "Bedrock"
    /// The image formats Converse takes, by media type.
    static let imageFormats = ["image/png": "png", "image/jpeg": "jpeg", "image/jpg": "jpeg", "image/gif": "gif", "image/webp": "webp"]

    static func body(_ request: [String: JSONValue], maxTokens: Int64, fetched: [String: FetchedImage] = [:]) throws(APIError) -> JSONValue {
        try ChatTranscript.refuseSeveralChoices(request, provider: provider)
        try UnmappedParameters.refuse(
            request,
            [
                "logprobs", "top_logprobs", "logit_bias", "presence_penalty", "frequency_penalty", "seed", "audio", "prediction",
                "web_search_options", "reasoning_effort", "response_format",
            ], provider: provider)
        if request["parallel_tool_calls"] == .bool(false) {
            throw APIError.invalid(
                "unsupported_parameter", "this model's provider (Bedrock) cannot be told to call one tool at a time: leave parallel_tool_calls out",
                param: "parallel_tool_calls")
        }
        let transcript = try ChatTranscript(
            request, field: "content", assistantRole: "assistant",
            blocks: { content, param throws(APIError) in try blocks(content, param: param, fetched: fetched) },
            isText: { $0["text"] != nil }, toolCall: toolUse,
            toolResult: { id, content, _ in
                let text = ChatRequest.text(of: content)
                let result: JSONValue =
                    if let object = try? JSONValue.parse(Array(text.utf8)), case .object = object { .object(["json": object]) } else {
                        .object(["text": .string(text.isEmpty ? " " : text)])
                    }
                return .object(["toolResult": .object(["toolUseId": .string(id), "content": .array([result])])])
            })
        var out: [String: JSONValue] = ["messages": .array(transcript.turns)]
        if !transcript.system.isEmpty { out["system"] = .array(transcript.system) }
        var inference: [String: JSONValue] = ["maxTokens": .number(Decimal(maxTokens))]
        if let value = request["temperature"], value != .null { inference["temperature"] = value }
        if let value = request["top_p"], value != .null { inference["topP"] = value }
        switch request["stop"] {
        case .string(let stop)?: inference["stopSequences"] = .array([.string(stop)])
        case .array(let stops)?: inference["stopSequences"] = .array(stops)
        default: break
        }
        out["inferenceConfig"] = .object(inference)
        if case .array(let tools)? = request["tools"], !tools.isEmpty {
            var config: [String: JSONValue] = [
                "tools": .array(try tools.enumerated().map { index, tool throws(APIError) in try spec(tool, param: "tools[\(index)]") })
            ]
            if let choice = try toolChoice(request["tool_choice"]) { config["toolChoice"] = choice }
            out["toolConfig"] = .object(config)
        } else if request["tool_choice"] != nil, request["tool_choice"] != .null, request["tool_choice"] != .string("none") {
            throw APIError.invalid("invalid_tool_choice", "tool_choice needs tools", param: "tool_choice")
        }
        return .object(out)
    }

    /// A message's content as Converse's blocks: text, and images with their bytes.
    static func blocks(_ content: JSONValue?, param: String, fetched: [String: FetchedImage]) throws(APIError) -> [JSONValue] {
        try ChatTranscript.blocks(
            content, param: param, provider: provider, fetched: fetched, text: { .object(["text": .string($0)]) },
            image: { image, place throws(APIError) in
                guard let format = imageFormats[image.mediaType.lowercased()] else {
                    throw APIError.invalid(
                        "unsupported_content", "this model's provider (Bedrock) takes PNG, JPEG, GIF and WebP images, not \(image.mediaType)",
                        param: place)
                }
                return .object(["image": .object(["format": .string(format), "source": .object(["bytes": .string(image.base64)])])])
            })
    }

    static func toolUse(_ call: JSONValue, param: String) throws(APIError) -> JSONValue {
        guard let id = call["id"]?.stringValue, let name = call["function"]?["name"]?.stringValue else {
            throw APIError.invalid("invalid_messages", "a tool call needs an id and a function name", param: param)
        }
        let arguments = call["function"]?["arguments"]?.stringValue ?? "{}"
        guard let input = try? JSONValue.parse(Array((arguments.isEmpty ? "{}" : arguments).utf8)), case .object = input else {
            throw APIError.invalid("invalid_messages", "a tool call's arguments are a JSON object", param: "\(param).function.arguments")
        }
        return .object(["toolUse": .object(["toolUseId": .string(id), "name": .string(name), "input": input])])
    }

    static func spec(_ tool: JSONValue, param: String) throws(APIError) -> JSONValue {
        guard tool["type"]?.stringValue == "function", let function = tool["function"], let name = function["name"]?.stringValue else {
            throw APIError.invalid("invalid_tools", "each tool is {\"type\": \"function\", \"function\": {\"name\": …}}", param: param)
        }
        var spec: [String: JSONValue] = [
            "name": .string(name),
            "inputSchema": .object(["json": function["parameters"] ?? .object(["type": .string("object"), "properties": .object([:])])]),
        ]
        if let description = function["description"], description != .null { spec["description"] = description }
        return .object(["toolSpec": .object(spec)])
    }

    static func toolChoice(_ choice: JSONValue?) throws(APIError) -> JSONValue? {
        switch choice {
        case nil, .null?: return nil
        case .string("auto")?: return .object(["auto": .object([:])])
        case .string("required")?: return .object(["any": .object([:])])
        case .string("none")?:
            throw APIError.invalid(
                "unsupported_parameter", "this model's provider (Bedrock) cannot be told not to call the tools it is given: leave the tools out instead",
                param: "tool_choice")
        case .object?:
            guard let name = choice?["function"]?["name"]?.stringValue else { fallthrough }
            return .object(["tool": .object(["name": .string(name)])])
        default:
            throw APIError.invalid(
                "invalid_tool_choice", "tool_choice is auto, none, required or {\"type\": \"function\", \"function\": {\"name\": …}}",
                param: "tool_choice")
        }
    }
}
