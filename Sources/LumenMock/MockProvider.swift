import Foundation
import Gateway
import HTTPTypes
import NIOCore
import SharedRules
import WireFormats

/// Lumen's built-in deterministic model (provider `mock`) as an upstream: it answers every
/// metered endpoint with the bytes an OpenAI-compatible server would send — JSON, or SSE with
/// the usage chunk — so the mock goes through exactly the metering and relaying of a real one.
/// `lumen serve` hands it to the gateway (`GatewayConfiguration.inProcess`) for `--demo` and for
/// any backend of provider `mock`.
public struct MockProvider: InProcessProvider {
    public init() {}

    static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }()

    public func respond(to request: InProcessCall) throws -> InProcessAnswer {
        let (model, id) = (request.model, request.id)
        let created = Int(Date().timeIntervalSince1970)
        let encoder = Self.encoder
        func json(_ value: some Encodable) throws -> InProcessAnswer {
            InProcessAnswer(contentType: "application/json", body: .whole(ByteBuffer(data: try encoder.encode(value))))
        }
        /// Server-sent events, `event:` lines first where the API names its events (responses).
        func sse(_ events: [any Encodable], named names: [String]? = nil, done: Bool = true) throws -> InProcessAnswer {
            var chunks = try events.enumerated().map { index, event -> ByteBuffer in
                var buffer = ByteBuffer()
                if let names { buffer.writeString("event: \(names[index])\n") }
                buffer.writeString("data: ")
                buffer.writeBytes(try encoder.encode(event))
                buffer.writeString("\n\n")
                return buffer
            }
            if done { chunks.append(ByteBuffer(string: "data: [DONE]\n\n")) }
            return InProcessAnswer(contentType: "text/event-stream", body: .chunks(chunks))
        }

        let promptTokens = Int(request.promptTokens)
        switch request.endpoint {
        case .embeddings:
            let (base64, dimensions) = (request.embeddingBase64, request.embeddingDimensions)
            let data = request.inputs.enumerated().map { index, text in
                let vector = MockModel.embedding(text, dimensions: dimensions ?? 16)
                return EmbeddingObject(
                    index: index,
                    embedding: base64 ? .base64(vector.withUnsafeBytes { Data($0) }.base64EncodedString()) : .floats(vector))
            }
            return try json(EmbeddingList(data: data, model: model, usage: .init(promptTokens: promptTokens, totalTokens: promptTokens)))

        case .chatCompletions, .completions:
            // `n` choices, each the same echo (the mock is deterministic), each counted.
            let reply = MockModel.reply(to: request.lastUserText, maxTokens: request.maxOutputTokens)
            let choices = 0..<request.choices
            let perChoice = reply.pieces.reduce(0) { $0 + TokenEstimate.count($1) }
            let usage = Usage(promptTokens: promptTokens, completionTokens: perChoice * request.choices)
            let chat = request.endpoint == .chatCompletions
            let completionID = (chat ? "chatcmpl-" : "cmpl-") + id
            if !request.stream {
                return chat
                    ? try json(
                        ChatCompletion(
                            id: completionID, created: created, model: model,
                            choices: choices.map { .init(index: $0, message: .init(content: reply.pieces.joined()), finishReason: reply.finishReason) },
                            usage: usage))
                    : try json(
                        TextCompletion(
                            id: completionID, created: created, model: model,
                            choices: choices.map { .init(text: reply.pieces.joined(), index: $0, finishReason: reply.finishReason) },
                            usage: usage))
            }
            if chat {
                var events: [ChatChunk] = choices.map {
                    ChatChunk(id: completionID, created: created, model: model, index: $0, delta: .init(role: "assistant", content: ""))
                }
                for piece in reply.pieces {
                    events += choices.map { ChatChunk(id: completionID, created: created, model: model, index: $0, delta: .init(content: piece)) }
                }
                events += choices.map {
                    ChatChunk(id: completionID, created: created, model: model, index: $0, delta: .init(), finishReason: reply.finishReason)
                }
                events.append(ChatChunk(id: completionID, created: created, model: model, usage: usage))
                return try sse(events)
            }
            var events: [TextCompletion] = []
            for piece in reply.pieces {
                events += choices.map {
                    TextCompletion(id: completionID, created: created, model: model, choices: [.init(text: piece, index: $0, finishReason: nil)])
                }
            }
            events += choices.map {
                TextCompletion(id: completionID, created: created, model: model, choices: [.init(text: "", index: $0, finishReason: reply.finishReason)])
            }
            events.append(TextCompletion(id: completionID, created: created, model: model, choices: [], usage: usage))
            return try sse(events)

        case .responses:
            let reply = MockModel.reply(to: request.lastUserText, maxTokens: request.maxOutputTokens)
            let text = reply.pieces.joined()
            let complete = reply.finishReason == "stop"
            let output = reply.pieces.reduce(0) { $0 + TokenEstimate.count($1) }
            let response = MockResponse(request: request, id: "resp_" + id, created: created, model: model)
            let usage = MockResponse.usage(input: promptTokens, output: output)
            let final = response.object(status: complete ? "completed" : "incomplete", output: [response.message(text, done: true, complete: complete)], usage: usage)
            guard request.stream else { return try json(final) }
            // The events OpenAI sends, in its order, so that the SDKs' stream helpers can follow.
            let itemID = response.itemID
            var events: [JSONValue] = []
            func event(_ type: String, _ fields: [String: JSONValue]) {
                var fields = fields
                fields["type"] = .string(type)
                fields["sequence_number"] = .number(Decimal(events.count))
                events.append(.object(fields))
            }
            let inProgress = response.object(status: "in_progress", output: [], usage: .null)
            func part(_ text: String) -> JSONValue {
                var part: [String: JSONValue] = [:]
                part["type"] = .string("output_text")
                part["text"] = .string(text)
                part["annotations"] = .array([])
                part["logprobs"] = .array([])
                return .object(part)
            }
            var position: [String: JSONValue] = [:]
            position["item_id"] = .string(itemID)
            position["output_index"] = .number(0)
            position["content_index"] = .number(0)
            event("response.created", ["response": inProgress])
            event("response.in_progress", ["response": inProgress])
            event("response.output_item.added", ["output_index": .number(0), "item": response.message("", done: false, complete: false)])
            event("response.content_part.added", position.merging(["part": part("")]) { $1 })
            for piece in reply.pieces {
                event("response.output_text.delta", position.merging(["delta": .string(piece), "logprobs": .array([])]) { $1 })
            }
            event("response.output_text.done", position.merging(["text": .string(text), "logprobs": .array([])]) { $1 })
            event("response.content_part.done", position.merging(["part": part(text)]) { $1 })
            event(
                "response.output_item.done",
                ["output_index": .number(0), "item": response.message(text, done: true, complete: complete)])
            event(complete ? "response.completed" : "response.incomplete", ["response": final])
            return try sse(events, named: events.map { $0["type"]?.stringValue ?? "" }, done: false)

        case .imageGenerations, .imageEdits, .imageVariations:
            // A 1×1 transparent PNG, whatever was asked.
            let image: JSONValue = .object(["b64_json": .string(Self.tinyPNG)])
            let created: JSONValue = .number(Decimal(created))
            return try json(JSONValue.object(["created": created, "data": .array([image])]))
        case .audioSpeech:
            let text = request.lastUserText.isEmpty ? "nothing" : request.lastUserText
            return InProcessAnswer(contentType: "audio/mpeg", body: .whole(ByteBuffer(string: "MOCK-AUDIO:" + text)))
        case .audioTranscriptions, .audioTranslations:
            return try json(JSONValue.object(["text": .string("This is the mock transcription.")]))
        case .moderations:
            let result: JSONValue = .object(["flagged": .bool(false), "categories": .object([:]), "category_scores": .object([:])])
            return try json(JSONValue.object(["id": .string("modr-" + id), "model": .string(model), "results": .array([result])]))
        case .rerank:
            // Documents ranked by how many of the query's words they share.
            let query = Set(request.lastUserText.lowercased().split(separator: " "))
            var documents: [String] = []
            if case .array(let items)? = request.body["documents"] {
                documents = items.map { if case .string(let text) = $0 { text } else { "" } }
            }
            let divisor = Decimal(max(1, query.count))
            var scored: [(Int, Decimal)] = []
            for (index, text) in documents.enumerated() {
                let shared = Set(text.lowercased().split(separator: " ")).intersection(query).count
                scored.append((index, Decimal(shared) / divisor))
            }
            scored.sort { left, right in left.1 > right.1 || (left.1 == right.1 && left.0 < right.0) }
            let results: [JSONValue] = scored.map { index, score in
                JSONValue.object(["index": JSONValue.number(Decimal(index)), "relevance_score": JSONValue.number(score)])
            }
            return try json(JSONValue.object(["id": .string("rerank-" + id), "model": .string(model), "results": .array(results)]))
        }
    }

    static let tinyPNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
}
struct Usage: Encodable {
    var promptTokens: Int
    var completionTokens: Int
    var totalTokens: Int { promptTokens + completionTokens }

