import Foundation
import HTTPTypes
import LumenAPI
import NIOCore
import NIOHTTP1
import SharedRules
import WireFormats

/// Anthropic's Messages API (Claude), `provider: anthropic`: `POST {base_url}/v1/messages`
/// (`https://api.anthropic.com` unless the backend names another), the key from
/// `credential_env` (or the caller's own, BYOK) as `x-api-key`, `anthropic-version` set.
/// OpenAI chat requests are translated (`AnthropicRequest`) and the answers, streams and
/// errors read back as OpenAI's (`AnthropicAnswer`); other endpoints are refused (400).
struct AnthropicProvider: UpstreamProvider {
    let http: UpstreamHTTP
    let clock: WallClock
    /// Fetches images given by URL, where the operator allows it; nil: they are refused.
    var images: ImageFetcher? = nil

    /// The Messages API version Lumen speaks.
    static let version = "2023-06-01"

    func send(_ call: UpstreamCall) async throws -> UpstreamResponse {
        guard call.request.endpoint == .chatCompletions else {
            throw APIError.invalid(
                "model_not_supported",
                "\(call.model.name) is served by Anthropic, which answers /v1/chat/completions only, not /v1/\(call.request.endpoint.rawValue)",
                param: "model")
        }
        if let native = call.request.anthropic {
            // A `/v1/messages` caller's own request, the model as the backend names it.
            let body = JSONSplice.apply(native.bytes, replace: ["model": JSONValue.string(call.upstreamModel).bytes], insert: [])
            var headers = headers(call.callerCredential ?? UpstreamHTTP.credential(call.backend.credentialEnv), stream: call.request.stream)
            if let version = native.version { headers.replaceOrAdd(name: "anthropic-version", value: version) }
            if let beta = native.beta { headers.add(name: "anthropic-beta", value: beta) }
            return try await http.post(
                Self.url(call.backend.baseURL, "messages"), headers: headers, body: body, timeout: UpstreamHTTP.timeout(of: call.backend))
        }
        // Anthropic requires max_tokens: the caller's, else the model's most output.
        let maxTokens = call.request.maxOutputTokens.map(Int64.init) ?? (call.model.maxOutputTokens > 0 ? call.model.maxOutputTokens : 4_096)
        var fetched: [String: FetchedImage] = [:]
        if let images, case let urls = ChatImages.urls(call.request.body), !urls.isEmpty {
            fetched = try await images.fetch(urls, provider: "Anthropic")
        }
        let body = try AnthropicRequest.body(
            call.request.body, model: call.upstreamModel, stream: call.request.stream, maxTokens: maxTokens, fetched: fetched)
        return try await http.post(
            Self.url(call.backend.baseURL, "messages"), headers: headers(call.callerCredential ?? UpstreamHTTP.credential(call.backend.credentialEnv), stream: call.request.stream),
            body: body.bytes, timeout: UpstreamHTTP.timeout(of: call.backend))
    }

    /// `POST /v1/messages/count_tokens` with a `/v1/messages` caller's body (the model renamed).
    func countTokens(
        _ bytes: ByteBuffer, model: String, backend: Lumen_Registry_V1_Backend, version: String?, beta: String?
    ) async throws -> (status: HTTPResponse.Status, body: ByteBuffer) {
        var headers = headers(UpstreamHTTP.credential(backend.credentialEnv))
        if let version { headers.replaceOrAdd(name: "anthropic-version", value: version) }
        if let beta { headers.add(name: "anthropic-beta", value: beta) }
        var fields = (try? JSONValue.object(from: bytes.readableBytesView)) ?? [:]
        fields["model"] = .string(model)
        fields["max_tokens"] = nil
        fields["stream"] = nil
        let response = try await http.post(
            Self.url(backend.baseURL, "messages/count_tokens"), headers: headers, body: JSONValue.object(fields).bytes,
            timeout: UpstreamHTTP.timeout(of: backend))
        return (response.status, try await response.collect(upTo: 1 << 20))
    }

    func headers(_ credential: String?, stream: Bool = false) -> HTTPHeaders {
        var headers = HTTPHeaders()
        headers.add(name: "content-type", value: "application/json")
        headers.add(name: "anthropic-version", value: Self.version)
        if stream { headers.add(name: "accept", value: "text/event-stream") }
        if let credential { headers.add(name: "x-api-key", value: credential) }
        return headers
    }

    /// `path` below the API's `/v1` (a base URL that already ends in `/v1` is taken as it is).
    static func url(_ base: String, _ path: String) -> String {
        var base = base
        while base.hasSuffix("/") { base.removeLast() }
        return UpstreamHTTP.url(base.hasSuffix("/v1") ? base : base + "/v1", path)
    }

    func answer(_ body: ByteBuffer, status: HTTPResponse.Status, contentType: String?, of call: UpstreamCall) -> ProviderAnswer {
        if call.request.anthropic != nil {
            return MessagesAnswer.passthrough(body, status: status, contentType: contentType, model: call.model.name)
        }
        guard status.code < 300 else {
            return ProviderAnswer(body: AnthropicAnswer.error(body), contentType: "application/json", reported: nil, text: "")
        }
        return AnthropicAnswer.completion(body, model: call.model.name, created: clock.nowMillis / 1000)
            ?? ProviderAnswer(body: body, contentType: contentType ?? "application/json", reported: nil, text: "")
    }

    func stream(of call: UpstreamCall) -> any ProviderStream {
        if call.request.anthropic != nil { return MessagesAnswer.Passthrough(model: call.model.name) }
        return AnthropicAnswer.Stream(model: call.model.name, includeUsage: call.request.includeUsage, created: clock.nowMillis / 1000)
    }

    func probe(_ backend: Lumen_Registry_V1_Backend, timeout: TimeAmount) async throws -> Int? {
        try await http.get(Self.url(backend.baseURL, "models"), headers: headers(UpstreamHTTP.credential(backend.credentialEnv)), timeout: timeout)
    }
}
