import Foundation
import LumenAPI
import NIOCore
import SharedRules
import WireFormats

/// The OpenAI endpoints Lumen meters: by tokens (chat, completions, embeddings, responses)
/// or, passed through with their scene taken from the path, per request.
public enum InferenceEndpoint: String, Sendable, CaseIterable {
    case chatCompletions = "chat/completions"
    case completions
    case embeddings
    case responses
    case imageGenerations = "images/generations"
    case imageEdits = "images/edits"
    case imageVariations = "images/variations"
    case audioSpeech = "audio/speech"
    case audioTranscriptions = "audio/transcriptions"
    case audioTranslations = "audio/translations"
    case moderations
    case rerank

    /// The scene a model must serve to answer this endpoint.
    var scene: Lumen_Common_V1_Scene {
        switch self {
        case .chatCompletions, .completions, .responses, .moderations: .chat
        case .embeddings: .embedding
        case .imageGenerations, .imageEdits, .imageVariations: .image
        case .audioSpeech, .audioTranscriptions: .audio
        case .audioTranslations: .translation
        case .rerank: .rerank
        }
    }

    /// Passed through as received and billed per request (plus tokens if the upstream reports any).
    var isPassthrough: Bool {
        switch self {
        case .chatCompletions, .completions, .embeddings, .responses: false
        default: true
        }
    }
}

/// What Lumen reads of an inference request; the body itself goes upstream untouched apart
/// from the model name and, when streaming chat or completions, `stream_options.include_usage`.
struct InferenceRequest: Sendable {
    /// The wire format a caller speaks: OpenAI's, or Anthropic's (`/v1/messages`).
    enum Format: Sendable {
        case openai, anthropic
    }

    var endpoint: InferenceEndpoint
    /// What the caller speaks; `body` is OpenAI's chat request either way (a `/v1/messages`
    /// request translated), which is what Lumen meters and what non-Anthropic backends get.
    var format = Format.openai
    /// A `/v1/messages` request's own bytes and Anthropic headers, which a Claude backend gets as
    /// they are (the model name replaced).
    var anthropic: (bytes: ByteBuffer, version: String?, beta: String?)?
    var body: [String: JSONValue]
    /// A pass-through body that is not JSON (multipart uploads), sent upstream as received.
    var rawBody: (bytes: ByteBuffer, contentType: String)?
    /// The JSON body's bytes as the caller sent them (the web chat's, as Lumen wrote them):
    /// what goes upstream, spliced (`JSONSplice`), never re-serialised.
    var jsonBytes = ByteBuffer()
    var model: String
    var stream: Bool
    /// Whether the caller asked for the usage chunk of a stream.
    var includeUsage: Bool
    /// The most output the caller allows (`max_tokens`, `max_completion_tokens`, `max_output_tokens`), per choice.
    var maxOutputTokens: Int?
    /// How many choices the caller asked for (`n` of chat and completions, 1–128): the hold
    /// and the rate limit count that many outputs.
    var choices = 1
    /// The prompt's text, counted for the estimate (and for the line when the upstream reports no usage).
    var promptText: String
    /// The text of the last user turn, which the mock model echoes.
    var lastUserText: String
    /// Embedding inputs, one text each.
    var inputs: [String] = []
    /// `encoding_format` is base64, and `dimensions`, of an embeddings request.
    var embeddingOptions: (base64: Bool, dimensions: Int?) = (false, nil)
    /// The whole request as its hold's input bound counts it: its text's bytes and its image
    /// and file parts (a multipart upload: its bytes and its parts).
    var measure = JSONValue.Measure()

    /// The most this request can use with `model`, in tokens: what its hold is priced from.
    func bound(_ model: Lumen_Registry_V1_Model) -> HoldBound {
        HoldBound(
            textBytes: measure.textBytes, attachments: measure.attachments, maxOutputTokens: maxOutputTokens.map(Int64.init),
            choices: Int64(choices), model: model)
    }