    enum CodingKeys: String, CodingKey {
        case promptTokens = "prompt_tokens"
        case completionTokens = "completion_tokens"
        case totalTokens = "total_tokens"
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(promptTokens, forKey: .promptTokens)
        try container.encode(completionTokens, forKey: .completionTokens)
        try container.encode(totalTokens, forKey: .totalTokens)
    }
}

// Members OpenAI sends as null (`refusal`, `logprobs`, a stream's `finish_reason` until the
// last chunk) are `JSONValue`s: a synthesized `Encodable` leaves a nil optional out.

struct ChatCompletion: Encodable {
    struct Message: Encodable {
        var role = "assistant"
        var content: String
        var refusal = JSONValue.null
        var annotations: [String] = []
    }

    struct Choice: Encodable {
        var index: Int
        var message: Message
        var logprobs = JSONValue.null
        var finishReason: String

        enum CodingKeys: String, CodingKey {
            case index, message, logprobs
            case finishReason = "finish_reason"
        }
    }

    var id: String
    var object = "chat.completion"
    var created: Int
    var model: String
    var choices: [Choice]
    var usage: Usage
}

struct ChatChunk: Encodable {
    struct Delta: Encodable {
        var role: String?
        var content: String?
    }

    struct Choice: Encodable {
        var index: Int
        var delta: Delta
        var logprobs = JSONValue.null
        var finishReason: JSONValue

