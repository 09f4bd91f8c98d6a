import HTTPTypes
import NIOCore
import WireFormats

/// An upstream that answers inside the process: the backends of provider `mock`. The gateway
/// knows only this shape; Lumen's built-in demo model lives in a module of its own
/// (`LumenMock`) and is handed in by whoever wires the gateway (`GatewayConfiguration`), so the
/// gateway carries no test double. Its answer goes through the same metering and relaying as
/// an upstream's bytes.
public protocol InProcessProvider: Sendable {
    func respond(to call: InProcessCall) throws -> InProcessAnswer
}

/// What an in-process provider reads of a request, as the gateway understood it.
public struct InProcessCall: Sendable {
    /// The endpoint below `/v1/` (`chat/completions`, `embeddings`, `responses`, …).
    public var endpoint: InferenceEndpoint
    /// The request body as parsed (the model not yet replaced).
    public var body: [String: JSONValue]
    /// The logical model name, which the answer carries.
    public var model: String
    /// The request's id without its `req_` prefix, for the answer's ids.
    public var id: String
    public var stream: Bool
    /// The most output per choice the caller allows, if any.
    public var maxOutputTokens: Int?
    /// `n`: how many choices (chat and completions).
    public var choices: Int
    /// The prompt's tokens as Lumen counts them.
    public var promptTokens: Int64
    /// The text of the last user turn (or the input, the prompt).
    public var lastUserText: String
    /// Embedding inputs, one text each; whether base64 was asked for, and `dimensions`.
    public var inputs: [String]
    public var embeddingBase64: Bool
    public var embeddingDimensions: Int?
}

/// An in-process provider's answer: a status, a content type and the body, whole or as the
/// chunks of a stream.
public struct InProcessAnswer: Sendable {
    public enum Body: Sendable {
        case whole(ByteBuffer)
        case chunks([ByteBuffer])
    }

    public var status: HTTPResponse.Status
    public var contentType: String
    public var body: Body

    public init(status: HTTPResponse.Status = .ok, contentType: String, body: Body) {
        self.status = status
        self.contentType = contentType
        self.body = body
    }
}

extension InferenceRequest {
    func inProcessCall(model: String, id: String) -> InProcessCall {
        InProcessCall(
            endpoint: endpoint, body: body, model: model, id: id, stream: stream, maxOutputTokens: maxOutputTokens,
            choices: choices, promptTokens: promptTokens, lastUserText: lastUserText, inputs: inputs,
            embeddingBase64: embeddingOptions.base64, embeddingDimensions: embeddingOptions.dimensions)
    }
}

extension UpstreamResponse {
    init(_ answer: InProcessAnswer) {
        switch answer.body {
        case .whole(let bytes): self.init(status: answer.status, contentType: answer.contentType, body: .buffered(bytes))
        case .chunks(let chunks): self.init(status: answer.status, contentType: answer.contentType, body: .chunks(chunks))
        }
    }
}
