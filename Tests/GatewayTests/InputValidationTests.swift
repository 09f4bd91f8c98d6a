import Foundation
import HTTPTypes
import HummingbirdTesting
import LumenAPI
import LumenTesting
import Synchronization
import Testing

/// Inputs the hostile-input review found accepted (or answered with the wrong code): each gets
/// a 400 naming its parameter; every response, errors included, carries an x-request-id; a
/// 413 is counted as a 413.
@Suite("Bad input: clear 4xx codes, the parameter named, an id on every response")
struct InputValidationTests {
    final class Secret: Sendable {
        let value = Mutex("")
    }

    static func prepare(_ secret: Secret) -> @Sendable (TestServices, TestServices.Tenant) async throws -> Void {
        { services, tenant in
            for (name, scene) in [("echo", Lumen_Common_V1_Scene.chat), ("vectors", .embedding)] {
                _ = try await services.registry.upsertModel(
                    .with {
                        $0.model = .with {
                            $0.maxOutputTokens = 1024
                            $0.name = name
                            $0.vendor = "lumen"
                            $0.enabled = true
                            $0.scenes = [scene]
                        }
                    }, metadata: services.asInternal)
                _ = try await services.registry.upsertBackend(
                    .with {
                        $0.backend = .with {
                            $0.model = name
                            $0.id = "mock"
                            $0.provider = .mock
                        }
                    }, metadata: services.asInternal)
            }
            let key = try await services.keys.createKey(.init(), metadata: tenant.metadata).secret
            secret.value.withLock { $0 = key }
        }
    }

    @Test("stream_options and embeddings input are checked; the parameter is named")
    func inference() async throws {
        let secret = Secret()
        try await GatewayHarness.run(prepare: Self.prepare(secret)) { gateway in
            let key = secret.value.withLock { $0 }
            let cases: [(String, String, String, String)] = [
                ("/v1/chat/completions", #"{"model": "echo", "stream": true, "stream_options": "x", "messages": [{"role": "user", "content": "hi"}]}"#,
                 "invalid_stream_options", "stream_options"),
                ("/v1/chat/completions", #"{"model": "echo", "stream": true, "stream_options": {"include_usage": "yes"}, "messages": [{"role": "user", "content": "hi"}]}"#,
                 "invalid_stream_options", "stream_options.include_usage"),
                ("/v1/embeddings", #"{"model": "vectors", "input": [[1, "a"]]}"#, "invalid_input", "input"),
                ("/v1/embeddings", #"{"model": "vectors", "input": [[]]}"#, "invalid_input", "input"),
                ("/v1/embeddings", #"{"model": "vectors", "input": [1.5]}"#, "invalid_input", "input"),
            ]
            for (path, body, code, param) in cases {
                let (status, answer) = try await gateway.send(.post, path, json: body, as: .bearer(key))
                #expect(status == 400, "\(body)")
                #expect(GatewayHarness.error(answer).code == code, "\(body)")
                #expect(GatewayHarness.error(answer).param == param, "\(body)")
            }
            let (status, _) = try await gateway.send(
                .post, "/v1/embeddings", json: #"{"model": "vectors", "input": [[1, 2, 3]]}"#, as: .bearer(key))
            #expect(status == 200)
        }
    }

    @Test("limitCurrency is exactly USD; a limitAmount too large for any number is invalid_limit_amount")
    func management() async throws {
        try await GatewayHarness.run { gateway in
            for body in [#"{"limitCurrency": "usd"}"#, #"{"limitCurrency": ""}"#, #"{"limitCurrency": "cny"}"#] {
                let (status, answer) = try await gateway.send(.post, "/v1/management/api-keys", json: body)
                #expect(status == 400, "\(body)")
                #expect(GatewayHarness.error(answer).code == "invalid_currency", "\(body)")
                #expect(GatewayHarness.error(answer).param == "limitCurrency", "\(body)")
            }
            for body in [#"{"limitAmount": 1e308}"#, #"{"limitAmount": -1e308}"#, #"{"limitAmount": 1e-300}"#] {
                let (status, answer) = try await gateway.send(.post, "/v1/management/api-keys", json: body)
                #expect(status == 400, "\(body)")
                #expect(GatewayHarness.error(answer).code == "invalid_limit_amount", "\(body)")
            }
            // Nothing was written.
            let (_, listed) = try await gateway.send(.get, "/v1/management/api-keys")
            #expect((listed["data"] as? [Any])?.isEmpty == true)
            let (status, _) = try await gateway.send(.post, "/v1/management/api-keys", json: #"{"limitCurrency": "USD", "limitAmount": 5}"#)
            #expect(status == 200)
        }
    }

    @Test("A usage filter that is not UTF-8 text is refused, naming the parameter")
    func usageEncoding() async throws {
        try await GatewayHarness.run { gateway in
            let (_, created) = try await gateway.send(.post, "/v1/management/api-keys", json: "{}")
            let id = try #require(created["id"] as? String)
            for path in ["/v1/management/api-keys/\(id)/usage?logicalModel=%FF", "/v1/management/api-keys/\(id)/billing?modelVendor=a%C3"] {
                let (status, answer) = try await gateway.send(.get, path)
                #expect(status == 400, "\(path)")
                #expect(GatewayHarness.error(answer).code == "invalid_encoding", "\(path)")
            }
            let (status, _) = try await gateway.send(.get, "/v1/management/api-keys/\(id)/usage?logicalModel=gpt%E2%80%944")
            #expect(status == 200)
        }
    }

    @Test("Every response carries x-request-id, the router's 404s and 413s too; a 413 is counted as 413")
    func requestIDs() async throws {
        let secret = Secret()
        try await GatewayHarness.run(prepare: Self.prepare(secret)) { gateway in
            let key = secret.value.withLock { $0 }
            let huge = #"{"model": "echo", "messages": [{"role": "user", "content": "\#(String(repeating: "x", count: 5_000_000))"}]}"#
            for (method, path, body) in [
                (HTTPRequest.Method.get, "/nowhere", nil), (.get, "/v1/management/api-keys", nil), (.post, "/v1/chat/completions", huge),
                (.get, "/healthz", nil),
            ] as [(HTTPRequest.Method, String, String?)] {
                let response = try await gateway.raw(method, path, json: body, bearer: path.hasPrefix("/v1/chat") ? key : nil)
                #expect(response.headers[HTTPField.Name("x-request-id")!]?.hasPrefix("req_") == true, "\(path)")
                if body != nil { #expect(response.status == .contentTooLarge) }
            }
            let metrics = try await gateway.operations { try await $0.execute(uri: "/metrics", method: .get) }
            let text = String(buffer: metrics.body)
            #expect(text.contains(#"lumen_requests_total{model="-",status="413",scene="chat"} 1"#))
            #expect(!text.contains(#"status="500""#))
        }
    }
}