        enum CodingKeys: String, CodingKey {
            case index, delta, logprobs
            case finishReason = "finish_reason"
        }
    }

    var id: String
    var object = "chat.completion.chunk"
    var created: Int
    var model: String
    var choices: [Choice]
    var usage: Usage?

    /// A content chunk of one choice.
    init(id: String, created: Int, model: String, index: Int, delta: Delta, finishReason: String? = nil) {
        self.id = id
        self.created = created
        self.model = model
        self.choices = [Choice(index: index, delta: delta, finishReason: finishReason.map(JSONValue.string) ?? .null)]
        self.usage = nil
    }

    /// The usage chunk: no choices.
    init(id: String, created: Int, model: String, usage: Usage) {
        self.id = id
        self.created = created
        self.model = model
        self.choices = []
        self.usage = usage
    }
}

struct EmbeddingObject: Encodable {
    enum Vector: Encodable {
        case floats([Float])
        case base64(String)

        func encode(to encoder: any Encoder) throws {
            var container = encoder.singleValueContainer()
            switch self {
            case .floats(let values): try container.encode(values)
            case .base64(let text): try container.encode(text)
            }
        }
    }

    var object = "embedding"
    var index: Int
    var embedding: Vector
}

struct EmbeddingList: Encodable {
    struct Usage: Encodable {
        var promptTokens: Int
        var totalTokens: Int

        enum CodingKeys: String, CodingKey {
            case promptTokens = "prompt_tokens"
            case totalTokens = "total_tokens"
        }
    }

    var object = "list"
    var data: [EmbeddingObject]
    var model: String
    var usage: Usage
}

/// A legacy `/v1/completions` answer (or stream chunk).
struct TextCompletion: Encodable {
    struct Choice: Encodable {
        var text: String
        var index: Int
        var logprobs = JSONValue.null
        var finishReason: JSONValue

