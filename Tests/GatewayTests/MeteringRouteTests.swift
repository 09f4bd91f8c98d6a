import Foundation
import HTTPTypes
import HummingbirdTesting
import LumenAPI
import LumenTesting
import NIOCore
import RPCSupport
import SharedRules
import Synchronization
import Testing
import WireFormats

@testable import Gateway

/// Secrets `prepare` hands to the test body.
final class Secrets: Sendable {
    private let values = Mutex<[String: String]>([:])
    func withLock<R>(_ body: (inout [String: String]) -> R) -> R { values.withLock { body(&$0) } }
}

@Suite("Metering: holds, usage lines and key counters from gateway requests")
struct MeteringRouteTests {
    /// `priced`: a mock model at $2 / $8 per million input / output tokens, 100 output tokens
    /// by default; returns an open key and one capped at 10 micro-USD.
    static func prepare(_ secrets: Secrets) -> @Sendable (TestServices, TestServices.Tenant) async throws -> Void {
        { services, tenant in
            _ = try await services.registry.upsertModel(
                .with {
                    $0.model = .with {
                        $0.name = "priced"
                        $0.vendor = "Lumen"
                        $0.enabled = true
                        $0.scenes = [.chat]
                        $0.maxOutputTokens = 100
                        $0.prices = .with {
                            $0.inputPerMillionMicros = 2_000_000
                            $0.outputPerMillionMicros = 8_000_000
                        }
                    }
                }, metadata: services.asInternal)
            _ = try await services.registry.upsertModel(
                .with {
                    $0.model = .with {
                        $0.maxOutputTokens = 1024
                        $0.name = "painter"
                        $0.vendor = "Lumen"
                        $0.enabled = true
                        $0.scenes = [.image, .audio]
                        $0.prices = .with { $0.perRequestMicros = 40_000 }
                    }
                }, metadata: services.asInternal)
            // `priced` takes callers' own upstream keys; `painter` does not.
            for model in ["priced", "painter"] {
                _ = try await services.registry.upsertBackend(
                    .with { $0.backend = .with { $0.model = model; $0.id = "mock"; $0.provider = .mock; $0.byok = model == "priced" } },
                    metadata: services.asInternal)
            }
            let open = try await services.keys.createKey(.init(), metadata: tenant.metadata)
            let capped = try await services.keys.createKey(.with { $0.limitMicros = 10 }, metadata: tenant.metadata)
            let slow = try await services.keys.createKey(.with { $0.rpmLimit = 2 }, metadata: tenant.metadata)
            let slowAndPoor = try await services.keys.createKey(
                .with {
                    $0.rpmLimit = 1
                    $0.limitMicros = 3_000
                }, metadata: tenant.metadata)
            let bounded = try await services.keys.createKey(.with { $0.limitMicros = 50_000 }, metadata: tenant.metadata)
            secrets.withLock {
                $0 = [
                    "open": open.secret, "open_id": open.key.id, "capped": capped.secret, "capped_id": capped.key.id,
                    "slow": slow.secret, "slow_id": slow.key.id, "slow_poor": slowAndPoor.secret, "slow_poor_id": slowAndPoor.key.id,
                    "bounded": bounded.secret, "bounded_id": bounded.key.id,
                ]
            }
        }
    }

    static func lines(_ gateway: GatewayHarness, key: String) async throws -> [Lumen_Ledger_V1_UsageLine] {
        try await gateway.services.ledger.listUsage(
            .with { $0.filter = .with { $0.keyID = key } }, metadata: gateway.tenant.metadata
        ).lines
    }

