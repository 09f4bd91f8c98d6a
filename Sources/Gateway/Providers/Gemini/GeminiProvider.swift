import Foundation
import HTTPTypes
import LumenAPI
import NIOCore
import NIOHTTP1
import SharedRules
import WireFormats

/// Google's Gemini API, `provider: gemini`: `POST
/// {base_url}/v1beta/models/{model}:generateContent` (`:streamGenerateContent?alt=sse` for a
/// stream, `:embedContent` / `:batchEmbedContents` for embeddings), the key from
/// `credential_env` (or the caller's own, BYOK) as `x-goog-api-key`. OpenAI chat and
/// embeddings requests are translated (`GeminiRequest`) and the answers read back as OpenAI's
/// (`GeminiAnswer`); other endpoints are refused (400). Health: `GET …/models/{model}`.
struct GeminiProvider: TranslatingProvider {
    let http: UpstreamHTTP
    let clock: WallClock
    /// Fetches images given by URL, where the operator allows it; nil: they are refused.
    var images: ImageFetcher? = nil

    func send(_ call: UpstreamCall) async throws -> UpstreamResponse {
        let body: JSONValue
        let method: String
        switch call.request.endpoint {
        case .chatCompletions:
            var fetched: [String: FetchedImage] = [:]
            if let images, case let urls = ChatImages.urls(call.request.body), !urls.isEmpty {
                fetched = try await images.fetch(urls, provider: GeminiRequest.provider)
            }
            body = try GeminiRequest.body(call.request.body, fetched: fetched)
            method = call.request.stream ? "streamGenerateContent?alt=sse" : "generateContent"
        case .embeddings:
            let (embeddings, batch) = try GeminiRequest.embeddings(call.request.body, model: Self.modelName(call.upstreamModel))
            body = embeddings
            method = batch ? "batchEmbedContents" : "embedContent"
        default:
            throw APIError.invalid(
                "model_not_supported",
                "\(call.model.name) is served by Gemini, which answers /v1/chat/completions and /v1/embeddings, not /v1/\(call.request.endpoint.rawValue)",
                param: "model")
        }
        return try await http.post(
            Self.url(call.backend.baseURL, "models/" + Self.modelName(call.upstreamModel) + ":" + method),
            headers: headers(call.callerCredential ?? UpstreamHTTP.credential(call.backend.credentialEnv), stream: call.request.stream),
            body: body.bytes, timeout: UpstreamHTTP.timeout(of: call.backend))
    }

    func headers(_ credential: String?, stream: Bool = false) -> HTTPHeaders {
        var headers = HTTPHeaders()
        headers.add(name: "content-type", value: "application/json")
        if stream { headers.add(name: "accept", value: "text/event-stream") }
        if let credential { headers.add(name: "x-goog-api-key", value: credential) }
        return headers
    }

    /// The model as a path segment: `models/` dropped if the backend names it so, escaped.
    static func modelName(_ model: String) -> String {
        let name = model.hasPrefix("models/") ? String(model.dropFirst("models/".count)) : model
        return name.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed.subtracting(["/", ":", "?", "#"])) ?? name
    }

    /// `path` below the API's version (`/v1beta`; a base URL that already ends in `/v1beta` or
    /// `/v1` is taken as it is).
    static func url(_ base: String, _ path: String) -> String {
        var base = base
        while base.hasSuffix("/") { base.removeLast() }
        return UpstreamHTTP.url(base.hasSuffix("/v1beta") || base.hasSuffix("/v1") ? base : base + "/v1beta", path)
    }

    func openAIAnswer(_ body: ByteBuffer, status: HTTPResponse.Status, contentType: String?, of call: UpstreamCall) -> ProviderAnswer {
        guard status.code < 300 else {
            return ProviderAnswer(body: GeminiAnswer.error(body), contentType: "application/json", reported: nil, text: "")
        }
        let answer =
            call.request.endpoint == .embeddings
            ? GeminiAnswer.embeddings(
                body, model: call.model.name, base64: call.request.embeddingOptions.base64, promptTokens: call.request.promptTokens)
            : GeminiAnswer.completion(body, model: call.model.name, id: "chatcmpl-" + call.requestID, created: clock.nowMillis / 1000)
        return answer ?? ProviderAnswer(body: body, contentType: contentType ?? "application/json", reported: nil, text: "")
    }

    func openAIStream(of call: UpstreamCall, includeUsage: Bool) -> any ProviderStream {
        GeminiAnswer.Stream(model: call.model.name, id: "chatcmpl-" + call.requestID, includeUsage: includeUsage, created: clock.nowMillis / 1000)
    }

    func probe(_ backend: Lumen_Registry_V1_Backend, timeout: TimeAmount) async throws -> Int? {
        let model = backend.upstreamModel.isEmpty ? backend.model : backend.upstreamModel
        return try await http.get(
            Self.url(backend.baseURL, "models/" + Self.modelName(model)), headers: headers(UpstreamHTTP.credential(backend.credentialEnv)),
            timeout: timeout)
    }
}
