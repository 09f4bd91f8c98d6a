import Foundation
import HTTPTypes
import LumenAPI
import NIOCore
import NIOHTTP1

/// Azure OpenAI, `provider: azure`: a resource's deployments, `POST
/// {base_url}/openai/deployments/{deployment}/{endpoint}?api-version={api_version}` — the
/// deployment is the backend's `upstream_model`, the version its `api_version` (else
/// `defaultAPIVersion`) — with the key from `credential_env` (or the caller's own, BYOK) as
/// `api-key` (`/v1/responses` goes to `{base_url}/openai/responses`, the deployment as the
/// body's model). Requests and answers are OpenAI's wire format (`OpenAIWire`); health from `GET
/// {base_url}/openai/models?api-version=…`.
public struct AzureProvider: OpenAIWireProvider {
    let http: UpstreamHTTP

    /// The generally available version with usage in streams (`stream_options`).
    public static let defaultAPIVersion = "2024-10-21"

    func send(_ call: UpstreamCall) async throws -> UpstreamResponse {
        let (body, headers) = OpenAIWire.request(call, credentialHeader: "api-key") { $0 }
        return try await http.post(
            // The Responses API is the resource's, the deployment named as the body's model.
            Self.url(
                call.backend, deployment: call.request.endpoint == .responses ? nil : call.upstreamModel,
                call.request.endpoint.rawValue), headers: headers, body: body,
            timeout: UpstreamHTTP.timeout(of: call.backend))
    }

    func probe(_ backend: Lumen_Registry_V1_Backend, timeout: TimeAmount) async throws -> Int? {
        var headers = HTTPHeaders()
        if let credential = UpstreamHTTP.credential(backend.credentialEnv) { headers.add(name: "api-key", value: credential) }
        return try await http.get(Self.url(backend, deployment: nil, "models"), headers: headers, timeout: timeout)
    }

    /// `{base_url}/openai/deployments/{deployment}/{path}?api-version=…` (without a deployment:
    /// `{base_url}/openai/{path}?…`); a base URL that already ends in `/openai` is taken as it is.
    static func url(_ backend: Lumen_Registry_V1_Backend, deployment: String?, _ path: String) -> String {
        var base = backend.baseURL
        while base.hasSuffix("/") { base.removeLast() }
        if !base.hasSuffix("/openai") { base += "/openai" }
        if let deployment {
            base += "/deployments/" + (deployment.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed.subtracting(["/"])) ?? deployment)
        }
        let version = backend.apiVersion.isEmpty ? defaultAPIVersion : backend.apiVersion
        return base + "/" + path + "?api-version=" + version
    }
}
