import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import LumenAPI
import LumenTesting
import NIOCore
import Synchronization
import Testing
import WireFormats

@testable import Gateway

/// Azure OpenAI as an upstream: a deployment's URL with its API version, the key as `api-key`,
/// OpenAI's wire format otherwise.
@Suite("Azure OpenAI as an upstream")
struct AzureProviderTests {
    final class Received: Sendable {
        let requests = Mutex<[(path: String, query: String, headers: HTTPFields, body: JSONValue)]>([])
    }

    @Test("Chat, streams and embeddings go to the deployment with the backend's api-version and the key as api-key")
    func throughTheGateway() async throws {
        let received = Received()
        let router = Router()
        router.post("openai/deployments/**") { request, _ -> Response in
            let body = try JSONValue.parse(try await request.body.collect(upTo: 1 << 20))
            received.requests.withLock { $0.append((request.uri.path, request.uri.query ?? "", request.headers, body)) }
            if request.uri.path.hasSuffix("/embeddings") {
                return Response(
                    status: .ok, headers: [.contentType: "application/json"],
                    body: .init(byteBuffer: ByteBuffer(string: #"{"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.5,-0.25]}],"model":"ada","usage":{"prompt_tokens":4,"total_tokens":4}}"#)))
            }
            if body["stream"] == .bool(true) {
                let events = [
                    #"{"id":"c","object":"chat.completion.chunk","choices":[],"prompt_filter_results":[{"prompt_index":0,"content_filter_results":{}}]}"#,
                    #"{"id":"c","object":"chat.completion.chunk","model":"gpt-4o","choices":[{"index":0,"delta":{"role":"assistant","content":"Salut"},"finish_reason":null}]}"#,
                    #"{"id":"c","object":"chat.completion.chunk","model":"gpt-4o","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#,
                    #"{"id":"c","object":"chat.completion.chunk","model":"gpt-4o","choices":[],"usage":{"prompt_tokens":9,"completion_tokens":2,"total_tokens":11}}"#,
                ]
                return Response(
                    status: .ok, headers: [.contentType: "text/event-stream"],
                    body: .init(byteBuffer: ByteBuffer(string: events.map { "data: \($0)\n\n" }.joined() + "data: [DONE]\n\n")))
            }
            return Response(
                status: .ok, headers: [.contentType: "application/json"],
                body: .init(byteBuffer: ByteBuffer(string: #"{"id":"c","object":"chat.completion","model":"gpt-4o","choices":[{"index":0,"message":{"role":"assistant","content":"Bonjour"},"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":3,"total_tokens":15,"prompt_tokens_details":{"cached_tokens":4}}}"#)))
        }
        let azure = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)))
        setenv("LUMEN_TEST_AZURE_KEY", "azure-key-1", 1)
        try await azure.test(.live) { upstream in
            let port = try #require(upstream.port)
            try await GatewayHarness.run(
                model: "gpt", vendor: "OpenAI", scenes: [.chat, .embedding],
                backend: .with {
                    $0.id = "azure"
                    $0.provider = .azure
                    $0.baseURL = "http://127.0.0.1:\(port)/"
                    $0.upstreamModel = "my-gpt-4o"
                    $0.credentialEnv = "LUMEN_TEST_AZURE_KEY"
                    $0.apiVersion = "2025-01-01-preview"
                }
            ) { gateway, secret, keyID in
                let (status, body) = try await gateway.send(
                    .post, "/v1/chat/completions", json: #"{"model":"gpt","messages":[{"role":"user","content":"Hi"}]}"#, as: .bearer(secret))
                #expect(status == 200, "\(body)")
                #expect(((body["choices"] as? [[String: Any]])?.first?["message"] as? [String: Any])?["content"] as? String == "Bonjour")
                #expect(body["model"] as? String == "gpt")
                let sent = try #require(received.requests.withLock { $0.first })
                #expect(sent.path == "/openai/deployments/my-gpt-4o/chat/completions")
                #expect(sent.query == "api-version=2025-01-01-preview")
                let apiKey = try #require(HTTPField.Name("api-key"))
                #expect(sent.headers[apiKey] == "azure-key-1" && sent.headers[.authorization] == nil)

                let streamed = try await gateway.raw(
                    .post, "/v1/chat/completions",
                    json: #"{"model":"gpt","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"Hi"}]}"#,
                    bearer: secret)
                let text = String(buffer: streamed.body)
                #expect(streamed.status == .ok && text.contains("Salut") && text.contains(#""total_tokens":11"#) && text.hasSuffix("data: [DONE]\n\n"))

                let (embedded, vectors) = try await gateway.send(
                    .post, "/v1/embeddings", json: #"{"model":"gpt","input":"hello"}"#, as: .bearer(secret))
                #expect(embedded == 200, "\(vectors)")
                #expect(received.requests.withLock { $0.last?.path } == "/openai/deployments/my-gpt-4o/embeddings")

                // Metered from Azure's usage, as OpenAI's.
                var lines: [Lumen_Ledger_V1_UsageLine] = []
                for _ in 0..<200 {
                    lines = try await gateway.services.ledger.listUsage(.with { $0.filter.keyID = keyID }, metadata: gateway.tenant.metadata).lines
                    if lines.count == 3 && lines.allSatisfy({ $0.status == .settled }) { break }
                    try await Task.sleep(for: .milliseconds(10))
                }
                #expect(Set(lines.map { [$0.inputTokens, $0.cachedInputTokens, $0.outputTokens] }) == [[8, 4, 3], [9, 0, 2], [4, 0, 0]])
                #expect(lines.allSatisfy { !$0.estimated && $0.backendID == "azure" })
            }
        }
    }

    @Test("The deployment URL: a base ending in /openai or not, a deployment name escaped, the default version")
    func urls() {
        var backend = Lumen_Registry_V1_Backend.with { $0.baseURL = "https://acme.openai.azure.com/openai/" }
        #expect(AzureProvider.url(backend, deployment: "gpt 4o", "chat/completions")
            == "https://acme.openai.azure.com/openai/deployments/gpt%204o/chat/completions?api-version=2024-10-21")
        backend.baseURL = "https://acme.openai.azure.com"
        backend.apiVersion = "2025-04-01-preview"
        #expect(AzureProvider.url(backend, deployment: nil, "models") == "https://acme.openai.azure.com/openai/models?api-version=2025-04-01-preview")
    }
}
