import Foundation
import HTTPTypes
import LumenAPI
import NIOCore
import NIOHTTP1

/// Azure OpenAI, `provider: azure`: a resource's deployments, `POST
/// {base_url}/openai/deployments/{deployment}/{endpoint}?api-version={api_version}` — the
/// deployment is the backend's `upstream_model`, the version its `api_version` (else
/// `defaultAPIVersion`) — with the key from `credential_env` (or the caller's own, BYOK) as
/// `api-key`, or an Entra ID token from the gateway's token source the backend names
/// (`token_source`) as `Authorization: Bearer` (`/v1/responses` goes to
/// `{base_url}/openai/responses`, the deployment as the body's model). Requests and answers are
/// OpenAI's wire format (`OpenAIWire`); health from `GET {base_url}/openai/models?api-version=…`.
public struct AzureProvider: OpenAIWireProvider {
    let http: UpstreamHTTP
    var tokens = TokenReader(sources: .none)

    /// The generally available version with usage in streams (`stream_options`).
    public static let defaultAPIVersion = "2024-10-21"

    func send(_ call: UpstreamCall) async throws -> UpstreamResponse {
        var (body, headers) = OpenAIWire.request(call, credentialHeader: "api-key") { $0 }
        if call.callerCredential == nil, !call.backend.tokenSource.isEmpty {
            headers.replaceOrAdd(name: "authorization", value: "Bearer " + (try await tokens.token(call.backend.tokenSource)))
        }
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
        if !backend.tokenSource.isEmpty { headers.add(name: "authorization", value: "Bearer " + (try await tokens.token(backend.tokenSource))) }
        return try await http.get(Self.url(backend, deployment: nil, "models"), headers: headers, timeout: timeout)
    }

    /// A backend naming a token source this gateway does not have, or a credential variable not set here.
    func problem(of backend: Lumen_Registry_V1_Backend, environment: (String) -> String?) -> String {
        backend.tokenSource.isEmpty ? Self.credentialEnvProblem(of: backend, environment: environment) : tokens.problem(backend.tokenSource)
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
