import HTTPTypes
import LumenAPI
import NIOCore
import SharedRules
import UpstreamClient
import WireFormats

/// One wire format an upstream speaks, and the one place it lives: how a request is sent to a
/// backend (its path, headers, credential and body, the model as the backend names it), how
/// its answer and its stream are read back as what the caller gets, where the usage (cached
/// tokens included) comes from, how health is probed and what configuration it needs. Each
/// provider is a folder of its own under `Providers/` and one line of `Providers`.
///
/// What stays out: which backend is tried and when to fail over (`BackendRouter`), admission,
/// holds and settlement (`InferencePipeline`) — the same for every provider.
protocol UpstreamProvider: Sendable {
    /// Sends `call` to its backend; the answer as it came (status, content type, body).
    func send(_ call: UpstreamCall) async throws -> UpstreamResponse
    /// A whole answer as the caller gets it — a success, or the upstream's refusal of the
    /// request (4xx) — with what metering reads of it.
    func answer(_ body: ByteBuffer, status: HTTPResponse.Status, contentType: String?, of call: UpstreamCall) -> ProviderAnswer
    /// Reads a successful stream: each upstream event turned into what the caller gets.
    func stream(of call: UpstreamCall) -> any ProviderStream
    /// Asks `backend` whether it is up: its answer's status code; nil when this provider is not
    /// probed (nothing to ask).
    func probe(_ backend: Lumen_Registry_V1_Backend, timeout: TimeAmount) async throws -> Int?
    /// What is wrong with `backend`'s configuration as seen from this gateway (a credential
    /// variable that is not set here); empty when nothing.
    func problem(of backend: Lumen_Registry_V1_Backend, environment: (String) -> String?) -> String
    /// How a successful stream's body splits into events.
    func framing() -> any StreamFraming
}

/// How a stream's body splits into the events a `ProviderStream` reads: server-sent events
/// (`SSEParser`) for most providers, AWS's binary event stream for Bedrock.
protocol StreamFraming {
    /// The events `chunk` completes; an error ends the stream (the caller's answer is cut off).
    mutating func feed(_ chunk: ByteBuffer) throws -> [SSEEvent]
    /// What is left when the body ends; an error when the body was damaged or cut off.
    mutating func finish() throws -> SSEEvent?
}

extension SSEParser: StreamFraming {}

extension UpstreamProvider {
    /// Server-sent events.
    func framing() -> any StreamFraming { SSEParser() }

    /// A backend that names a credential variable not set in this gateway's environment.
    func problem(of backend: Lumen_Registry_V1_Backend, environment: (String) -> String?) -> String {
        Self.credentialEnvProblem(of: backend, environment: environment)
    }

    static func credentialEnvProblem(of backend: Lumen_Registry_V1_Backend, environment: (String) -> String?) -> String {
        guard !backend.credentialEnv.isEmpty, environment(backend.credentialEnv) == nil else { return "" }
        return "credential_env \(backend.credentialEnv) is not set in the gateway's environment"
    }
}

/// One request to one backend, as the router hands it to the backend's provider.
struct UpstreamCall: Sendable {
    var request: InferenceRequest
    var backend: Lumen_Registry_V1_Backend
    /// The logical model: its name is what the caller asked for and what answers carry.
    var model: Lumen_Registry_V1_Model
    /// The caller's own upstream key (`X-Upstream-Authorization`), for BYOK.
    var callerCredential: String?
    var requestID: String

    /// The model as the backend names it.
    var upstreamModel: String { backend.upstreamModel.isEmpty ? model.name : backend.upstreamModel }
}

/// A whole answer as the caller gets it, and what metering reads of it.
struct ProviderAnswer: Sendable {
    var body: ByteBuffer
    var contentType: String
    /// The usage the upstream reported, if any.
    var reported: Pricing.Tokens?
    /// Reads the text produced, when asked: an answer that reports its usage has its text
    /// counted by nobody, so an OpenAI answer is not parsed for it (`OpenAIWire.answer`).
    var readText: @Sendable () -> String

    /// `text`: the text produced (counted when no usage came; kept by the web chat), read
    /// only if asked for.
    init(body: ByteBuffer, contentType: String, reported: Pricing.Tokens?, text: @escaping @autoclosure @Sendable () -> String) {
        self.body = body
        self.contentType = contentType
        self.reported = reported
        self.readText = text
    }

    /// The text produced.
    var text: String { readText() }
}

/// Reads one successful stream, event by event. Used by one request's relay only.
protocol ProviderStream: AnyObject {
    /// Appends what the caller gets of `event` to `out` (possibly nothing); true when the event
    /// ends the answer — the relay settles before it reaches the caller.
    func relay(_ event: SSEEvent, into out: inout ByteBuffer) -> Bool
    /// Appends what the caller gets when the upstream's stream has ended (Gemini's and Bedrock's
    /// end without an event of their own that ends the answer); true when that ends it.
    func finish(into out: inout ByteBuffer) -> Bool
    /// The usage the upstream reported, once it has.
    var reported: Pricing.Tokens? { get }
    /// The text produced so far.
    func text() -> String
}

extension ProviderStream {
    /// Nothing: the stream's own last event ended the answer.
    func finish(into out: inout ByteBuffer) -> Bool { false }
}

/// Every provider this gateway speaks, by the registry's kind: the one registration a new
/// provider needs.
struct Providers: Sendable {
    private let byKind: [Lumen_Registry_V1_ProviderKind: any UpstreamProvider]

    /// OpenAI-compatible, Anthropic, Azure OpenAI, Gemini and Bedrock upstreams over `http`; the backends of provider `mock`
    /// answered by `inProcess` when given (else they are skipped as unreachable); images by URL
    /// fetched for the providers that take them inline only as `imageURLs` allows.
    /// Azure backends get their Entra ID tokens from `tokenSources`.
    init(
        http: UpstreamHTTP, inProcess: (any InProcessProvider)?, clock: WallClock, imageURLs: HostPolicy = .none,
        tokenSources: TokenSources = .none
    ) {
        let images = imageURLs.isOff ? nil : ImageFetcher(policy: imageURLs)
        var byKind: [Lumen_Registry_V1_ProviderKind: any UpstreamProvider] = [
            .openai: OpenAIProvider(http: http),
            .anthropic: AnthropicProvider(http: http, clock: clock, images: images),
            .azure: AzureProvider(http: http, tokens: TokenReader(sources: tokenSources)),
            .gemini: GeminiProvider(http: http, clock: clock, images: images),
            .bedrock: BedrockProvider(http: http, clock: clock, images: images),
        ]
        if let inProcess { byKind[.mock] = InProcessUpstream(provider: inProcess) }
        self.byKind = byKind
    }

    /// The provider of `kind`, if this gateway speaks it.
    subscript(_ kind: Lumen_Registry_V1_ProviderKind) -> (any UpstreamProvider)? { byKind[kind] }
}
