import UpstreamClient
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

/// Claude as an upstream: OpenAI chat requests as Anthropic's Messages API takes them, and its
/// answers, streams and errors back as OpenAI's — the mistakes peers made (only the last system
/// message kept, `tool_use` mapped to `stop`, tool deltas at the wrong index, usage missing
/// from streams, cache reads unbilled) checked one by one.
@Suite("Anthropic as an upstream")
struct AnthropicProviderTests {
    static func json(_ text: String) throws -> [String: JSONValue] {
        guard case .object(let fields) = try JSONValue.parse(Array(text.utf8)) else { throw APIError.invalid("x", "not an object") }
        return fields
    }

    static func translated(_ text: String, maxTokens: Int64 = 1_024, stream: Bool = false) throws -> JSONValue {
        try AnthropicRequest.body(try json(text), model: "claude-sonnet-4-5", stream: stream, maxTokens: maxTokens)
    }

    @Test("Every system message in order, turns merged as Anthropic alternates, tool calls and results as blocks")
    func request() throws {
        let body = try Self.translated(
            #"""
            {"model":"claude","messages":[
              {"role":"system","content":"You are terse."},
              {"role":"developer","content":[{"type":"text","text":"Answer in French."}]},
              {"role":"user","content":"Weather in Paris and Lyon?"},
              {"role":"assistant","content":null,"tool_calls":[
                {"id":"call_1","type":"function","function":{"name":"weather","arguments":"{\"city\":\"Paris\"}"}},
                {"id":"call_2","type":"function","function":{"name":"weather","arguments":"{\"city\":\"Lyon\"}"}}]},
              {"role":"tool","tool_call_id":"call_1","content":"18C"},
              {"role":"tool","tool_call_id":"call_2","content":"21C"},
              {"role":"user","content":[{"type":"text","text":"And this?"},{"type":"image_url","image_url":{"url":"data:image/png;base64,iVBORw0K"}}]}],
             "tools":[{"type":"function","function":{"name":"weather","description":"Today's weather","parameters":{"type":"object","properties":{"city":{"type":"string"}}}}}],
             "tool_choice":"required","parallel_tool_calls":false,"stop":"END","temperature":0.2,"top_p":0.9,"user":"u-1"}
            """#)
        #expect(body["model"] == .string("claude-sonnet-4-5"))
        #expect(body["max_tokens"] == .number(1_024))
        #expect(body["system"]?.arrayValue?.compactMap { $0["text"]?.stringValue } == ["You are terse.", "Answer in French."])
        let messages = try #require(body["messages"]?.arrayValue)
        #expect(messages.compactMap { $0["role"]?.stringValue } == ["user", "assistant", "user"])
        let uses = try #require(messages[1]["content"]?.arrayValue)
        #expect(uses.map { $0["type"]?.stringValue } == ["tool_use", "tool_use"])
        #expect(uses[0]["input"]?["city"] == .string("Paris") && uses[1]["id"] == .string("call_2"))
        // Both results, and the next user turn, in one user message (Anthropic alternates).
        let results = try #require(messages[2]["content"]?.arrayValue)
        #expect(results.map { $0["type"]?.stringValue } == ["tool_result", "tool_result", "text", "image"])
        #expect(results[1]["tool_use_id"] == .string("call_2") && results[1]["content"] == .string("21C"))
        #expect(results[3]["source"]?["media_type"] == .string("image/png") && results[3]["source"]?["data"] == .string("iVBORw0K"))
        #expect(body["tools"]?.arrayValue?.first?["input_schema"]?["type"] == .string("object"))
        #expect(body["tools"]?.arrayValue?.first?["description"] == .string("Today's weather"))
        #expect(body["tool_choice"] == .object(["type": .string("any"), "disable_parallel_tool_use": .bool(true)]))
        #expect(body["stop_sequences"] == .array([.string("END")]))
        #expect(body["temperature"] == .number(try #require(Decimal(string: "0.2"))))
        #expect(body["top_p"] == .number(try #require(Decimal(string: "0.9"))))
        #expect(body["metadata"]?["user_id"] == .string("u-1"))
        #expect(body["stream"] == nil)
        #expect(try Self.translated(#"{"messages":[{"role":"user","content":"hi"}]}"#, stream: true)["stream"] == .bool(true))
    }

    @Test("What Anthropic cannot take is refused with a 400 that says what to do")
    func refusals() throws {
        for (text, code) in [
            (#"{"n":2,"messages":[{"role":"user","content":"hi"}]}"#, "n_not_supported"),
            (#"{"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"https://example.com/cat.png"}}]}]}"#, "image_url_not_supported"),
            (#"{"messages":[{"role":"user","content":[{"type":"input_audio","input_audio":{}}]}]}"#, "unsupported_content"),
            (#"{"messages":[{"role":"system","content":"only a system prompt"}]}"#, "invalid_messages"),
            (#"{"messages":[{"role":"tool","content":"18C"}]}"#, "invalid_messages"),
            (#"{"tool_choice":"sometimes","messages":[{"role":"user","content":"hi"}]}"#, "invalid_tool_choice"),
            (#"{"response_format":{"type":"json_object"},"messages":[{"role":"user","content":"hi"}]}"#, "unsupported_parameter"),
            (#"{"seed":42,"messages":[{"role":"user","content":"hi"}]}"#, "unsupported_parameter"),
        ] {
            #expect(throws: APIError.self) { try Self.translated(text) }
            do {
                _ = try Self.translated(text)
            } catch let error as APIError {
                #expect(error.status == .badRequest && error.code == code, "\(text)")
            }
        }
    }

    @Test("A message comes back as a chat completion: text, tool calls, finish reason, usage with cache reads")
    func completion() throws {
        let message = ByteBuffer(
            string: #"""
                {"id":"msg_1","type":"message","role":"assistant","model":"claude-sonnet-4-5","content":[
                  {"type":"text","text":"Checking."},
                  {"type":"tool_use","id":"toolu_1","name":"weather","input":{"city":"Paris"}}],
                 "stop_reason":"tool_use","stop_sequence":null,
                 "usage":{"input_tokens":100,"cache_creation_input_tokens":20,"cache_read_input_tokens":300,"output_tokens":15}}
                """#)
        let answer = try #require(AnthropicAnswer.completion(message, model: "my-claude", created: 1_700_000_000))
        let object = try #require(try JSONSerialization.jsonObject(with: Data(answer.body.readableBytesView)) as? [String: Any])
        #expect(object["model"] as? String == "my-claude" && object["object"] as? String == "chat.completion")
        let choice = try #require((object["choices"] as? [[String: Any]])?.first)
        #expect(choice["finish_reason"] as? String == "tool_calls")
        let reply = try #require(choice["message"] as? [String: Any])
        #expect(reply["content"] as? String == "Checking.")
        let call = try #require((reply["tool_calls"] as? [[String: Any]])?.first)
        #expect(call["id"] as? String == "toolu_1" && call["type"] as? String == "function")
        let function = try #require(call["function"] as? [String: Any])
        #expect(function["name"] as? String == "weather" && function["arguments"] as? String == #"{"city":"Paris"}"#)
        let usage = try #require(object["usage"] as? [String: Any])
        #expect(usage["prompt_tokens"] as? Int == 420 && usage["completion_tokens"] as? Int == 15 && usage["total_tokens"] as? Int == 435)
        #expect((usage["prompt_tokens_details"] as? [String: Any])?["cached_tokens"] as? Int == 300)
        // Billed: cache reads as cached input, cache writes as cache writes (each at its price).
        #expect(answer.reported == .init(input: 100, cachedInput: 300, cacheWrite: 20, output: 15))
        for (stop, finish) in [("end_turn", "stop"), ("stop_sequence", "stop"), ("max_tokens", "length"), ("tool_use", "tool_calls"), ("refusal", "content_filter")] {
            #expect(AnthropicAnswer.finishReason(stop) == finish)
        }
        let error = AnthropicAnswer.error(ByteBuffer(string: #"{"type":"error","error":{"type":"invalid_request_error","message":"max_tokens: too large"}}"#))
        let refused = try #require(try JSONSerialization.jsonObject(with: Data(error.readableBytesView)) as? [String: Any])
        #expect((refused["error"] as? [String: Any])?["message"] as? String == "max_tokens: too large")
        #expect((refused["error"] as? [String: Any])?["type"] as? String == "invalid_request_error")
    }

    /// A stream as Claude sends it: text, then two tool calls, then the stop reason and usage.
    static let events = [
        #"{"type":"message_start","message":{"id":"msg_2","type":"message","role":"assistant","content":[],"model":"claude","stop_reason":null,"usage":{"input_tokens":50,"cache_read_input_tokens":10,"output_tokens":1}}}"#,
        #"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
        #"{"type":"ping"}"#,
        #"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Let me "}}"#,
        #"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"check."}}"#,
        #"{"type":"content_block_stop","index":0}"#,
        #"{"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"toolu_a","name":"weather","input":{}}}"#,
        #"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"city\": "}}"#,
        #"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"\"Paris\"}"}}"#,
        #"{"type":"content_block_stop","index":1}"#,
        #"{"type":"content_block_start","index":2,"content_block":{"type":"tool_use","id":"toolu_b","name":"weather","input":{}}}"#,
        #"{"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":"{\"city\": \"Lyon\"}"}}"#,
        #"{"type":"content_block_stop","index":2}"#,
        #"{"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"output_tokens":42}}"#,
        #"{"type":"message_stop"}"#,
    ]

    static func sse(_ events: [String]) -> String {
        events.map { data in
            let type = (try? JSONValue.parse(Array(data.utf8)))?["type"]?.stringValue ?? "event"
            return "event: \(type)\ndata: \(data)\n\n"
        }.joined()
    }

    /// The chunks a stream of `events` turns into, as JSON objects, and whether it ended.
    static func chunks(includeUsage: Bool) throws -> (chunks: [[String: Any]], done: Bool, reader: AnthropicAnswer.Stream) {
        let reader = AnthropicAnswer.Stream(model: "my-claude", includeUsage: includeUsage, created: 1)
        var parser = SSEParser()
        var out = ByteBuffer()
        var ended = false
        for event in parser.feed(ByteBuffer(string: sse(events))) where reader.relay(event, into: &out) { ended = true }
        var chunks: [[String: Any]] = []
        var done = false
        var again = SSEParser()
        for event in again.feed(out) {
            if event.isDone { done = true; continue }
            let data = try #require(event.data)
            chunks.append(try #require(try JSONSerialization.jsonObject(with: Data(data.utf8)) as? [String: Any]))
        }
        #expect(ended == done)
        return (chunks, done, reader)
    }

    @Test("A stream comes back as chunks: tool calls indexed from 0 in order, arguments as they come, usage when asked")
    func stream() throws {
        let (chunks, done, reader) = try Self.chunks(includeUsage: true)
        #expect(done)
        #expect(chunks.allSatisfy { $0["model"] as? String == "my-claude" && $0["id"] as? String == "chatcmpl-msg_2" })
        let deltas = chunks.compactMap { ($0["choices"] as? [[String: Any]])?.first?["delta"] as? [String: Any] }
        #expect(deltas.first?["role"] as? String == "assistant")
        #expect(deltas.compactMap { $0["content"] as? String }.joined() == "Let me check.")
        let calls = deltas.compactMap { ($0["tool_calls"] as? [[String: Any]])?.first }
        #expect(calls.map { $0["index"] as? Int } == [0, 0, 0, 1, 1])
        #expect(calls.compactMap { $0["id"] as? String } == ["toolu_a", "toolu_b"])
        let arguments = { (index: Int) in
            calls.filter { $0["index"] as? Int == index }.compactMap { ($0["function"] as? [String: Any])?["arguments"] as? String }.joined()
        }
        #expect(arguments(0) == #"{"city": "Paris"}"# && arguments(1) == #"{"city": "Lyon"}"#)
        let finishes = chunks.compactMap { ($0["choices"] as? [[String: Any]])?.first?["finish_reason"] as? String }
        #expect(finishes == ["tool_calls"])
        // The usage chunk: no choices, the prompt with its cache reads, the output of message_delta.
        let last = try #require(chunks.last)
        #expect((last["choices"] as? [Any])?.isEmpty == true)
        let usage = try #require(last["usage"] as? [String: Any])
        #expect(usage["prompt_tokens"] as? Int == 60 && usage["completion_tokens"] as? Int == 42)
        #expect((usage["prompt_tokens_details"] as? [String: Any])?["cached_tokens"] as? Int == 10)
        #expect(reader.reported == .init(input: 50, cachedInput: 10, output: 42))
        #expect(reader.text() == "Let me check.")
        // Without stream_options.include_usage, no usage chunk (the usage is still metered).
        let (plain, _, quiet) = try Self.chunks(includeUsage: false)
        #expect(plain.allSatisfy { $0["usage"] == nil } && quiet.reported != nil)
    }

    /// What the fake Claude received.
    final class Received: Sendable {
        let requests = Mutex<[(headers: HTTPFields, body: JSONValue)]>([])
    }

    /// A gateway whose model `claude` has one Anthropic backend at `127.0.0.1:port`, fetching
    /// images by URL as `imageURLs` allows; `body` gets it, a key's secret and the key's id.
    static func gateway(
        claude port: Int, imageURLs: HostPolicy = .none,
        _ body: @Sendable @escaping (GatewayHarness, String, String) async throws -> Void
    ) async throws {
        setenv("LUMEN_TEST_ANTHROPIC_KEY", "sk-ant-test", 1)
        try await GatewayHarness.run(
            model: "claude", vendor: "Anthropic",
            backend: .with {
                $0.id = "anthropic"
                $0.provider = .anthropic
                $0.baseURL = "http://127.0.0.1:\(port)"
                $0.upstreamModel = "claude-sonnet-4-5"
                $0.credentialEnv = "LUMEN_TEST_ANTHROPIC_KEY"
            }, imageURLs: imageURLs, body)
    }

    @Test("Images by URL: fetched from the hosts the operator allows and sent inline; refused otherwise, each refusal saying why")
    func imagesByURL() async throws {
        let received = Received()
        let png: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A] + Array(repeating: 7, count: 300)
        let router = Router()
        router.post("v1/messages") { request, _ -> Response in
            received.requests.withLock { $0.append((request.headers, .null)) }
            let body = try JSONValue.parse(try await request.body.collect(upTo: 1 << 24))
            received.requests.withLock { $0[$0.count - 1].body = body }
            return Response(
                status: .ok, headers: [.contentType: "application/json"],
                body: .init(byteBuffer: ByteBuffer(string: #"{"id":"msg_1","type":"message","role":"assistant","content":[{"type":"text","text":"A cat"}],"stop_reason":"end_turn","usage":{"input_tokens":7,"output_tokens":3}}"#)))
        }
        router.get("cat.png") { _, _ in Response(status: .ok, headers: [.contentType: "image/png"], body: .init(byteBuffer: ByteBuffer(bytes: png))) }
        router.get("big.png") { _, _ in
            Response(status: .ok, headers: [.contentType: "image/png"], body: .init(byteBuffer: ByteBuffer(repeating: 1, count: ImageFetcher.maxBytes + 1)))
        }
        router.get("page.html") { _, _ in Response(status: .ok, headers: [.contentType: "text/html"], body: .init(byteBuffer: ByteBuffer(string: "<p>"))) }
        router.get("moved") { _, _ in Response(status: .found, headers: [.location: "/cat.png"]) }
        let server = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)))
        try await server.test(.live) { upstream in
            let port = try #require(upstream.port)
            @Sendable func chat(_ gateway: GatewayHarness, _ secret: String, _ path: String) async throws -> (Int, [String: Any]) {
                let (status, body) = try await gateway.send(
                    .post, "/v1/chat/completions",
                    json: #"{"model":"claude","messages":[{"role":"user","content":[{"type":"text","text":"What is it?"},{"type":"image_url","image_url":{"url":"http://127.0.0.1:\#(port)/\#(path)"}}]}]}"#,
                    as: .bearer(secret))
                return (status, (body["error"] as? [String: Any]) ?? body)
            }
            // Named by the operator: fetched, and sent to Claude inline with its media type.
            try await Self.gateway(claude: port, imageURLs: try HostPolicy(list: "127.0.0.1")) { gateway, secret, _ in
                let (status, body) = try await chat(gateway, secret, "cat.png")
                #expect(status == 200, "\(body)")
                let sent = try #require(received.requests.withLock { $0.last?.body })
                let image = try #require(sent["messages"]?.arrayValue?.first?["content"]?.arrayValue?.last)
                #expect(image["type"] == .string("image"))
                #expect(image["source"]?["type"] == .string("base64") && image["source"]?["media_type"] == .string("image/png"))
                #expect(image["source"]?["data"] == .string(Data(png).base64EncodedString()))
                for (path, code) in [
                    ("big.png", "image_too_large"), ("page.html", "image_url_unsupported_type"), ("moved", "image_url_unreachable"),
                    ("missing.png", "image_url_unreachable"),
                ] {
                    let (status, error) = try await chat(gateway, secret, path)
                    #expect(status == 400 && error["code"] as? String == code, "\(path): \(error)")
                    #expect((error["message"] as? String)?.contains(path) == true && error["param"] as? String == "messages[0].content[1]")
                }
            }
            let calls = received.requests.withLock { $0.count }
            #expect(calls == 1, "a refused image never reaches Claude")
            // Any public host: loopback is not one. A host list without it: not fetched either.
            for policy in ["*", "images.example.com,*.example.com"] {
                try await Self.gateway(claude: port, imageURLs: try HostPolicy(list: policy)) { gateway, secret, _ in
                    let (status, error) = try await chat(gateway, secret, "cat.png")
                    #expect(status == 400 && error["code"] as? String == "image_url_not_allowed", "\(policy): \(error)")
                }
            }
            // None (the default): refused, saying what to do.
            try await Self.gateway(claude: port) { gateway, secret, _ in
                let (status, error) = try await chat(gateway, secret, "cat.png")
                #expect(status == 400 && error["code"] as? String == "image_url_not_supported")
                #expect((error["message"] as? String)?.contains("--image-url-hosts") == true)
            }
            #expect(received.requests.withLock { $0.count } == calls)
        }
    }

    @Test("Which hosts and addresses an image may be fetched from")
    func imagePolicy() throws {
        let policy = try HostPolicy(list: " assets.example.com, *.cdn.example.com ,10.0.0.7")
        #expect(policy.admits("assets.example.com") == (true, false) && policy.admits("a.cdn.example.com") == (true, false))
        #expect(policy.admits("cdn.example.com") == (false, true) && policy.admits("10.0.0.7") == (true, false))
        #expect(try HostPolicy(list: "*").admits("anything.test") == (true, true))
        #expect(try HostPolicy(list: "").isOff)
        for bad in ["https://example.com", "a/b", "*x.com", "user@host"] {
            #expect(throws: HostPolicyError.self) { try HostPolicy(list: bad) }
        }
        func isPublic(_ ip: String) throws -> Bool { HostPolicy.isPublic(try SocketAddress(ipAddress: ip, port: 443)) }
        for ip in ["93.184.216.34", "8.8.8.8", "2606:4700::6810:85e5", "::ffff:8.8.8.8", "64:ff9b::808:808"] {
            #expect(try isPublic(ip), "\(ip)")
        }
        for ip in [
            "127.0.0.1", "10.1.2.3", "172.16.0.1", "172.31.255.255", "192.168.1.1", "169.254.169.254", "100.64.0.1", "0.0.0.0",
            "224.0.0.1", "255.255.255.255", "198.18.0.1", "::1", "::", "fe80::1", "fd00::1", "ff02::1", "::ffff:127.0.0.1",
            "::ffff:169.254.169.254", "64:ff9b::a00:1", "2002:c0a8:101::1", "2001:db8::1",
        ] {
            #expect(try !isPublic(ip), "\(ip)")
        }
    }

    @Test("Through the gateway: a chat request to a Claude backend, whole and streamed, metered from Claude's usage")
    func throughTheGateway() async throws {
        let received = Received()
        let router = Router()
        router.post("v1/messages") { request, _ -> Response in
            let body = try JSONValue.parse(try await request.body.collect(upTo: 1 << 20))
            received.requests.withLock { $0.append((request.headers, body)) }
            if body["stream"] == .bool(true) {
                return Response(
                    status: .ok, headers: [.contentType: "text/event-stream"], body: .init(byteBuffer: ByteBuffer(string: Self.sse(Self.events))))
            }
            return Response(
                status: .ok, headers: [.contentType: "application/json"],
                body: .init(byteBuffer: ByteBuffer(string: #"{"id":"msg_1","type":"message","role":"assistant","content":[{"type":"text","text":"Bonjour"}],"stop_reason":"end_turn","usage":{"input_tokens":7,"output_tokens":3}}"#)))
        }
        let claude = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)))
        try await claude.test(.live) { upstream in
            try await Self.gateway(claude: try #require(upstream.port)) { gateway, secret, keyID in
                let (status, body) = try await gateway.send(
                    .post, "/v1/chat/completions",
                    json: #"{"model":"claude","messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Hi"}]}"#,
                    as: .bearer(secret))
                #expect(status == 200, "\(body)")
                let reply = ((body["choices"] as? [[String: Any]])?.first?["message"] as? [String: Any])?["content"] as? String
                #expect(reply == "Bonjour" && body["model"] as? String == "claude")
                let sent = try #require(received.requests.withLock { $0.first })
                #expect(sent.headers[InferenceAdmission.xAPIKey] == "sk-ant-test")
                #expect(sent.headers[.anthropicVersion] == AnthropicProvider.version)
                #expect(sent.headers[.authorization] == nil)
                #expect(sent.body["model"] == .string("claude-sonnet-4-5") && sent.body["max_tokens"] == .number(2_000))
                #expect(sent.body["system"]?.arrayValue?.first?["text"] == .string("Be brief."))

                let streamed = try await gateway.raw(
                    .post, "/v1/chat/completions",
                    json: #"{"model":"claude","stream":true,"stream_options":{"include_usage":true},"max_tokens":64,"messages":[{"role":"user","content":"Weather?"}]}"#,
                    bearer: secret)
                #expect(streamed.status == .ok)
                let text = String(buffer: streamed.body)
                #expect(text.contains(#""finish_reason":"tool_calls""#) && text.hasSuffix("data: [DONE]\n\n"))
                #expect(received.requests.withLock { $0.last?.body["max_tokens"] } == .number(64))

                // Metered from Claude's own usage: 7 + 3 tokens, then 50 + 10 cached + 42.
                var lines: [Lumen_Ledger_V1_UsageLine] = []
                for _ in 0..<200 {
                    lines = try await gateway.services.ledger.listUsage(.with { $0.filter.keyID = keyID }, metadata: gateway.tenant.metadata).lines
                    if lines.count == 2 && lines.allSatisfy({ $0.status == .settled }) { break }
                    try await Task.sleep(for: .milliseconds(10))
                }
                #expect(Set(lines.map { [$0.inputTokens, $0.cachedInputTokens, $0.outputTokens] }) == [[7, 0, 3], [50, 10, 42]])
                #expect(lines.allSatisfy { !$0.estimated && $0.backendID == "anthropic" })
            }
        }
    }
}

/// `/v1/messages` callers whose model's backend speaks OpenAI's format: their requests and the
/// answers translated, the other way from Claude as an upstream.
@Suite("Anthropic's Messages API over an OpenAI-format backend")
struct MessagesTranslationTests {
    @Test("A Messages request as a chat request: system, turns, images, tool use and results, tools and choice")
    func request() throws {
        let body = try MessagesRequest.chatBody(
            try AnthropicProviderTests.json(
                #"""
                {"model":"claude","max_tokens":300,"system":[{"type":"text","text":"Be brief."}],"stop_sequences":["END"],
                 "metadata":{"user_id":"u-1"},"temperature":0.5,
                 "tools":[{"name":"weather","input_schema":{"type":"object"}},{"type":"web_search_20250305","name":"web_search"}],
                 "tool_choice":{"type":"any","disable_parallel_tool_use":true},
                 "messages":[
                   {"role":"user","content":[{"type":"text","text":"Look:"},{"type":"image","source":{"type":"base64","media_type":"image/png","data":"AAAA"}}]},
                   {"role":"assistant","content":[{"type":"thinking","thinking":"hm","signature":"s"},{"type":"text","text":"Checking."},
                     {"type":"tool_use","id":"toolu_1","name":"weather","input":{"city":"Paris"}}]},
                   {"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_1","content":[{"type":"text","text":"18C"}]},{"type":"text","text":"Thanks"}]}]}
                """#))
        let messages = try #require(body["messages"]?.arrayValue)
        #expect(messages.compactMap { $0["role"]?.stringValue } == ["system", "user", "assistant", "tool", "user"])
        #expect(messages[0]["content"] == .string("Be brief."))
        #expect(messages[1]["content"]?.arrayValue?.last?["image_url"]?["url"] == .string("data:image/png;base64,AAAA"))
        #expect(messages[2]["content"] == .string("Checking."), "thinking is left out")
        let call = try #require(messages[2]["tool_calls"]?.arrayValue?.first)
        #expect(call["id"] == .string("toolu_1") && call["function"]?["arguments"] == .string(#"{"city":"Paris"}"#))
        #expect(messages[3]["tool_call_id"] == .string("toolu_1") && messages[3]["content"] == .string("18C"))
        #expect(body["tools"]?.arrayValue?.count == 1, "a server tool has nothing to translate")
        #expect(body["tool_choice"] == .string("required") && body["parallel_tool_calls"] == .bool(false))
        #expect(body["stop"] == .array([.string("END")]) && body["user"] == .string("u-1") && body["max_tokens"] == .number(300))
        for (text, code) in [
            (#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#, "invalid_max_tokens"),
            (#"{"model":"m","max_tokens":5,"messages":[{"role":"system","content":"hi"}]}"#, "invalid_messages"),
            (#"{"model":"m","max_tokens":5,"messages":[{"role":"user","content":[{"type":"tool_use","id":"a","name":"b","input":{}}]}]}"#, "unsupported_content"),
            (#"{"model":"m","max_tokens":5,"stream":"yes","messages":[{"role":"user","content":"hi"}]}"#, "invalid_stream"),
            (#"{"model":"m","max_tokens":5,"tool_choice":{"type":"tool"},"messages":[{"role":"user","content":"hi"}]}"#, "invalid_tool_choice"),
        ] {
            do {
                _ = try MessagesRequest.chatBody(try AnthropicProviderTests.json(text))
                Issue.record("accepted \(text)")
            } catch let error as APIError {
                #expect(error.status == .badRequest && error.code == code, "\(text)")
            }
        }
    }

    @Test("A chat completion as a message, a chat stream as Anthropic's events, refusals in Anthropic's shape")
    func answers() throws {
        let completion = ByteBuffer(
            string: #"{"id":"c1","choices":[{"index":0,"finish_reason":"tool_calls","message":{"role":"assistant","content":"On it.","tool_calls":[{"id":"call_1","type":"function","function":{"name":"weather","arguments":"{\"city\":\"Lyon\"}"}}]}}],"usage":{"prompt_tokens":30,"completion_tokens":9,"prompt_tokens_details":{"cached_tokens":10}}}"#)
        let answer = try #require(MessagesAnswer.message(fromOpenAI: completion, model: "claude"))
        let message = try JSONValue.parse(answer.body)
        #expect(message["type"] == .string("message") && message["model"] == .string("claude") && message["stop_reason"] == .string("tool_use"))
        #expect(message["content"]?.arrayValue?.map { $0["type"]?.stringValue } == ["text", "tool_use"])
        #expect(message["content"]?.arrayValue?.last?["input"]?["city"] == .string("Lyon"))
        #expect(message["usage"]?["input_tokens"] == .number(20) && message["usage"]?["cache_read_input_tokens"] == .number(10))
        #expect(answer.reported == .init(input: 20, cachedInput: 10, output: 9))

        let chunks = [
            #"{"choices":[{"index":0,"delta":{"role":"assistant","content":"Hi"},"finish_reason":null}]}"#,
            #"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"weather","arguments":"{\"ci"}}]},"finish_reason":null}]}"#,
            #"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"ty\":\"Lyon\"}"}}]},"finish_reason":null}]}"#,
            #"{"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}"#,
            #"{"choices":[],"usage":{"prompt_tokens":30,"completion_tokens":9}}"#,
        ].map { "data: \($0)\n\n" }.joined() + "data: [DONE]\n\n"
        let reader = MessagesAnswer.Stream(model: "claude", id: "msg_1", promptTokens: 25)
        var parser = SSEParser()
        var out = ByteBuffer()
        var ended = false
        for event in parser.feed(ByteBuffer(string: chunks)) where reader.relay(event, into: &out) { ended = true }
        #expect(ended)
        var again = SSEParser()
        let events = again.feed(out)
        let names = events.map { String(buffer: $0.raw).split(separator: "\n").first.map { String($0.dropFirst("event: ".count)) } ?? "" }
        #expect(names == [
            "message_start", "ping", "content_block_start", "content_block_delta", "content_block_stop", "content_block_start",
            "content_block_delta", "content_block_delta", "content_block_stop", "message_delta", "message_stop",
        ])
        let delta = try JSONValue.parse(Array(try #require(events[9].data).utf8))
        #expect(delta["delta"]?["stop_reason"] == .string("tool_use") && delta["usage"]?["output_tokens"] == .number(9))
        #expect(reader.reported == .init(input: 30, output: 9) && reader.text() == "Hi")

        // Content deltas are read without a parse; anything else is parsed.
        #expect(MessagesAnswer.Stream.contentDelta(#"{"choices":[{"index":0,"delta":{"content":"He said \"hi\" \u00e9 \\"},"finish_reason":null}]}"#) == #"He said "hi" é \"#)
        #expect(MessagesAnswer.Stream.contentDelta(#"{"choices":[{"index":0,"delta":{"content":"end"},"finish_reason":"stop"}]}"#) == nil)
        #expect(MessagesAnswer.Stream.contentDelta(#"{"choices":[{"index":0,"delta":{"content":"x","tool_calls":[]},"finish_reason":null}]}"#) == nil)
        #expect(MessagesAnswer.Stream.contentDelta(#"{"choices":[{"index":0,"delta":{"content":"x"},"finish_reason":null}],"usage":{"prompt_tokens":1}}"#) == nil)

        let (status, body) = MessagesAnswer.refusal(APIError(.paymentRequired, code: "insufficient_quota", message: "no budget"))
        #expect(status.code == 402)
        #expect(try JSONValue.parse(body) == .object(["type": .string("error"), "error": .object(["type": .string("billing_error"), "message": .string("no budget")])]))
        #expect(MessagesAnswer.refusal(APIError(.serviceUnavailable, code: "model_unavailable", message: "off")).status.code == 529)
    }
}