    @Test("A completion leaves one settled line: its request id, tokens and cost at the model's prices")
    func settledLine() async throws {
        let secrets = Secrets()
        try await GatewayHarness.run(prepare: Self.prepare(secrets)) { gateway in
            let (open, keyID) = secrets.withLock { ($0["open"]!, $0["open_id"]!) }
            let response = try await gateway.raw(
                .post, "/v1/chat/completions",
                json: #"{"model": "priced", "messages": [{"role": "user", "content": "hello there"}]}"#, bearer: open)
            #expect(response.status == .ok)
            let requestID = try #require(response.headers[HTTPField.Name("x-request-id")!])
            let lines = try await Self.lines(gateway, key: keyID)
            let line = try #require(lines.first)
            #expect(lines.count == 1)
            #expect(line.requestID == requestID)
            #expect(line.status == .settled)
            #expect(line.billingTransactionID.hasPrefix("btx_"))
            #expect(line.logicalModel == "priced" && line.modelVendor == "Lumen")
            #expect(line.scene == .chat && line.accessChannel == .platform)
            // The backend that answered, as the gateway reported it; the ledger priced the tokens.
            #expect(line.backendID == "mock" && line.overrunMicros == 0)
            // "hello there": 3 prompt tokens; "You said: hello there": 7 completion tokens.
            #expect(line.inputTokens == 3 && line.outputTokens == 7)
            #expect(line.costMicros == 3 * 2 + 7 * 8)
            #expect(!line.estimated)

            // The key's totals are the ledger's, counted by the time the answer arrived.
            let totals = try await gateway.services.ledger.getKeyTotals(
                .with { $0.keyIds = [keyID, "key_of_nobody"] }, metadata: gateway.tenant.metadata
            ).totals
            #expect(totals.count == 2)
            #expect(totals[0].requests == 1 && totals[0].costMicros == 62)
            #expect(totals[0].inputTokens == 3 && totals[0].outputTokens == 7 && totals[0].hasLastUsedAt)
            #expect(totals[1].keyID == "key_of_nobody" && totals[1].requests == 0 && !totals[1].hasLastUsedAt)
            let (status, object) = try await gateway.send(.get, "/v1/management/api-keys/\(keyID)")
            #expect(status == 200)
            #expect((object["used_amount"] as? NSNumber)?.decimalValue == Decimal(string: "0.000062"))
            #expect(object["last_used_at"] is String)
        }
    }

    @Test("A stream is settled with the upstream's usage even when the caller did not ask for it")
    func streamedLine() async throws {
        let secrets = Secrets()
        try await GatewayHarness.run(prepare: Self.prepare(secrets)) { gateway in
            let (open, keyID) = secrets.withLock { ($0["open"]!, $0["open_id"]!) }
            let response = try await gateway.raw(
                .post, "/v1/chat/completions",
                json: #"{"model": "priced", "stream": true, "messages": [{"role": "user", "content": "hello there"}]}"#,
                bearer: open)
            let text = String(buffer: response.body)
            #expect(!text.contains("\"usage\":{"))
            #expect(text.hasSuffix("data: [DONE]\n\n"))
            let line = try #require(try await Self.lines(gateway, key: keyID).first)
            #expect(line.status == .settled)
            #expect(line.inputTokens == 3 && line.outputTokens == 7 && line.costMicros == 62)
            #expect(!line.estimated)
        }
    }

    @Test("A key whose cap cannot cover the estimate gets 402 insufficient_quota and no line")
    func insufficientQuota() async throws {
        let secrets = Secrets()
        try await GatewayHarness.run(prepare: Self.prepare(secrets)) { gateway in
            let (capped, keyID) = secrets.withLock { ($0["capped"]!, $0["capped_id"]!) }
            let (status, body) = try await gateway.send(
                .post, "/v1/chat/completions",
                json: #"{"model": "priced", "messages": [{"role": "user", "content": "hello"}]}"#, as: .bearer(capped))
            #expect(status == 402)
            #expect(GatewayHarness.error(body).code == "insufficient_quota")
            #expect((body["error"] as? [String: Any])?["type"] as? String == "insufficient_quota")
            #expect(try await Self.lines(gateway, key: keyID).isEmpty)
        }
    }

    @Test("A hold bounds the whole request: tools, images by URL and schemas count; what does not fit is 402 before the upstream, with nothing written")
    func holdBoundsTheWholeRequest() async throws {
        let secrets = Secrets()
        try await GatewayHarness.run(prepare: Self.prepare(secrets)) { gateway in
            let (bounded, keyID) = secrets.withLock { ($0["bounded"]!, $0["bounded_id"]!) }
            func chat(_ extra: [String: Any]) async throws -> (Int, [String: Any]) {
                var body: [String: Any] = ["model": "priced", "max_tokens": 10, "messages": [["role": "user", "content": "hello"]]]
                body.merge(extra) { _, new in new }
                let json = String(decoding: try JSONSerialization.data(withJSONObject: body), as: UTF8.self)
                return try await gateway.send(.post, "/v1/chat/completions", json: json, as: .bearer(bounded))
            }
            // A coding agent's turn: 40 KB of tool definitions around a one-word message. Its bound is
            // over 40,000 input tokens at $2 per million: more than the key's 0.05 USD.
            let description = String(repeating: "Reads a file from the workspace and returns its text. ", count: 14)
            let tools: [[String: Any]] = (0..<50).map { index in
                ["type": "function", "function": ["name": "tool_\(index)", "description": description, "parameters": ["type": "object"]]]
            }
            let (toolsStatus, toolsBody) = try await chat(["tools": tools])
            #expect(toolsStatus == 402)
            #expect(GatewayHarness.error(toolsBody).code == "insufficient_quota")
            let message = try #require((toolsBody["error"] as? [String: Any])?["message"] as? String)
            #expect(message.contains("this API key's spending limit") && message.contains("input tokens"), "\(message)")
            // Ten images by URL: each counts the model's ceiling (8,192 tokens by default).
            let image: [String: Any] = ["type": "image_url", "image_url": ["url": "https://example.invalid/cat.png"]]
            let (imagesStatus, _) = try await chat(
                ["messages": [["role": "user", "content": [["type": "text", "text": "what is this?"]] + Array(repeating: image, count: 10)]]])
            #expect(imagesStatus == 402)
            // A JSON schema counts like any other text.
            let schema: [String: Any] = [
                "type": "json_schema",
                "json_schema": ["name": "answer", "schema": ["type": "object", "description": String(repeating: "x", count: 30_000)]],
            ]
            #expect(try await chat(["response_format": schema]).0 == 402)
            // Nothing was written, nothing went upstream; the plain request fits and is charged.
            #expect(try await Self.lines(gateway, key: keyID).isEmpty)
            #expect(try await chat([:]).0 == 200)
            #expect(try await Self.lines(gateway, key: keyID).count == 1)
        }
    }

    @Test("A caller's own upstream key goes only to a backend configured for it: elsewhere 400 byok_not_allowed, never forwarded")
    func byokNotAllowed() async throws {
        let secrets = Secrets()
        try await GatewayHarness.run(prepare: Self.prepare(secrets)) { gateway in
            let (open, keyID) = secrets.withLock { ($0["open"]!, $0["open_id"]!) }
            var headers: HTTPFields = [.authorization: "Bearer \(open)", .contentType: "application/json"]
            headers[HTTPField.Name("X-Upstream-Authorization")!] = "Bearer junk"
            let response = try await gateway.client.execute(
                uri: "/v1/images/generations", method: .post, headers: headers,
                body: ByteBuffer(string: #"{"model": "painter", "prompt": "a lighthouse"}"#))
            #expect(response.status == .badRequest)
            let body = try #require(try JSONSerialization.jsonObject(with: Data(response.body.readableBytesView)) as? [String: Any])
            #expect(GatewayHarness.error(body).code == "byok_not_allowed")
            #expect(try await Self.lines(gateway, key: keyID).isEmpty)
        }
    }

    @Test("Beyond its requests per minute a key gets 429 with Retry-After and no hold; out of money and rate, 429 comes first")
    func rateLimited() async throws {
        let secrets = Secrets()
        try await GatewayHarness.run(prepare: Self.prepare(secrets)) { gateway in
            let (slow, slowID, slowPoor, slowPoorID) = secrets.withLock {
                ($0["slow"]!, $0["slow_id"]!, $0["slow_poor"]!, $0["slow_poor_id"]!)
            }
            let json = #"{"model": "priced", "max_tokens": 10, "messages": [{"role": "user", "content": "hello"}]}"#
            func header(_ response: TestResponse, _ name: String) -> String? { response.headers[HTTPField.Name(name)!] }
            // Each answer says what is left of the key's minute, as OpenAI names it; a stream too.
            let first = try await gateway.raw(.post, "/v1/chat/completions", json: json, bearer: slow)
            #expect(first.status == .ok)
            #expect(header(first, "x-ratelimit-limit-requests") == "2" && header(first, "x-ratelimit-remaining-requests") == "1")
            #expect(header(first, "x-ratelimit-reset-requests").map { $0.hasSuffix("s") } == true)
            #expect(header(first, "x-ratelimit-limit-tokens") == nil)  // the key has no token limit
            let streamed = try await gateway.raw(
                .post, "/v1/chat/completions",
                json: #"{"model": "priced", "max_tokens": 10, "stream": true, "messages": [{"role": "user", "content": "hello"}]}"#, bearer: slow)
            #expect(streamed.status == .ok && header(streamed, "x-ratelimit-remaining-requests") == "0")
            let refused = try await gateway.raw(.post, "/v1/chat/completions", json: json, bearer: slow)
            #expect(refused.status == .tooManyRequests)
            let retryAfter = try #require(refused.headers[HTTPField.Name("Retry-After")!].flatMap { Int($0) })
            #expect((1...60).contains(retryAfter))
            #expect(header(refused, "x-ratelimit-remaining-requests") == "0" && header(refused, "x-ratelimit-reset-requests") == (retryAfter < 60 ? "\(retryAfter)s" : "1m0s"))
            // A key without limits has no such headers.
            let open = secrets.withLock { $0["open"]! }
            #expect(header(try await gateway.raw(.post, "/v1/chat/completions", json: json, bearer: open), "x-ratelimit-limit-requests") == nil)
            let body = try #require(try JSONSerialization.jsonObject(with: Data(refused.body.readableBytesView)) as? [String: Any])
            #expect(GatewayHarness.error(body).code == "rate_limit_exceeded")
            #expect((body["error"] as? [String: Any])?["type"] as? String == "rate_limit_error")
            #expect(try await Self.lines(gateway, key: slowID).count == 2)

            // 1 request per minute and a 3,000 micro-USD cap: the first fits (its bound: ~1,110 input
            // tokens — its text and the template allowance — at $2/M and 10 output tokens at $8/M).
            #expect(try await gateway.raw(.post, "/v1/chat/completions", json: json, bearer: slowPoor).status == .ok)
            #expect(try await gateway.raw(.post, "/v1/chat/completions", json: json, bearer: slowPoor).status == .tooManyRequests)
            // Out of rate and of money: the rate answers first, and the ledger is not asked (no line).
            let expensive = #"{"model": "priced", "max_tokens": 1000, "messages": [{"role": "user", "content": "hello"}]}"#
            let (status, poor) = try await gateway.send(.post, "/v1/chat/completions", json: expensive, as: .bearer(slowPoor))
            #expect(status == 429)
            #expect(GatewayHarness.error(poor).code == "rate_limit_exceeded")
            #expect(try await Self.lines(gateway, key: slowPoorID).count == 1)
        }
    }

    @Test("Pass-through paths take their scene from the path and are billed per request, JSON or multipart")
    func passthrough() async throws {
        let secrets = Secrets()
        try await GatewayHarness.run(prepare: Self.prepare(secrets)) { gateway in
            let (open, keyID) = secrets.withLock { ($0["open"]!, $0["open_id"]!) }
            let (status, image) = try await gateway.send(
                .post, "/v1/images/generations", json: #"{"model": "painter", "prompt": "a lighthouse"}"#, as: .bearer(open))
            #expect(status == 200)
            #expect(((image["data"] as? [[String: Any]])?.first?["b64_json"] as? String)?.isEmpty == false)

            let boundary = "lumen-test-boundary"
            let form = "--\(boundary)\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\nContent-Type: audio/wav\r\n\r\nRIFF....\r\n"
                + "--\(boundary)\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\npainter\r\n--\(boundary)--\r\n"
            let transcription = try await gateway.client.execute(
                uri: "/v1/audio/transcriptions", method: .post,
                headers: [.authorization: "Bearer \(open)", .contentType: "multipart/form-data; boundary=\(boundary)"],
                body: ByteBuffer(string: form))
            #expect(transcription.status == .ok)
            #expect(String(buffer: transcription.body).contains("mock transcription"))

            let (chatStatus, chat) = try await gateway.send(
                .post, "/v1/moderations", json: #"{"model": "painter", "input": "hi"}"#, as: .bearer(open))
            #expect(chatStatus == 400)
            #expect(GatewayHarness.error(chat).code == "model_not_supported")

            let lines = try await Self.lines(gateway, key: keyID)
            #expect(lines.count == 2)
            #expect(Set(lines.map(\.scene)) == [.image, .audio])
            #expect(lines.allSatisfy { $0.costMicros == 40_000 && !$0.estimated && $0.status == .settled })
        }
    }

    @Test("GET /metrics: requests by model, status and scene, latencies, holds, caches and circuits")
    func metrics() async throws {
        let secrets = Secrets()
        try await GatewayHarness.run(prepare: Self.prepare(secrets)) { gateway in
            let (open, capped) = secrets.withLock { ($0["open"]!, $0["capped"]!) }
            let json = #"{"model": "priced", "messages": [{"role": "user", "content": "hello"}]}"#
            _ = try await gateway.raw(.post, "/v1/chat/completions", json: json, bearer: open)
            _ = try await gateway.raw(.post, "/v1/chat/completions", json: json, bearer: capped)
            _ = try await gateway.raw(.post, "/v1/chat/completions", json: #"{"model": "made-up", "messages": [{"role": "user", "content": "x"}]}"#, bearer: open)
            #expect(try await gateway.raw(.get, "/metrics", json: nil, bearer: nil).status == .notFound)
            let response = try await gateway.operations { try await $0.execute(uri: "/metrics", method: .get) }
            #expect(response.status == .ok)
            let text = String(buffer: response.body)
            #expect(text.contains(#"lumen_requests_total{model="priced",status="200",scene="chat"} 1"#))
            #expect(text.contains(#"lumen_requests_total{model="priced",status="402",scene="chat"} 1"#))
            #expect(text.contains(#"lumen_requests_total{model="-",status="404",scene="chat"} 1"#))
            #expect(!text.contains("made-up"))
            #expect(text.contains(#"lumen_request_duration_seconds_count{model="priced",scene="chat"} 1"#))
            #expect(text.contains(#"lumen_time_to_first_token_seconds_bucket{model="priced""#))
            #expect(text.contains("lumen_holds_open 0"))
            #expect(text.contains("lumen_ledger_invariant_checked 1"))
            #expect(text.contains("lumen_ledger_invariant_violations 0"))
            #expect(text.contains(#"lumen_gateway_cache_synced{cache="keys"} 1"#))
            #expect(text.contains(#"lumen_backend_circuit_open{model="priced",backend="mock"} 0"#))
            #expect(!text.contains(open) && !text.contains("hello"))
        }
    }

    @Test("BYOK: the caller's upstream key is taken, the line is kept and nothing is charged")
    func byok() async throws {
        let secrets = Secrets()
        try await GatewayHarness.run(prepare: Self.prepare(secrets)) { gateway in
            let (capped, keyID) = secrets.withLock { ($0["capped"]!, $0["capped_id"]!) }
            var headers: HTTPFields = [.authorization: "Bearer \(capped)"]
            headers[HTTPField.Name("X-Upstream-Authorization")!] = "Bearer sk-upstream-own"
            let response = try await gateway.client.execute(
                uri: "/v1/chat/completions", method: .post, headers: headers,
                body: ByteBuffer(string: #"{"model": "priced", "messages": [{"role": "user", "content": "hello"}]}"#))
            #expect(response.status == .ok)
            let line = try #require(try await Self.lines(gateway, key: keyID).first)
            #expect(line.accessChannel == .byok)
            #expect(line.costMicros == 0)
            // "You said: hello": "You" 1 + " said:" 2 + " hello" 2, counted as the mock counts.
            #expect(line.outputTokens == 5)
        }
    }
}

@Suite("Routing: weighted order among routable backends")
struct BackendOrderTests {
    static func backend(_ id: String, weight: Int32, unhealthyUntil: Int64? = nil) -> Lumen_Registry_V1_Backend {
        .with {
            $0.model = "m"
            $0.id = id
            $0.weight = weight
            if let unhealthyUntil {
                $0.health = .unhealthy
                $0.circuitOpenUntil = .init(millis: unhealthyUntil)
            }
        }
    }

    /// A deterministic generator (SplitMix64), so the test cannot flake.
    struct SplitMix: RandomNumberGenerator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }

    @Test("Backends come first in proportion to their weight")
    func weighted() {
        var generator = SplitMix(state: 42)
        let backends = [Self.backend("a", weight: 1), Self.backend("b", weight: 3)]
        var first: [String: Int] = [:]
        for _ in 0..<20_000 {
            let order = BackendRouter.order(backends, now: 0, using: &generator)
            #expect(order.count == 2)
            first[order[0].id, default: 0] += 1
        }
        let share = Double(first["b", default: 0]) / 20_000
        #expect(abs(share - 0.75) < 0.02)
    }

    @Test("Open circuits are skipped until their cooldown ends; local failures go last")
    func healthAndDemotion() {
        var generator = SplitMix(state: 7)
        let backends = [Self.backend("down", weight: 100, unhealthyUntil: 1_000), Self.backend("up", weight: 1)]
        #expect(BackendRouter.order(backends, now: 999, using: &generator).map(\.id) == ["up"])
        #expect(Set(BackendRouter.order(backends, now: 1_000, using: &generator).map(\.id)) == ["down", "up"])
        for _ in 0..<100 {
            let order = BackendRouter.order(
                backends, now: 5_000, demoted: [BackendRouter.key(backends[0])], using: &generator)
            #expect(order.map(\.id) == ["up", "down"])
        }
    }
}

@Suite("Server-sent events split whatever the chunk boundaries")
struct SSEParserTests {
    @Test("Events arrive whole, in pieces or several at once, with LF or CRLF")
    func chunking() {
        let stream = "data: {\"a\":1}\n\ndata: {\"b\":2}\r\n\r\n: comment\n\ndata: [DONE]\n\n"
        for size in [1, 2, 3, 7, 100] {
            var parser = SSEParser()
            var events: [SSEEvent] = []
            var rest = Substring(stream)
            while !rest.isEmpty {
                events += parser.feed(ByteBuffer(string: String(rest.prefix(size))))
                rest = rest.dropFirst(size)
            }
            #expect(events.map(\.data) == ["{\"a\":1}", "{\"b\":2}", nil, "[DONE]"], "chunks of \(size)")
            #expect(events.last?.isDone == true)
            #expect(events.map { String(buffer: $0.raw) }.joined() == stream)
        }
    }

    @Test("An event's data: its data lines, each less one leading space, joined by LF; other fields ignored", arguments: [
        ("event: delta\ndata: {\"a\":1}\nid: 7", "{\"a\":1}"),
        ("data:no space\ndata:  two spaces\r\ndata:\rdata: é 😀", "no space\n two spaces\n\né 😀"),
        ("datax: not data\n:data: a comment\n data: indented", nil),
        ("retry: 10", nil),
        ("data", nil),
        ("data:", ""),
    ])
    func eventData(_ event: String, _ expected: String?) {
        var parser = SSEParser()
        #expect(parser.feed(ByteBuffer(string: event)).isEmpty)
        #expect(parser.finish()?.data == expected)
    }

    @Test("Usage is read in both OpenAI shapes; cached tokens are priced apart")
    func usageShapes() throws {
        let chat = try #require(MeteredPayload.decode(Array(#"{"choices":[],"usage":{"prompt_tokens":10,"completion_tokens":4,"prompt_tokens_details":{"cached_tokens":6}}}"#.utf8)))
        #expect(chat.reported == .init(input: 4, cachedInput: 6, output: 4))
        #expect(chat.hasNoChoices)
        let responses = try #require(MeteredPayload.decode(Array(#"{"type":"response.completed","response":{"usage":{"input_tokens":9,"output_tokens":3}}}"#.utf8)))
        #expect(responses.reported == .init(input: 9, output: 3))
        let delta = try #require(MeteredPayload.decode(Array(#"{"choices":[{"index":0,"delta":{"content":"Hi"}}],"usage":null}"#.utf8)))
        #expect(delta.reported == nil && delta.text == "Hi" && !delta.hasNoChoices)
    }
}

@Suite("GET /v1/management/api-keys/{keyId}/usage: the usage filter contract")
struct KeyUsageRouteTests {
    @Test("Lines come back newest first with public fields, USD cost, paging and filters")
    func usagePage() async throws {
        let secrets = Secrets()
        try await GatewayHarness.run(prepare: MeteringRouteTests.prepare(secrets)) { gateway in
            let (open, keyID) = secrets.withLock { ($0["open"]!, $0["open_id"]!) }
            var requestIDs: [String] = []
            for _ in 0..<3 {
                let response = try await gateway.raw(
                    .post, "/v1/chat/completions",
                    json: #"{"model": "priced", "messages": [{"role": "user", "content": "hello there"}]}"#, bearer: open)
                #expect(response.status == .ok)
                requestIDs.append(try #require(response.headers[HTTPField.Name("x-request-id")!]))
            }
            let path = "/v1/management/api-keys/\(keyID)/usage"
            let (status, body) = try await gateway.send(.get, path + "?limit=2")
            #expect(status == 200)
            #expect(body["object"] as? String == "list")
            #expect(body["page"] as? Int == 1 && body["limit"] as? Int == 2 && body["total"] as? Int == 3)
            #expect(body["has_more"] as? Bool == true)
            let data = try #require(body["data"] as? [[String: Any]])
            #expect(data.count == 2)
            let line = data[0]
            #expect(Set(line.keys) == [
                "request_id", "billing_transaction_id", "created_at", "logical_model", "model_vendor", "scene",
                "access_channel", "input_tokens", "cached_input_tokens", "cache_write_tokens", "output_tokens", "cost", "status", "estimated",
            ])
            #expect(requestIDs.contains(line["request_id"] as? String ?? ""))
            #expect((line["billing_transaction_id"] as? String)?.hasPrefix("btx_") == true)
            #expect(line["logical_model"] as? String == "priced" && line["model_vendor"] as? String == "Lumen")
            #expect(line["scene"] as? String == "chat" && line["access_channel"] as? String == "platform")
            #expect(line["status"] as? String == "settled")
            #expect((line["created_at"] as? String)?.hasSuffix("Z") == true)
            let lines = try await MeteringRouteTests.lines(gateway, key: keyID)
            let expectedCost = Decimal(lines[0].costMicros) / 1_000_000
            #expect((line["cost"] as? NSNumber)?.decimalValue == expectedCost)

            let (_, second) = try await gateway.send(.get, path + "?limit=2&page=2")
            #expect((second["data"] as? [Any])?.count == 1 && second["has_more"] as? Bool == false)
            let today = String(RFC3339.format(millis: Int64(Date().timeIntervalSince1970 * 1000)).prefix(10))
            for (query, count) in [
                ("logicalModel=priced&scene=chat&accessChannel=platform", 3), ("logicalModel=painter", 0),
                ("accessChannel=byok", 0), ("startDate=\(today)&endDate=\(today)", 3), ("endDate=2000-01-01", 0),
                ("startDate=2000-01-01T00:00:00%2B02:00", 3), ("modelVendor=Lumen", 3),
            ] {
                let (status, body) = try await gateway.send(.get, path + "?" + query)
                #expect(status == 200, "\(query)")
                #expect(body["total"] as? Int == count, "\(query)")
            }
        }
    }

    @Test("Every rule of the filter contract refuses bad input with 400 naming the parameter")
    func badInput() async throws {
        let secrets = Secrets()
        try await GatewayHarness.run(prepare: MeteringRouteTests.prepare(secrets)) { gateway in
            let keyID = secrets.withLock { $0["open_id"]! }
            let long = String(repeating: "m", count: 101)
            for (query, code, param) in [
                ("page=0", "invalid_page", "page"), ("page=x", "invalid_page", "page"), ("limit=0", "invalid_limit", "limit"),
                ("limit=101", "invalid_limit", "limit"), ("logicalModel=\(long)", "invalid_logical_model", "logicalModel"),
                ("modelVendor=\(long)", "invalid_model_vendor", "modelVendor"), ("scene=poetry", "invalid_scene", "scene"),
                ("accessChannel=free", "invalid_access_channel", "accessChannel"),
                ("startDate=yesterday", "invalid_start_date", "startDate"), ("endDate=2026-02-30", "invalid_end_date", "endDate"),
                ("startDate=2026-01-01T00:00:00", "invalid_start_date", "startDate"),
                ("startDate=2026-02-01&endDate=2026-01-31", "invalid_date_range", "endDate"),
                ("colour=blue", "unknown_parameter", "colour"), ("page=1&page=2", "duplicate_parameter", "page"),
            ] {
                let (status, body) = try await gateway.send(.get, "/v1/management/api-keys/\(keyID)/usage?" + query)
                #expect(status == 400, "\(query)")
                #expect(GatewayHarness.error(body).code == code, "\(query)")
                #expect(GatewayHarness.error(body).param == param, "\(query)")
            }
            let (status, body) = try await gateway.send(.get, "/v1/management/api-keys/key_nope/usage")
            #expect(status == 404 && GatewayHarness.error(body).code == "key_not_found")
            let (unauthorized, _) = try await gateway.send(.get, "/v1/management/api-keys/\(keyID)/usage", as: .none)
            #expect(unauthorized == 401)
        }
    }

    @Test("GET /billing: settled totals by model, vendor, scene, channel and day, in USD, with the usage filters")
    func billing() async throws {
        let secrets = Secrets()
        try await GatewayHarness.run(prepare: MeteringRouteTests.prepare(secrets)) { gateway in
            let (open, keyID) = secrets.withLock { ($0["open"]!, $0["open_id"]!) }
            for _ in 0..<3 {
                let response = try await gateway.raw(
                    .post, "/v1/chat/completions",
                    json: #"{"model": "priced", "messages": [{"role": "user", "content": "hello there"}]}"#, bearer: open)
                #expect(response.status == .ok)
            }
            let image = try await gateway.raw(
                .post, "/v1/images/generations", json: #"{"model": "painter", "prompt": "a lighthouse"}"#, bearer: open)
            #expect(image.status == .ok)
            let lines = try await MeteringRouteTests.lines(gateway, key: keyID)
            let path = "/v1/management/api-keys/\(keyID)/billing"
            let (status, body) = try await gateway.send(.get, path)
            #expect(status == 200)
            #expect(body["object"] as? String == "billing" && body["key_id"] as? String == keyID && body["currency"] as? String == "USD")
            #expect(body["page"] == nil && body["has_more"] == nil)
            let total = try #require(body["total"] as? [String: Any])
            #expect(total["requests"] as? Int == 4)
            let expectedCost = Decimal(lines.reduce(0) { $0 + $1.costMicros }) / 1_000_000
            #expect((total["cost"] as? NSNumber)?.decimalValue == expectedCost)
            #expect(total["output_tokens"] as? Int == Int(lines.reduce(0) { $0 + $1.outputTokens }))
            let byModel = try #require(body["by_model"] as? [[String: Any]])
            #expect(byModel.map { $0["logical_model"] as? String } == ["painter", "priced"])
            #expect(byModel.map { $0["requests"] as? Int } == [1, 3])
            #expect((byModel[0]["cost"] as? NSNumber)?.decimalValue == Decimal(string: "0.04"))
            let byScene = try #require(body["by_scene"] as? [[String: Any]])
            #expect(byScene.map { $0["scene"] as? String } == ["chat", "image"])
            #expect((body["by_access_channel"] as? [[String: Any]])?.map { $0["access_channel"] as? String } == ["platform"])
            #expect((body["by_vendor"] as? [[String: Any]])?.map { $0["model_vendor"] as? String } == ["Lumen"])
            let today = RFC3339.formatDay(millis: Int64(Date().timeIntervalSince1970 * 1000))
            #expect((body["by_day"] as? [[String: Any]])?.map { $0["date"] as? String } == [today])

            let (_, filtered) = try await gateway.send(.get, path + "?logicalModel=priced&startDate=\(today)&endDate=\(today)")
            #expect((filtered["total"] as? [String: Any])?["requests"] as? Int == 3)
            let (_, none) = try await gateway.send(.get, path + "?endDate=2000-01-01")
            #expect((none["total"] as? [String: Any])?["requests"] as? Int == 0)
            #expect((none["by_day"] as? [Any])?.isEmpty == true)

            for (query, code, param) in [
                ("page=1", "unknown_parameter", "page"), ("limit=10", "unknown_parameter", "limit"),
                ("scene=poetry", "invalid_scene", "scene"), ("startDate=2026-02-01&endDate=2026-01-31", "invalid_date_range", "endDate"),
                ("logicalModel=\(String(repeating: "m", count: 101))", "invalid_logical_model", "logicalModel"),
            ] {
                let (status, body) = try await gateway.send(.get, path + "?" + query)
                #expect(status == 400, "\(query)")
                #expect(GatewayHarness.error(body).code == code && GatewayHarness.error(body).param == param, "\(query)")
            }
            let (missing, missingBody) = try await gateway.send(.get, "/v1/management/api-keys/key_nope/billing")
            #expect(missing == 404 && GatewayHarness.error(missingBody).code == "key_not_found")
        }
    }

    @Test("GET /balance: not configured, then a granted balance that requests spend, in USD")
    func balance() async throws {
        let secrets = Secrets()
        try await GatewayHarness.run(prepare: MeteringRouteTests.prepare(secrets)) { gateway in
            let open = secrets.withLock { $0["open"]! }
            var (status, body) = try await gateway.send(.get, "/v1/management/balance")
            #expect(status == 200)
            #expect(body["object"] as? String == "balance" && body["currency"] as? String == "USD")
            #expect(body["state"] as? String == "not_configured")
            #expect(body["limit"] is NSNull && body["next_refill_at"] is NSNull)

            _ = try await gateway.services.ledger.grant(
                .with {
                    $0.owner = .with { $0.type = .organization }
                    $0.amountMicros = 10_100_000
                    $0.reason = "welcome"
                }, metadata: gateway.tenant.metadata)
            let response = try await gateway.raw(
                .post, "/v1/chat/completions", json: #"{"model": "priced", "messages": [{"role": "user", "content": "hi"}]}"#,
                bearer: open)
            #expect(response.status == .ok)
            let spent = try await MeteringRouteTests.lines(gateway, key: secrets.withLock { $0["open_id"]! })[0].costMicros
            (status, body) = try await gateway.send(.get, "/v1/management/balance")
            #expect(body["state"] as? String == "balance")
            #expect((body["granted"] as? NSNumber)?.decimalValue == Decimal(string: "10.1"))
            #expect((body["spent"] as? NSNumber)?.decimalValue == Decimal(spent) / 1_000_000)
            #expect((body["balance"] as? NSNumber)?.decimalValue == Decimal(10_100_000 - spent) / 1_000_000)
            #expect((body["available"] as? NSNumber)?.decimalValue == Decimal(10_100_000 - spent) / 1_000_000)
            #expect((body["reserved"] as? NSNumber)?.decimalValue == 0)

            let (bad, badBody) = try await gateway.send(.get, "/v1/management/balance?currency=CNY")
            #expect(bad == 400 && GatewayHarness.error(badBody).code == "unknown_parameter")
            let (unauthorized, _) = try await gateway.send(.get, "/v1/management/balance", as: .none)
            #expect(unauthorized == 401)
        }
    }
}
