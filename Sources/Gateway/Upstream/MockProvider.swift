import Foundation
import HTTPTypes
import NIOCore
import WireFormats

/// Lumen's built-in deterministic model (provider `mock`) as an upstream: it answers every
/// metered endpoint with the bytes an OpenAI-compatible server would send — JSON, or SSE with
/// the usage chunk — so the mock goes through exactly the metering and relaying of a real one.
enum MockProvider {
    static func respond(to request: InferenceRequest, model: String, id: String) throws -> UpstreamResponse {
        let created = Int(Date().timeIntervalSince1970)
        let encoder = JSONResponse<Usage>.encoder
        func json(_ value: some Encodable) throws -> UpstreamResponse {
            UpstreamResponse(status: .ok, contentType: "application/json", body: .buffered(ByteBuffer(data: try encoder.encode(value))))
        }
        func sse(_ events: [any Encodable], done: Bool = true) throws -> UpstreamResponse {
            var chunks = try events.map { event -> ByteBuffer in
                var buffer = ByteBuffer(string: "data: ")
                buffer.writeBytes(try encoder.encode(event))
                buffer.writeString("\n\n")
                return buffer
            }
            if done { chunks.append(ByteBuffer(string: "data: [DONE]\n\n")) }
            return UpstreamResponse(status: .ok, contentType: "text/event-stream", body: .chunks(chunks))
        }

        let promptTokens = Int(request.promptTokens)
        switch request.endpoint {
        case .embeddings:
            let (base64, dimensions) = request.embeddingOptions
            let data = request.inputs.enumerated().map { index, text in
                let vector = MockModel.embedding(text, dimensions: dimensions ?? 16)
                return EmbeddingObject(
                    index: index,
                    embedding: base64 ? .base64(vector.withUnsafeBytes { Data($0) }.base64EncodedString()) : .floats(vector))
            }
            return try json(EmbeddingList(data: data, model: model, usage: .init(promptTokens: promptTokens, totalTokens: promptTokens)))

        case .chatCompletions, .completions:
            let reply = MockModel.reply(to: request.lastUserText, maxTokens: request.maxOutputTokens)
            let usage = Usage(promptTokens: promptTokens, completionTokens: reply.pieces.reduce(0) { $0 + TokenEstimate.count($1) })
            let chat = request.endpoint == .chatCompletions
            let completionID = (chat ? "chatcmpl-" : "cmpl-") + id
            if !request.stream {
                return chat
                    ? try json(ChatCompletion(id: completionID, created: created, model: model, content: reply.pieces.joined(), finishReason: reply.finishReason, usage: usage))
                    : try json(TextCompletion(id: completionID, created: created, model: model, text: reply.pieces.joined(), finishReason: reply.finishReason, usage: usage))
            }
            if chat {
                var events: [ChatChunk] = [ChatChunk(id: completionID, created: created, model: model, delta: .init(role: "assistant", content: ""))]
                events += reply.pieces.map { ChatChunk(id: completionID, created: created, model: model, delta: .init(content: $0)) }
                events.append(ChatChunk(id: completionID, created: created, model: model, delta: .init(), finishReason: reply.finishReason))
                events.append(ChatChunk(id: completionID, created: created, model: model, usage: usage))
                return try sse(events)
            }
            var events = reply.pieces.map { TextCompletion(id: completionID, created: created, model: model, text: $0, finishReason: nil, usage: nil) }
            events.append(TextCompletion(id: completionID, created: created, model: model, text: "", finishReason: reply.finishReason, usage: nil))
            events.append(TextCompletion(id: completionID, created: created, model: model, usage: usage))
            return try sse(events)

        case .responses:
            let reply = MockModel.reply(to: request.lastUserText, maxTokens: request.maxOutputTokens)
            let output = reply.pieces.reduce(0) { $0 + TokenEstimate.count($1) }
            let responseID = "resp_" + id
            let final = ResponseObject(
                id: responseID, createdAt: created, model: model, text: reply.pieces.joined(),
                usage: .init(inputTokens: promptTokens, outputTokens: output), complete: reply.finishReason == "stop")
            guard request.stream else { return try json(final) }
            var inProgress = final
            inProgress.status = "in_progress"
            inProgress.output = []
            inProgress.usage = nil
            var events: [any Encodable] = [
                ResponseEvent(type: "response.created", sequenceNumber: 0, response: inProgress),
            ]
            for (index, piece) in reply.pieces.enumerated() {
                events.append(ResponseEvent(type: "response.output_text.delta", sequenceNumber: index + 1, itemID: final.output[0].id, delta: piece))
            }
            events.append(ResponseEvent(type: "response.completed", sequenceNumber: reply.pieces.count + 1, response: final))
            return try sse(events, done: false)

        case .imageGenerations, .imageEdits, .imageVariations:
            // A 1×1 transparent PNG, whatever was asked.
            let image: JSONValue = .object(["b64_json": .string(tinyPNG)])
            let created: JSONValue = .number(Decimal(created))
            return try json(JSONValue.object(["created": created, "data": .array([image])]))
        case .audioSpeech:
            let text = request.lastUserText.isEmpty ? "nothing" : request.lastUserText
            return UpstreamResponse(
                status: .ok, contentType: "audio/mpeg", body: .buffered(ByteBuffer(string: "MOCK-AUDIO:" + text)))
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

struct ChatCompletion: Encodable {
    struct Message: Encodable {
        var role = "assistant"
        var content: String
    }

    struct Choice: Encodable {
        var index = 0
        var message: Message
        var finishReason: String

        enum CodingKeys: String, CodingKey {
            case index, message
            case finishReason = "finish_reason"
        }
    }

    var id: String
    var object = "chat.completion"
    var created: Int
    var model: String
    var choices: [Choice]
    var usage: Usage

    init(id: String, created: Int, model: String, content: String, finishReason: String, usage: Usage) {
        self.id = id
        self.created = created
        self.model = model
        self.choices = [Choice(message: Message(content: content), finishReason: finishReason)]
        self.usage = usage
    }
}

struct ChatChunk: Encodable {
    struct Delta: Encodable {
        var role: String?
        var content: String?
    }

    struct Choice: Encodable {
        var index = 0
        var delta: Delta
        var finishReason: String?

        enum CodingKeys: String, CodingKey {
            case index, delta
            case finishReason = "finish_reason"
        }

        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(index, forKey: .index)
            try container.encode(delta, forKey: .delta)
            try container.encode(finishReason, forKey: .finishReason)
        }
    }

    var id: String
    var object = "chat.completion.chunk"
    var created: Int
    var model: String
    var choices: [Choice]
    var usage: Usage?

    /// A content chunk.
    init(id: String, created: Int, model: String, delta: Delta, finishReason: String? = nil) {
        self.id = id
        self.created = created
        self.model = model
        self.choices = [Choice(delta: delta, finishReason: finishReason)]
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
        var index = 0
        var logprobs: String? = nil
        var finishReason: String?

        enum CodingKeys: String, CodingKey {
            case text, index, logprobs
            case finishReason = "finish_reason"
        }

        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(text, forKey: .text)
            try container.encode(index, forKey: .index)
            try container.encode(logprobs, forKey: .logprobs)
            try container.encode(finishReason, forKey: .finishReason)
        }
    }

    var id: String
    var object = "text_completion"
    var created: Int
    var model: String
    var choices: [Choice]
    var usage: Usage?

    init(id: String, created: Int, model: String, text: String, finishReason: String?, usage: Usage?) {
        self.id = id
        self.created = created
        self.model = model
        self.choices = [Choice(text: text, finishReason: finishReason)]
        self.usage = usage
    }

    /// The usage chunk of a stream: no choices.
    init(id: String, created: Int, model: String, usage: Usage) {
        self.id = id
        self.created = created
        self.model = model
        self.choices = []
        self.usage = usage
    }
}

/// A `/v1/responses` answer.
struct ResponseObject: Encodable {
    struct Content: Encodable {
        var type = "output_text"
        var text: String
        var annotations: [String] = []
    }

