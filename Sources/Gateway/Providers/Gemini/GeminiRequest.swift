import Foundation
import WireFormats

/// OpenAI requests as Google's Gemini API takes them.
///
/// A chat completion as `generateContent`'s body:
/// - every `system` (and `developer`) message's text as a part of `systemInstruction`;
/// - user and assistant turns as `contents` (roles `user` and `model`, consecutive turns of one
///   role merged), text as `text` parts, images as `inlineData` — inline (`data:` URLs) or as
///   the bytes Lumen fetched where the operator allows the host, else refused (400
///   `image_url_not_supported`);
/// - an assistant's `tool_calls` as `functionCall` parts (arguments parsed; the thought
///   signature Gemini gave the call, which Lumen keeps in the call's id, sent back with it),
///   `role: tool` results as `functionResponse` parts named after the call they answer (a JSON
///   object as it is, other content as `{"content": …}`);
/// - `tools` as `functionDeclarations` (their JSON Schema as `parametersJsonSchema`),
///   `tool_choice` as `toolConfig.functionCallingConfig` (`auto` → AUTO, `none` → NONE,
///   `required` → ANY, a function → ANY allowing only it);
/// - `generationConfig`: `temperature`, `top_p`, `max_completion_tokens`/`max_tokens`, `stop`,
///   `n` (`candidateCount`), `presence_penalty`, `frequency_penalty`, `seed`, `response_format`
///   (`json_object` → JSON, `json_schema` → JSON with `responseJsonSchema`) and
///   `reasoning_effort` (`thinkingConfig.thinkingBudget`: none 0, minimal 512, low 1,024, medium
///   8,192, high 24,576);
/// - refused (400 `unsupported_parameter`): `logprobs`, `top_logprobs`, `logit_bias`, `audio`,
///   `prediction`, `web_search_options`, `parallel_tool_calls: false`.
enum GeminiRequest {
    /// The name the provider goes by in messages.
    static let provider = "Gemini"
    /// Separates a tool call's id from the thought signature Gemini gave it (as LiteLLM does),
    /// so that an OpenAI client that sends the call back sends the signature too.
    static let signatureSeparator = "__thought__"

    static func body(_ request: [String: JSONValue], fetched: [String: FetchedImage] = [:]) throws(APIError) -> JSONValue {
        try UnmappedParameters.refuse(
            request, ["logprobs", "top_logprobs", "logit_bias", "audio", "prediction", "web_search_options"], provider: provider)
        if request["parallel_tool_calls"] == .bool(false) {
            throw APIError.invalid(
                "unsupported_parameter",
                "this model's provider (Gemini) cannot be told to call one tool at a time: leave parallel_tool_calls out",
                param: "parallel_tool_calls")
        }
        /// The function each tool call id named, for the results that answer them.
        var calledNames: [String: String] = [:]
        let transcript = try ChatTranscript(
            request, field: "parts", assistantRole: "model",
            blocks: { content, param throws(APIError) in try parts(content, param: param, fetched: fetched) },
            isText: { $0["text"] != nil },
            toolCall: { call, param throws(APIError) in
                let (part, id, name) = try functionCall(call, param: param)
                calledNames[id] = name
                return part
            },
            toolResult: { id, content, param throws(APIError) in
                guard let name = calledNames[id] else {
                    throw APIError.invalid(
                        "invalid_messages", "a tool message answers a tool call of an earlier assistant message: no call has the id \(id)",
                        param: "\(param).tool_call_id")
                }
                return .object(["functionResponse": .object(["name": .string(name), "response": response(content)])])
            })
        var out: [String: JSONValue] = ["contents": .array(transcript.turns)]
        if !transcript.system.isEmpty { out["systemInstruction"] = .object(["parts": .array(transcript.system)]) }
        if case .array(let tools)? = request["tools"], !tools.isEmpty {
            let declarations = try tools.enumerated().map { index, tool throws(APIError) in try declaration(tool, param: "tools[\(index)]") }
            out["tools"] = .array([.object(["functionDeclarations": .array(declarations)])])
        }
        if let config = try toolConfig(request["tool_choice"]) { out["toolConfig"] = config }
        let generation = try generationConfig(request)
        if !generation.isEmpty { out["generationConfig"] = .object(generation) }
        return .object(out)
    }

    /// A message's content as Gemini's parts: text, and images inline.
    static func parts(_ content: JSONValue?, param: String, fetched: [String: FetchedImage]) throws(APIError) -> [JSONValue] {
        try ChatTranscript.blocks(
            content, param: param, provider: provider, fetched: fetched, text: { .object(["text": .string($0)]) },
            image: { image, _ in .object(["inlineData": .object(["mimeType": .string(image.mediaType), "data": .string(image.base64)])]) })
    }

    /// An assistant's tool call as a `functionCall` part (with its thought signature), its id and name.
    static func functionCall(_ call: JSONValue, param: String) throws(APIError) -> (JSONValue, String, String) {
        guard let id = call["id"]?.stringValue, let name = call["function"]?["name"]?.stringValue else {
            throw APIError.invalid("invalid_messages", "a tool call needs an id and a function name", param: param)
        }
        let arguments = call["function"]?["arguments"]?.stringValue ?? "{}"
        guard let args = try? JSONValue.parse(Array((arguments.isEmpty ? "{}" : arguments).utf8)), case .object = args else {
            throw APIError.invalid("invalid_messages", "a tool call's arguments are a JSON object", param: "\(param).function.arguments")
        }
        var part: [String: JSONValue] = ["functionCall": .object(["name": .string(name), "args": args])]
        if let range = id.range(of: signatureSeparator) { part["thoughtSignature"] = .string(String(id[range.upperBound...])) }
        return (.object(part), id, name)
    }

