import Foundation
import HTTPTypes
import Hummingbird
import LumenAPI
import NIOCore
import RPCSupport


/// The OpenAI-compatible endpoints: `GET /v1/models` and `POST /v1/chat/completions`
/// (non-streaming and SSE streaming), served by the built-in mock provider.
struct OpenAIController<Context: RequestContext>: Sendable {
    let admission: InferenceAdmission
    static var maxBodyBytes: Int { 4 * 1024 * 1024 }

    func addRoutes(to group: RouterGroup<Context>) {
        group.add(middleware: RequestIDMiddleware())
        group.get("models", use: models)
        group.post("chat/completions", use: chatCompletions)
        group.post("embeddings", use: embeddings)
    }

    /// The model a request may call for `scene`, answered by a mock backend.
    func mockModel(_ name: String, scene: Lumen_Common_V1_Scene, for key: Lumen_Keys_V1_Key) throws -> Lumen_Registry_V1_Model {
        let model = try admission.model(name, for: key)
        guard model.scenes.contains(scene) else {
            throw APIError.invalid(
                "model_not_supported", "\(name) does not serve this endpoint (\(scene))", param: "model")
        }
        guard model.backends.contains(where: { $0.provider == .mock && $0.health != .unhealthy }) else {
            throw APIError(
                .notImplemented, code: "not_implemented",
                message: "calls to OpenAI-compatible upstreams are not implemented yet; only mock backends answer",
                param: "model")
        }
        return model
    }

    @Sendable func embeddings(_ request: Request, context: Context) async throws -> JSONResponse<EmbeddingList> {
        let key = try admission.key(request)
        let buffer = try await request.body.collect(upTo: Self.maxBodyBytes)
        let embeddings = try EmbeddingsRequest(try JSONValue.object(from: Data(buffer.readableBytesView)))
        let model = try mockModel(embeddings.model, scene: .embedding, for: key)
        let dimensions = embeddings.dimensions ?? 16
        let data = embeddings.inputs.enumerated().map { index, text in
            let vector = MockModel.embedding(text, dimensions: dimensions)
            return EmbeddingObject(
                index: index,
                embedding: embeddings.base64
                    ? .base64(vector.withUnsafeBytes { Data($0) }.base64EncodedString()) : .floats(vector))
        }
        let tokens = embeddings.inputs.reduce(0) { $0 + MockModel.tokens($1) }
        return JSONResponse(EmbeddingList(data: data, model: model.name, usage: .init(promptTokens: tokens, totalTokens: tokens)))
    }

    @Sendable func models(_ request: Request, context: Context) async throws -> JSONResponse<ListObject<ModelObject>> {
        let key = try admission.key(request)
        let usable = admission.registry.models.filter { model in
            model.enabled && admission.permits(key, model) && admission.consented(key, model)
        }
        return JSONResponse(ListObject(data: usable.map { ModelObject(id: $0.name, ownedBy: $0.vendor) }))
    }

    @Sendable func chatCompletions(_ request: Request, context: Context) async throws -> Response {
        let key = try admission.key(request)
        let buffer = try await request.body.collect(upTo: Self.maxBodyBytes)
        let chat = try ChatRequest(try JSONValue.object(from: Data(buffer.readableBytesView)))
        let model = try mockModel(chat.model, scene: .chat, for: key)
        let reply = MockModel.reply(to: chat.lastUserText, maxTokens: chat.maxTokens)
        let usage = Usage(
            promptTokens: MockModel.tokens(chat.promptText),
            completionTokens: reply.pieces.reduce(0) { $0 + MockModel.tokens($1) })
        let completionID = "chatcmpl-" + RequestID.current.dropFirst(4)
        let created = Int(Date().timeIntervalSince1970)
        if chat.stream {
            return Self.stream(
                id: completionID, created: created, model: model.name, reply: reply,
                usage: chat.includeUsage ? usage : nil)
        }
        let completion = ChatCompletion(
            id: completionID, created: created, model: model.name,
            content: reply.pieces.joined(), finishReason: reply.finishReason, usage: usage)
        return try JSONResponse(completion).response(from: request, context: context)
    }

    /// An SSE response: a role chunk, one chunk per piece, the finishing chunk, the usage chunk
    /// when asked for, then `[DONE]`.
    static func stream(
        id: String, created: Int, model: String, reply: (pieces: [String], finishReason: String), usage: Usage?
    ) -> Response {
        var chunks: [ChatChunk] = [ChatChunk(id: id, created: created, model: model, delta: .init(role: "assistant", content: ""))]
        chunks += reply.pieces.map { ChatChunk(id: id, created: created, model: model, delta: .init(content: $0)) }
        chunks.append(ChatChunk(id: id, created: created, model: model, delta: .init(), finishReason: reply.finishReason))
        if let usage { chunks.append(ChatChunk(id: id, created: created, model: model, usage: usage)) }
        let events = chunks
        let body = ResponseBody { writer in
            let encoder = JSONResponse<ChatChunk>.encoder
            for chunk in events {
                var buffer = ByteBuffer(string: "data: ")
                buffer.writeBytes(try encoder.encode(chunk))
                buffer.writeString("\n\n")
                try await writer.write(buffer)
            }
            try await writer.write(ByteBuffer(string: "data: [DONE]\n\n"))
            try await writer.finish(nil)
        }
        return Response(
            status: .ok,
            headers: [.contentType: "text/event-stream", .cacheControl: "no-cache"],
            body: body)
    }
}

struct ModelObject: Encodable {
    var id: String
    var object = "model"
    var created = 0
    var ownedBy: String

    enum CodingKeys: String, CodingKey {
        case id, object, created
        case ownedBy = "owned_by"
    }
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
