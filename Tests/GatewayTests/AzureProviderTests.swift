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
        let requests = Mutex<[(path: String, query: String?, headers: HTTPFields, body: JSONValue)]>([])
    }

    @Test("Chat, streams and embeddings go to the deployment with the backend's api-version and the key as api-key")
    func throughTheGateway() async throws {
        let received = Received()
        let router = Router()
        router.post("openai/deployments/**") { request, _ -> Response in
            let body = try JSONValue.parse(try await request.body.collect(upTo: 1 << 20))
            received.requests.withLock { $0.append((request.uri.path, request.uri.query, request.headers, body)) }
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

    @Test("Entra ID tokens: from a file, read again when it changes; from a command, kept until near its exp; failures say why")
    func tokenSources() async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("lumen-tokens-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let file = folder.appendingPathComponent("token")
        try "eyJ-first\n".write(to: file, atomically: true, encoding: .utf8)
        // A command that prints a new token each time it runs: the counter in a file.
        let script = folder.appendingPathComponent("token.sh")
        try "#!/bin/sh\nn=$(cat \"$1\" 2>/dev/null || echo 0); n=$((n + 1)); echo $n > \"$1\"; echo tok-$n\n"
            .write(to: script, atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: script.path)
        let counter = folder.appendingPathComponent("n").path
        let reader = TokenReader(sources: try TokenSources(
            list: "file=file:\(file.path), cmd=command:\(script.path) \(counter), broken=command:/bin/false, gone=file:/nonexistent/token"))
        #expect(try await reader.token("file") == "eyJ-first")
        try "eyJ-second".write(to: file, atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.modificationDate: Date().addingTimeInterval(5)], ofItemAtPath: file.path)
        #expect(try await reader.token("file") == "eyJ-second", "a sidecar's new token is used at once")
        #expect(try await reader.token("cmd") == "tok-1")
        #expect(try await reader.token("cmd") == "tok-1", "not a JWT: kept for 5 minutes")
        let failed = try await #require(throws: TokenSourceFailure.self) { try await reader.token("broken") }
        #expect(failed.description == "token source broken: /bin/false exited with 1")
        await #expect(throws: TokenSourceFailure.self) { try await reader.token("gone") }
        #expect(reader.problem("nope") == "token_source nope is not one of this gateway's --token-sources" && reader.problem("cmd").isEmpty)
        // A JWT's exp: kept until 5 minutes before it.
        let claims = Data(#"{"aud":"https://cognitiveservices.azure.com","exp":1900000000}"#.utf8).base64EncodedString()
            .replacingOccurrences(of: "=", with: "").replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
        #expect(TokenReader.expiry(ofJWT: "eyJhbGciOiJSUzI1NiJ9.\(claims).c2ln") == Date(timeIntervalSince1970: 1_900_000_000))
        #expect(TokenReader.expiry(ofJWT: "not-a-jwt") == nil)
    }

    @Test("An azure backend naming a token source sends its token as a bearer, no api-key")
    func bearerToken() async throws {
        let received = Received()
        let router = Router()
        router.post("openai/deployments/**") { request, _ -> Response in
            let body = try JSONValue.parse(try await request.body.collect(upTo: 1 << 20))
            received.requests.withLock { $0.append((request.uri.path, request.uri.query, request.headers, body)) }
            return Response(
                status: .ok, headers: [.contentType: "application/json"],
                body: .init(byteBuffer: ByteBuffer(string: #"{"id":"c","object":"chat.completion","model":"gpt-4o","choices":[{"index":0,"message":{"role":"assistant","content":"Bonjour"},"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":3,"total_tokens":15}}"#)))
        }
        let azure = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)))
        try await azure.test(.live) { upstream in
            let port = try #require(upstream.port)
            try await GatewayHarness.run(
                model: "gpt", vendor: "OpenAI",
                backend: .with {
                    $0.id = "azure"
                    $0.provider = .azure
                    $0.baseURL = "http://127.0.0.1:\(port)"
                    $0.upstreamModel = "my-gpt-4o"
                    $0.tokenSource = "entra"
                }, tokenSources: try TokenSources(list: "entra=command:/bin/echo eyJ-entra-token")
            ) { gateway, secret, _ in
                let (status, body) = try await gateway.send(
                    .post, "/v1/chat/completions", json: #"{"model":"gpt","messages":[{"role":"user","content":"Hi"}]}"#, as: .bearer(secret))
                #expect(status == 200, "\(body)")
                let sent = try #require(received.requests.withLock { $0.first })
                let apiKey = try #require(HTTPField.Name("api-key"))
                #expect(sent.headers[.authorization] == "Bearer eyJ-entra-token" && sent.headers[apiKey] == nil)
            }
        }
    }
}