    /// A tool's result as a `functionResponse`'s `response` (an object).
    static func response(_ content: JSONValue?) -> JSONValue {
        let text = ChatRequest.text(of: content)
        if let object = try? JSONValue.parse(Array(text.utf8)), case .object = object { return object }
        return .object(["content": .string(text)])
    }

    static func declaration(_ tool: JSONValue, param: String) throws(APIError) -> JSONValue {
        guard tool["type"]?.stringValue == "function", let function = tool["function"], let name = function["name"]?.stringValue else {
            throw APIError.invalid("invalid_tools", "each tool is {\"type\": \"function\", \"function\": {\"name\": …}}", param: param)
        }
        var out: [String: JSONValue] = ["name": .string(name)]
        if let description = function["description"], description != .null { out["description"] = description }
        if let parameters = function["parameters"], parameters != .null { out["parametersJsonSchema"] = parameters }
        return .object(out)
    }

    static func toolConfig(_ choice: JSONValue?) throws(APIError) -> JSONValue? {
        func config(_ mode: String, only name: String? = nil) -> JSONValue {
            var calling: [String: JSONValue] = ["mode": .string(mode)]
            if let name { calling["allowedFunctionNames"] = .array([.string(name)]) }
            return .object(["functionCallingConfig": .object(calling)])
        }
        switch choice {
        case nil, .null?: return nil
        case .string("auto")?: return config("AUTO")
        case .string("none")?: return config("NONE")
        case .string("required")?: return config("ANY")
        case .object?:
            guard let name = choice?["function"]?["name"]?.stringValue else { fallthrough }
            return config("ANY", only: name)
        default:
            throw APIError.invalid(
                "invalid_tool_choice", "tool_choice is auto, none, required or {\"type\": \"function\", \"function\": {\"name\": …}}",
                param: "tool_choice")
        }
    }

    /// Thinking budgets for OpenAI's `reasoning_effort`, as Google's OpenAI compatibility maps them.
    static let thinkingBudgets: [String: Int] = ["none": 0, "minimal": 512, "low": 1_024, "medium": 8_192, "high": 24_576]

    static func generationConfig(_ request: [String: JSONValue]) throws(APIError) -> [String: JSONValue] {
        var config: [String: JSONValue] = [:]
        for (openAI, gemini) in [
            ("temperature", "temperature"), ("top_p", "topP"), ("presence_penalty", "presencePenalty"),
            ("frequency_penalty", "frequencyPenalty"), ("seed", "seed"),
        ] {
            if let value = request[openAI], value != .null { config[gemini] = value }
        }
        if let most = request["max_completion_tokens"] ?? request["max_tokens"], most != .null { config["maxOutputTokens"] = most }
        if let n = request["n"], n != .null { config["candidateCount"] = n }
        switch request["stop"] {
        case .string(let stop)?: config["stopSequences"] = .array([.string(stop)])
        case .array(let stops)?: config["stopSequences"] = .array(stops)
        default: break
        }
        if let format = request["response_format"], format != .null {
            switch format["type"]?.stringValue {
            case "text": break
            case "json_object": config["responseMimeType"] = .string("application/json")
            case "json_schema":
                guard let schema = format["json_schema"]?["schema"] else {
                    throw APIError.invalid(
                        "invalid_response_format", "a json_schema response_format needs json_schema.schema", param: "response_format")
                }
                config["responseMimeType"] = .string("application/json")
                config["responseJsonSchema"] = schema
            default:
                throw APIError.invalid("invalid_response_format", "response_format's type is text, json_object or json_schema", param: "response_format")
            }
        }
        if let effort = request["reasoning_effort"], effort != .null {
            guard let budget = effort.stringValue.flatMap({ thinkingBudgets[$0] }) else {
                throw APIError.invalid(
                    "invalid_reasoning_effort", "reasoning_effort is none, minimal, low, medium or high", param: "reasoning_effort")
            }
            config["thinkingConfig"] = .object(["thinkingBudget": .number(Decimal(budget))])
        }
        return config
    }

    /// An embeddings request as `embedContent` (one input) or `batchEmbedContents`' body;
    /// `model` as the backend names it. Gemini embeds text: other inputs are refused (400).
    static func embeddings(_ request: [String: JSONValue], model: String) throws(APIError) -> (body: JSONValue, batch: Bool) {
        let texts: [String]
        switch request["input"] {
        case .string(let text)?: texts = [text]
        case .array(let items)? where !items.isEmpty && items.allSatisfy({ $0.stringValue != nil }): texts = items.compactMap(\.stringValue)
        default:
            throw APIError.invalid(
                "unsupported_input", "this model's provider (Gemini) embeds text: input is a string or an array of strings", param: "input")
        }
        let dimensions = request["dimensions"].flatMap { $0 == .null ? nil : $0 }
        func one(_ text: String) -> JSONValue {
            var fields: [String: JSONValue] = [
                "model": .string("models/" + model), "content": .object(["parts": .array([.object(["text": .string(text)])])]),
            ]
            if let dimensions { fields["outputDimensionality"] = dimensions }
            return .object(fields)
        }
        if texts.count == 1 { return (one(texts[0]), false) }
        return (.object(["requests": .array(texts.map(one))]), true)
    }
}