    /// Prompt tokens as Lumen counts them, once: the estimate, the rate limit and an
    /// estimated line all use this figure.
    var promptTokens: Int64 {
        if let countedPromptTokens { return countedPromptTokens }
        return endpoint == .embeddings
            ? Int64(inputs.reduce(0) { $0 + TokenEstimate.count($1) }) : Int64(TokenEstimate.count(promptText))
    }
    private var countedPromptTokens: Int64?

    /// Reads a request body: JSON for every endpoint, or multipart form data for uploads
    /// (image edits, transcriptions), of which only the `model` field is read.
    init(_ endpoint: InferenceEndpoint, bytes: ByteBuffer, contentType: String?) throws(APIError) {
        if endpoint.isPassthrough, let contentType, contentType.lowercased().hasPrefix("multipart/form-data") {
            guard let model = MultipartForm.field("model", in: bytes, contentType: contentType), !model.isEmpty else {
                throw APIError.invalid("missing_model", "model is required: the name of a model from GET /v1/models", param: "model")
            }
            self.init(passthrough: endpoint, model: model, body: [:])
            rawBody = (bytes, contentType)
            measure = JSONValue.Measure(
                textBytes: Int64(bytes.readableBytes),
                attachments: Int64(MultipartForm.partCount(in: bytes, contentType: contentType)))
            return
        }
        try self.init(endpoint, body: try JSONValue.object(from: bytes.readableBytesView), bytes: bytes)
    }

    private init(passthrough endpoint: InferenceEndpoint, model: String, body: [String: JSONValue]) {
        self.endpoint = endpoint
        self.body = body
        self.model = model
        stream = false
        includeUsage = false
        // Billed per request, plus whatever tokens the upstream reports: the model's most output.
        maxOutputTokens = nil
        promptText = ""
        measure = JSONValue.object(body).measure
        // What the mock echoes or ranks by: speech `input`, rerank `query`.
        switch body["input"] ?? body["query"] {
        case .string(let text)?: lastUserText = text
        default: lastUserText = ""
        }
    }

    /// A JSON request: `body` as parsed from `bytes` (nil: a body Lumen made, the web chat's,
    /// written out once here).
    init(_ endpoint: InferenceEndpoint, body: [String: JSONValue], bytes: ByteBuffer? = nil) throws(APIError) {
        if endpoint.isPassthrough {
            self.init(passthrough: endpoint, model: try Self.model(body), body: body)
        } else {
            try self.init(metered: endpoint, body: body)
        }
        jsonBytes = bytes ?? JSONValue.object(body).bytes
    }

    private init(metered endpoint: InferenceEndpoint, body: [String: JSONValue]) throws(APIError) {
        self.endpoint = endpoint
        self.body = body
        measure = JSONValue.object(body).measure
        switch endpoint {
        case .chatCompletions:
            let chat = try ChatRequest(body)
            model = chat.model
            stream = chat.stream
            includeUsage = chat.includeUsage
            maxOutputTokens = chat.maxTokens
            promptText = chat.promptText
            lastUserText = chat.lastUserText
            choices = try Self.choices(body)
        case .embeddings:
            let embeddings = try EmbeddingsRequest(body)
            model = embeddings.model
            stream = false
            includeUsage = false
            maxOutputTokens = 0
            promptText = embeddings.inputs.joined(separator: "\n")
            lastUserText = promptText
            inputs = embeddings.inputs
            embeddingOptions = (embeddings.base64, embeddings.dimensions)
        case .completions:
            model = try Self.model(body)
            switch body["prompt"] {
            case .string(let text)?: promptText = text
            case .array(let items)? where !items.isEmpty:
                promptText = items.map { if case .string(let text) = $0 { text } else { "" } }.joined(separator: "\n")
            default:
                throw APIError.invalid("invalid_prompt", "prompt must be a non-empty string or array of strings", param: "prompt")
            }
            lastUserText = promptText
            stream = try Self.stream(body)
            includeUsage = try Self.includeUsage(body)
            maxOutputTokens = try Self.maxTokens(body, fields: ["max_tokens"])
            choices = try Self.choices(body)
        case .responses:
            model = try Self.model(body)
            var texts: [String] = []
            if case .string(let instructions)? = body["instructions"] { texts.append(instructions) }
            switch body["input"] {
            case .string(let text)?: texts.append(text)
            case .array(let items)? where !items.isEmpty:
                for item in items {
                    guard case .object(let fields) = item else { continue }
                    texts.append(ChatRequest.text(of: fields["content"]))
                }
            default:
                throw APIError.invalid("invalid_input", "input must be a non-empty string or array of items", param: "input")
            }
            promptText = texts.joined(separator: "\n")
            lastUserText = texts.last ?? ""
            stream = try Self.stream(body)
            includeUsage = true
            maxOutputTokens = try Self.maxTokens(body, fields: ["max_output_tokens"])
        default:
            preconditionFailure("pass-through endpoints return above")
        }
        countedPromptTokens = promptTokens
    }