    struct Item: Encodable {
        var id: String
        var type = "message"
        var status = "completed"
        var role = "assistant"
        var content: [Content]
    }

    struct ResponseUsage: Encodable {
        struct InputDetails: Encodable {
            var cachedTokens = 0
            enum CodingKeys: String, CodingKey { case cachedTokens = "cached_tokens" }
        }
        struct OutputDetails: Encodable {
            var reasoningTokens = 0
            enum CodingKeys: String, CodingKey { case reasoningTokens = "reasoning_tokens" }
        }

        var inputTokens: Int
        var outputTokens: Int
        var totalTokens: Int
        var inputTokensDetails = InputDetails()
        var outputTokensDetails = OutputDetails()

        init(inputTokens: Int, outputTokens: Int) {
            self.inputTokens = inputTokens
            self.outputTokens = outputTokens
            self.totalTokens = inputTokens + outputTokens
        }

        enum CodingKeys: String, CodingKey {
            case inputTokens = "input_tokens"
            case outputTokens = "output_tokens"
            case totalTokens = "total_tokens"
            case inputTokensDetails = "input_tokens_details"
            case outputTokensDetails = "output_tokens_details"
        }
    }

    var id: String
    var object = "response"
    var createdAt: Int
    var status: String
    var model: String
    var output: [Item]
    var usage: ResponseUsage?
    var incompleteDetails: [String: String]?

    init(id: String, createdAt: Int, model: String, text: String, usage: ResponseUsage, complete: Bool) {
        self.id = id
        self.createdAt = createdAt
        self.status = complete ? "completed" : "incomplete"
        self.model = model
        self.output = [Item(id: "msg_" + id.dropFirst(5), content: [Content(text: text)])]
        self.usage = usage
        self.incompleteDetails = complete ? nil : ["reason": "max_output_tokens"]
    }

    enum CodingKeys: String, CodingKey {
        case id, object, status, model, output, usage
        case createdAt = "created_at"
        case incompleteDetails = "incomplete_details"
    }
}

/// One event of a `/v1/responses` stream.
struct ResponseEvent: Encodable {
    var type: String
    var sequenceNumber: Int
    var response: ResponseObject?
    var itemID: String?
    var outputIndex: Int?
    var contentIndex: Int?
    var delta: String?

    init(type: String, sequenceNumber: Int, response: ResponseObject) {
        self.type = type
        self.sequenceNumber = sequenceNumber
        self.response = response
    }

    init(type: String, sequenceNumber: Int, itemID: String, delta: String) {
        self.type = type
        self.sequenceNumber = sequenceNumber
        self.itemID = itemID
        self.outputIndex = 0
        self.contentIndex = 0
        self.delta = delta
    }

    enum CodingKeys: String, CodingKey {
        case type, response, delta
        case sequenceNumber = "sequence_number"
        case itemID = "item_id"
        case outputIndex = "output_index"
        case contentIndex = "content_index"
    }
}
