import Foundation
import HTTPTypes
import LumenAPI
import NIOCore
import NIOHTTP1
import SharedRules
import UpstreamClient
import WireFormats

/// AWS Bedrock's Converse API, `provider: bedrock`: `POST
/// {base_url}/model/{upstream_model}/converse` (`/converse-stream` for a stream, answered in
/// AWS's binary event stream), `base_url` by default the region's
/// `https://bedrock-runtime.{region}.amazonaws.com`. Requests are signed with AWS Signature
/// Version 4 (service `bedrock`, the backend's region) from the gateway's AWS credentials
/// (`AWSCredentialStore`: the `AWS_*` variables or the backend's `aws_profile`); a backend
/// naming `credential_env` (a Bedrock API key), or a caller's own key (BYOK), sends it as a
/// bearer token instead. OpenAI chat requests are translated (`BedrockRequest`) and the answers
/// read back as OpenAI's (`BedrockAnswer`); other endpoints are refused (400). Not probed:
/// Bedrock's runtime has no cheap call to ask.
struct BedrockProvider: TranslatingProvider {
    let http: UpstreamHTTP
    let clock: WallClock
    var images: ImageFetcher? = nil
    var credentials = AWSCredentialStore()

    /// The service name requests are signed for.
    static let service = "bedrock"

    func send(_ call: UpstreamCall) async throws -> UpstreamResponse {
        guard call.request.endpoint == .chatCompletions else {
            throw APIError.invalid(
                "model_not_supported",
                "\(call.model.name) is served by Bedrock, which answers /v1/chat/completions only, not /v1/\(call.request.endpoint.rawValue)",
                param: "model")
        }
        let maxTokens = call.request.maxOutputTokens.map(Int64.init) ?? (call.model.maxOutputTokens > 0 ? call.model.maxOutputTokens : 4_096)
        var fetched: [String: FetchedImage] = [:]
        if let images, case let urls = ChatImages.urls(call.request.body), !urls.isEmpty {
            fetched = try await images.fetch(urls, provider: BedrockRequest.provider)
        }
        let body = try BedrockRequest.body(call.request.body, maxTokens: maxTokens, fetched: fetched).bytes
        let path = Self.path(model: call.upstreamModel, stream: call.request.stream)
        let base = Self.base(call.backend)
        var headers = HTTPHeaders()
        headers.add(name: "content-type", value: "application/json")
        headers.add(name: "accept", value: call.request.stream ? "application/vnd.amazon.eventstream" : "application/json")
        if let key = call.callerCredential ?? UpstreamHTTP.credential(call.backend.credentialEnv) {
            headers.add(name: "authorization", value: "Bearer " + key)
        } else if let keys = credentials.credentials(profile: call.backend.awsProfile) {
            // Signed as the upstream client will send it: its Host header and target.
            let (host, target) = try UpstreamClient.head(of: base + path)
            for (name, value) in SigV4.sign(
                method: "POST", path: target, headers: [("host", host), ("content-type", "application/json")],
                body: body.readableBytesView, credentials: keys, region: call.backend.region, service: Self.service, date: clock.now)
            {
                headers.add(name: name, value: value)
            }
        }
        return try await http.post(base + path, headers: headers, body: body, timeout: UpstreamHTTP.timeout(of: call.backend))
    }

    /// The backend's base URL without a trailing slash.
    static func base(_ backend: Lumen_Registry_V1_Backend) -> String {
        var base = backend.baseURL
        while base.hasSuffix("/") { base.removeLast() }
        return base
    }

    /// `/model/{model}/converse` (or `/converse-stream`), the model id escaped as one path
    /// segment (`anthropic.claude-3-5-sonnet-20240620-v1:0` → `…-v1%3A0`; an inference
    /// profile's ARN keeps no `/` either).
    static func path(model: String, stream: Bool) -> String {
        "/model/" + SigV4.uriEncode(model) + (stream ? "/converse-stream" : "/converse")
    }

    func openAIAnswer(_ body: ByteBuffer, status: HTTPResponse.Status, contentType: String?, of call: UpstreamCall) -> ProviderAnswer {
        guard status.code < 300 else {
            return ProviderAnswer(body: BedrockAnswer.error(body, status: status.code), contentType: "application/json", reported: nil, text: "")
        }
        return BedrockAnswer.completion(body, model: call.model.name, id: "chatcmpl-" + call.requestID, created: clock.nowMillis / 1000)
            ?? ProviderAnswer(body: body, contentType: contentType ?? "application/json", reported: nil, text: "")
    }

    func openAIStream(of call: UpstreamCall, includeUsage: Bool) -> any ProviderStream {
        BedrockAnswer.Stream(model: call.model.name, id: "chatcmpl-" + call.requestID, includeUsage: includeUsage, created: clock.nowMillis / 1000)
    }

    func framing() -> any StreamFraming { EventStreamFraming() }

    func probe(_ backend: Lumen_Registry_V1_Backend, timeout: TimeAmount) async throws -> Int? { nil }

    /// Without an API key (`credential_env`), the AWS keys the backend signs with must be there.
    func problem(of backend: Lumen_Registry_V1_Backend, environment: (String) -> String?) -> String {
        guard backend.credentialEnv.isEmpty else { return Self.credentialEnvProblem(of: backend, environment: environment) }
        return credentials.problem(profile: backend.awsProfile)
    }
}
