import Synchronization
import Foundation
import HTTPTypes
import HummingbirdTesting
import LumenAPI
import LumenTesting
import Testing

@Suite("OpenAI-compatible endpoints with the mock provider")
struct ChatCompletionsRouteTests {
    struct Keys: Sendable {
        var open = ""
        var restricted = ""
        var revoked = ""
    }

    /// Where `prepare` leaves the secrets it created.
    final class Box: Sendable {
        let keys: Mutex<Keys>
        init() { keys = Mutex(Keys()) }
        func withLock<R>(_ body: (inout Keys) -> R) -> R { keys.withLock { body(&$0) } }
    }

    /// Models: `echo` (mock), `o1` (mock, needs consent), `off` (disabled), `nowhere` (no
    /// backend), `upstream` (an OpenAI-compatible backend on a closed port).
    static func prepare(_ keys: Box) -> @Sendable (TestServices, TestServices.Tenant) async throws -> Void {
        { services, tenant in
            let asInternal = services.asInternal
            for (name, consent, enabled) in [("echo", false, true), ("o1", true, true), ("off", false, false), ("nowhere", false, true), ("upstream", false, true), ("vectors", false, true)] {
                _ = try await services.registry.upsertModel(
                    .with {
                        $0.model = .with {
                            $0.maxOutputTokens = 1024
                            $0.name = name
                            $0.vendor = "lumen"
                            $0.enabled = enabled
                            $0.consentRequired = consent
                            if name == "vectors" { $0.scenes = [.embedding] }
                        }
                    }, metadata: asInternal)
                guard name != "nowhere" else { continue }
                _ = try await services.registry.upsertBackend(
                    .with {
                        $0.backend = .with {
                            $0.model = name
                            $0.id = "b"
                            $0.provider = name == "upstream" ? .openai : .mock
                            $0.baseURL = "http://127.0.0.1:9/v1"
                        }
                    }, metadata: asInternal)
            }
            let open = try await services.keys.createKey(.init(), metadata: tenant.metadata).secret
            let restricted = try await services.keys.createKey(.with { $0.models = ["o1"] }, metadata: tenant.metadata).secret
            let revoked = try await services.keys.createKey(.init(), metadata: tenant.metadata)
            _ = try await services.keys.revokeKey(.with { $0.keyID = revoked.key.id }, metadata: tenant.metadata)
            keys.withLock { $0 = Keys(open: open, restricted: restricted, revoked: revoked.secret) }
        }
    }

    @Test("GET /v1/models lists only what the key may call now")
    func models() async throws {
        let keys = Box()
        try await GatewayHarness.run(prepare: Self.prepare(keys)) { gateway in
            let open = keys.withLock { $0.open }
            let (status, body) = try await gateway.send(.get, "/v1/models", as: .bearer(open))
            #expect(status == 200)
            #expect(body["object"] as? String == "list")
            let ids = (body["data"] as? [[String: Any]])?.compactMap { $0["id"] as? String }
            #expect(ids == ["echo", "nowhere", "upstream", "vectors"])
            let restricted = keys.withLock { $0.restricted }
            let (_, none) = try await gateway.send(.get, "/v1/models", as: .bearer(restricted))
            #expect((none["data"] as? [Any])?.isEmpty == true)
            let refused = try await gateway.raw(.get, "/v1/models", json: nil, bearer: nil)
            #expect(refused.status == .unauthorized)
            #expect(refused.headers[HTTPField.Name("x-request-id")!]?.hasPrefix("req_") == true)
        }
    }

    @Test("A chat completion answers in OpenAI's shape with usage and the request id")
    func nonStreaming() async throws {
        let keys = Box()
        try await GatewayHarness.run(prepare: Self.prepare(keys)) { gateway in
            let response = try await gateway.raw(
                .post, "/v1/chat/completions",
                json: #"{"model": "echo", "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello there"}]}"#,
                bearer: keys.withLock { $0.open })
            #expect(response.status == .ok)
            let requestID = try #require(response.headers[HTTPField.Name("x-request-id")!])
            #expect(requestID.hasPrefix("req_"))
            let body = try #require(try JSONSerialization.jsonObject(with: Data(response.body.readableBytesView)) as? [String: Any])
            #expect(body["object"] as? String == "chat.completion")
            #expect(body["model"] as? String == "echo")
            let choice = try #require((body["choices"] as? [[String: Any]])?.first)
            #expect((choice["message"] as? [String: Any])?["content"] as? String == "You said: hello there")
            #expect(choice["finish_reason"] as? String == "stop")
            let usage = try #require(body["usage"] as? [String: Int])
            // About four characters a token: "be brief\nhello there" is 20 characters, 5 tokens;
            // the answer is counted per streamed word: "You" 1, " said:" 2, " hello" 2, " there" 2.
            #expect(usage["prompt_tokens"] == 5)
            #expect(usage["completion_tokens"] == 7)
            #expect(usage["total_tokens"] == 12)

            let (_, short) = try await gateway.send(
                .post, "/v1/chat/completions",
                json: #"{"model": "echo", "max_tokens": 2, "messages": [{"role": "user", "content": "a b c d e f"}]}"#,
                as: .bearer(keys.withLock { $0.open }))
            let shortChoice = (short["choices"] as? [[String: Any]])?.first
            #expect(shortChoice?["finish_reason"] as? String == "length")
        }
    }