    /// The body for one backend, as the caller's bytes with two top-level members spliced in:
    /// its model name and, for streamed chat and completions, usage asked for so that the line
    /// is exact (the chunk is removed again unless the caller asked).
    func upstreamBody(model upstreamModel: String) -> (ByteBuffer, contentType: String) {
        // A multipart upload goes as it came: its model field is not rewritten.
        if let rawBody { return (rawBody.bytes, rawBody.contentType) }
        var replace = ["model": JSONValue.string(upstreamModel).bytes]
        var insert: [(String, ByteBuffer)] = []
        if stream, endpoint == .chatCompletions || endpoint == .completions {
            var options: [String: JSONValue] = [:]
            if case .object(let existing)? = body["stream_options"] { options = existing }
            options["include_usage"] = .bool(true)
            let value = JSONValue.object(options).bytes
            replace["stream_options"] = value
            insert.append(("stream_options", value))
        }
        return (JSONSplice.apply(jsonBytes, replace: replace, insert: insert), "application/json")
    }

    static func model(_ body: [String: JSONValue]) throws(APIError) -> String {
        guard case .string(let model)? = body["model"], !model.isEmpty else {
            throw APIError.invalid("missing_model", "model is required: the name of a model from GET /v1/models", param: "model")
        }
        return model
    }

    static func stream(_ body: [String: JSONValue]) throws(APIError) -> Bool {
        switch body["stream"] {
        case nil, .null?: return false
        case .bool(let value)?: return value
        default: throw APIError.invalid("invalid_stream", "stream must be true or false", param: "stream")
        }
    }

    /// `stream_options.include_usage`; `stream_options` must be an object (or null) and
    /// `include_usage` true or false (or absent).
    static func includeUsage(_ body: [String: JSONValue]) throws(APIError) -> Bool {
        switch body["stream_options"] {
        case nil, .null?:
            return false
        case .object(let options)?:
            switch options["include_usage"] {
            case nil, .null?: return false
            case .bool(let include)?: return include
            case let other?:
                throw APIError.invalid(
                    "invalid_stream_options", "stream_options.include_usage must be true or false, not \(other.typeName)",
                    param: "stream_options.include_usage")
            }
        case let other?:
            throw APIError.invalid(
                "invalid_stream_options", "stream_options must be an object, not \(other.typeName)", param: "stream_options")
        }
    }

    static func choices(_ body: [String: JSONValue]) throws(APIError) -> Int {
        try JSONValue.wholeNumber(
            body["n"], in: 1...128, else: APIError.invalid("invalid_n", "n must be a whole number from 1 to 128", param: "n")) ?? 1
    }

    static func maxTokens(_ body: [String: JSONValue], fields: [String]) throws(APIError) -> Int? {
        // Every field given is checked; the first one given counts.
        var value: Int?
        for field in fields {
            let given = try JSONValue.wholeNumber(
                body[field], in: 1...10_000_000,
                else: APIError.invalid("invalid_max_tokens", "\(field) must be a whole number from 1 to 10000000", param: field))
            if value == nil { value = given }
        }
        return value
    }
}