        init(text: String, index: Int, finishReason: String?) {
            self.text = text
            self.index = index
            self.finishReason = finishReason.map(JSONValue.string) ?? .null
        }

        enum CodingKeys: String, CodingKey {
            case text, index, logprobs
            case finishReason = "finish_reason"
        }
    }

    var id: String
    var object = "text_completion"
    var created: Int
    var model: String
    var choices: [Choice]
    var usage: Usage?
}

/// A `/v1/responses` answer as OpenAI's response object has it: every field its schema
/// requires, the request's own settings echoed (instructions, tools, temperature…), the
/// defaults OpenAI reports for those not given.
struct MockResponse {
    let request: InProcessCall
    let id: String
    let created: Int
    let model: String

    var itemID: String { "msg_" + id.dropFirst("resp_".count) }

    static func usage(input: Int, output: Int) -> JSONValue {
        var usage: [String: JSONValue] = [:]
        usage["input_tokens"] = .number(Decimal(input))
        usage["input_tokens_details"] = .object(["cached_tokens": .number(0), "cache_write_tokens": .number(0)])
        usage["output_tokens"] = .number(Decimal(output))
        usage["output_tokens_details"] = .object(["reasoning_tokens": .number(0)])
        usage["total_tokens"] = .number(Decimal(input + output))
        return .object(usage)
    }

    /// The assistant message of the output: in progress (empty) while streaming, then done.
    func message(_ text: String, done: Bool, complete: Bool) -> JSONValue {
        var content: [JSONValue] = []
        if done {
            var part: [String: JSONValue] = [:]
            part["type"] = .string("output_text")
            part["text"] = .string(text)
            part["annotations"] = .array([])
            part["logprobs"] = .array([])
            content.append(.object(part))
        }
        var item: [String: JSONValue] = [:]
        item["id"] = .string(itemID)
        item["type"] = .string("message")
        item["role"] = .string("assistant")
        item["status"] = .string(done ? (complete ? "completed" : "incomplete") : "in_progress")
        item["content"] = .array(content)
        return .object(item)
    }

    func object(status: String, output: [JSONValue], usage: JSONValue) -> JSONValue {
        let body = request.body
        func given(_ key: String, else fallback: JSONValue) -> JSONValue {
            guard let value = body[key], value != .null else { return fallback }
            return value
        }
        var tools: JSONValue = .array([])
        if case .array? = body["tools"] { tools = body["tools"]! }
        var metadata: JSONValue = .object([:])
        if case .object? = body["metadata"] { metadata = body["metadata"]! }
        var fields: [String: JSONValue] = [:]
        fields["id"] = .string(id)
        fields["object"] = .string("response")
        fields["created_at"] = .number(Decimal(created))
        fields["status"] = .string(status)
        fields["background"] = .bool(false)
        fields["error"] = .null
        fields["incomplete_details"] = status == "incomplete" ? .object(["reason": .string("max_output_tokens")]) : .null
        fields["instructions"] = body["instructions"]?.stringValue.map(JSONValue.string) ?? .null
        fields["max_output_tokens"] = request.maxOutputTokens.map { JSONValue.number(Decimal($0)) } ?? .null
        fields["max_tool_calls"] = .null
        fields["model"] = .string(model)
        fields["output"] = .array(output)
        fields["parallel_tool_calls"] = given("parallel_tool_calls", else: .bool(true))
        fields["previous_response_id"] = body["previous_response_id"]?.stringValue.map(JSONValue.string) ?? .null
        fields["reasoning"] = .object(["effort": .null, "summary": .null])
        fields["service_tier"] = .string("default")
        fields["store"] = .bool(false)
        fields["temperature"] = given("temperature", else: .number(1))
        fields["text"] = .object(["format": .object(["type": .string("text")]), "verbosity": .string("medium")])
        fields["tool_choice"] = given("tool_choice", else: .string("auto"))
        fields["tools"] = tools
        fields["top_logprobs"] = .number(0)
        fields["top_p"] = given("top_p", else: .number(1))
        fields["truncation"] = .string("disabled")
        // Left out until known (OpenAI's schema has no null usage).
        if usage != .null { fields["usage"] = usage }
        fields["metadata"] = metadata
        return .object(fields)
    }
}