    @Test("stream: true answers with server-sent events ending in [DONE]; usage only when asked")
    func streaming() async throws {
        let keys = Box()
        try await GatewayHarness.run(prepare: Self.prepare(keys)) { gateway in
            for includeUsage in [false, true] {
                let response = try await gateway.raw(
                    .post, "/v1/chat/completions",
                    json: #"{"model": "echo", "stream": true, "stream_options": {"include_usage": \#(includeUsage)}, "messages": [{"role": "user", "content": "stream me"}]}"#,
                    bearer: keys.withLock { $0.open })
                #expect(response.status == .ok)
                #expect(response.headers[.contentType] == "text/event-stream")
                let events = String(decoding: response.body.readableBytesView, as: UTF8.self)
                    .components(separatedBy: "\n\n").filter { !$0.isEmpty }
                #expect(events.allSatisfy { $0.hasPrefix("data: ") })
                #expect(events.last == "data: [DONE]")
                let chunks = events.dropLast().compactMap {
                    try? JSONSerialization.jsonObject(with: Data($0.dropFirst(6).utf8)) as? [String: Any]
                }
                let text = chunks.compactMap { (($0["choices"] as? [[String: Any]])?.first?["delta"] as? [String: Any])?["content"] as? String }
                    .joined()
                #expect(text == "You said: stream me")
                let usageChunks = chunks.filter { $0["usage"] is [String: Any] }
                #expect(usageChunks.count == (includeUsage ? 1 : 0))
                if includeUsage { #expect((usageChunks.first?["choices"] as? [Any])?.isEmpty == true) }
            }
        }
    }

    @Test("Embeddings: one deterministic unit vector per input, as floats or base64")
    func embeddings() async throws {
        let keys = Box()
        try await GatewayHarness.run(prepare: Self.prepare(keys)) { gateway in
            let open = keys.withLock { $0.open }
            func vectors(_ json: String) async throws -> (Int, [String: Any]) {
                try await gateway.send(.post, "/v1/embeddings", json: json, as: .bearer(open))
            }
            let (status, body) = try await vectors(#"{"model": "vectors", "input": ["alpha", "beta", "alpha"]}"#)
            #expect(status == 200)
            #expect(body["object"] as? String == "list")
            let data = try #require(body["data"] as? [[String: Any]])
            let floats = data.compactMap { ($0["embedding"] as? [NSNumber])?.map(\.doubleValue) }
            #expect(floats.count == 3)
            #expect(floats.allSatisfy { $0.count == 16 })
            #expect(abs(floats[0].reduce(0) { $0 + $1 * $1 } - 1) < 1e-4)
            #expect(floats[0] == floats[2] && floats[0] != floats[1])
            #expect(data.map { $0["index"] as? Int } == [0, 1, 2])
            #expect((body["usage"] as? [String: Int])?["prompt_tokens"] == 5)  // alpha 2, beta 1, alpha 2

            let (_, encoded) = try await vectors(#"{"model": "vectors", "input": "alpha", "encoding_format": "base64", "dimensions": 8}"#)
            let text = try #require((encoded["data"] as? [[String: Any]])?.first?["embedding"] as? String)
            let bytes = try #require(Data(base64Encoded: text))
            #expect(bytes.count == 8 * 4)

            for (json, code) in [
                (#"{"model": "echo", "input": "x"}"#, "model_not_supported"),
                (#"{"model": "vectors", "input": []}"#, "invalid_input"),
                (#"{"model": "vectors", "input": "x", "encoding_format": "hex"}"#, "invalid_encoding_format"),
                (#"{"model": "vectors", "input": "x", "dimensions": 0}"#, "invalid_dimensions"),
            ] {
                let (status, body) = try await vectors(json)
                #expect(status == 400, "\(json)")
                #expect(GatewayHarness.error(body).code == code)
            }
            let (chatStatus, chatBody) = try await gateway.send(
                .post, "/v1/chat/completions", json: #"{"model": "vectors", "messages": [{"role": "user", "content": "hi"}]}"#,
                as: .bearer(open))
            #expect(chatStatus == 400)
            #expect(GatewayHarness.error(chatBody).code == "model_not_supported")
        }
    }

    @Test("Admission refuses in order, each with its status and code")
    func admission() async throws {
        let keys = Box()
        try await GatewayHarness.run(prepare: Self.prepare(keys)) { gateway in
            let k = keys.withLock { $0 }
            func chat(_ model: String) -> String {
                #"{"model": "\#(model)", "messages": [{"role": "user", "content": "hi"}]}"#
            }
            let cases: [(String, String?, Int, String)] = [
                (chat("echo"), nil, 401, "missing_api_key"),
                (chat("echo"), "sk-not-a-key", 401, "invalid_api_key"),
                (chat("echo"), gateway.tenant.managementToken, 401, "invalid_api_key"),
                (chat("echo"), k.revoked, 401, "key_revoked"),
                (chat("missing"), k.open, 404, "model_not_found"),
                (chat("echo"), k.restricted, 403, "model_not_allowed"),
                (chat("o1"), k.restricted, 403, "consent_required"),
                (chat("off"), k.open, 503, "model_unavailable"),
                (chat("nowhere"), k.open, 503, "model_unavailable"),
                (chat("upstream"), k.open, 502, "upstream_unavailable"),
                (#"{"messages": [{"role": "user", "content": "hi"}]}"#, k.open, 400, "missing_model"),
                (#"{"model": "echo", "messages": []}"#, k.open, 400, "invalid_messages"),
                (#"{"model": "echo", "messages": [{"role": "user", "content": "x"}], "max_tokens": 0}"#, k.open, 400, "invalid_max_tokens"),
                ("{oops", k.open, 400, "invalid_json"),
            ]
            for (json, token, status, code) in cases {
                let response = try await gateway.raw(.post, "/v1/chat/completions", json: json, bearer: token)
                let body = (try? JSONSerialization.jsonObject(with: Data(response.body.readableBytesView))) as? [String: Any] ?? [:]
                #expect(Int(response.status.code) == status, "\(code)")
                #expect(GatewayHarness.error(body).code == code)
                #expect(response.headers[HTTPField.Name("x-request-id")!] != nil, "\(code)")
            }
            // A key sent without `Bearer ` is told that the scheme is missing.
            let bare = try await gateway.raw(.post, "/v1/chat/completions", json: chat("echo"), bearer: nil, authorization: k.open)
            let body = (try? JSONSerialization.jsonObject(with: Data(bare.body.readableBytesView))) as? [String: Any] ?? [:]
            #expect(bare.status.code == 401 && GatewayHarness.error(body).code == "missing_api_key")
            #expect(GatewayHarness.error(body).message == "the Authorization header has no scheme: send `Authorization: Bearer sk-…`, with `Bearer ` before the token")
        }
    }

    @Test("A model's groups: blocked members and outsiders of an allow list get 403 model_blocked; changes apply live")
    func groups() async throws {
        let secret = Mutex("")
        let ids = Mutex((user: "", interns: "", research: ""))
        try await GatewayHarness.run(prepare: { services, tenant in
            let interns = try await services.accounts.createGroup(.with { $0.name = "interns" }, metadata: tenant.metadata).group.id
            let research = try await services.accounts.createGroup(.with { $0.name = "research" }, metadata: tenant.metadata).group.id
            let user = try await services.accounts.createUser(
                .with {
                    $0.email = "intern@example.test"
                    $0.groupIds = [interns]
                }, metadata: tenant.metadata
            ).user.id
            for (name, allowed, blocked) in [("open", [String](), [String]()), ("no-interns", [], [interns]), ("research-only", [research], [])] {
                _ = try await services.registry.upsertModel(
                    .with {
                        $0.model = .with {
                            $0.maxOutputTokens = 1024
                            $0.name = name
                            $0.vendor = "lumen"
                            $0.enabled = true
                            $0.allowedGroupIds = allowed
                            $0.blockedGroupIds = blocked
                        }
                    }, metadata: services.asInternal)
                _ = try await services.registry.upsertBackend(
                    .with { $0.backend = .with { $0.model = name; $0.id = "b"; $0.provider = .mock } }, metadata: services.asInternal)
            }
            let key = try await services.keys.createKey(
                .with { $0.owner = .with { $0.type = .user; $0.id = user } }, metadata: tenant.metadata)
            secret.withLock { $0 = key.secret }
            ids.withLock { $0 = (user, interns, research) }
        }) { gateway in
            let key = secret.withLock { $0 }
            let (user, _, research) = ids.withLock { $0 }
            @Sendable func chat(_ model: String) async throws -> (Int, String?) {
                let (status, body) = try await gateway.send(
                    .post, "/v1/chat/completions", json: #"{"model": "\#(model)", "messages": [{"role": "user", "content": "hi"}]}"#,
                    as: .bearer(key))
                return (status, GatewayHarness.error(body).code)
            }
            #expect(try await chat("open") == (200, nil))
            #expect(try await chat("no-interns") == (403, "model_blocked"))
            #expect(try await chat("research-only") == (403, "model_blocked"))
            let (_, listed) = try await gateway.send(.get, "/v1/models", as: .bearer(key))
            #expect((listed["data"] as? [[String: Any]])?.compactMap { $0["id"] as? String } == ["open"])

            // Moved from interns to research: the gateway learns it from the watch, no restart.
            _ = try await gateway.services.accounts.updateUser(
                .with {
                    $0.userID = user
                    $0.groups = .with { $0.ids = [research] }
                }, metadata: gateway.tenant.metadata)
            try await eventuallyAsync("the move reaches the gateway") { try await chat("research-only").0 == 200 }
            #expect(try await chat("no-interns") == (200, nil))
        }
    }
}
