import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import LumenAPI
import LumenTesting
import NIOCore
import Synchronization
import Testing
import UpstreamClient
import WireFormats

@testable import Gateway

/// AWS Bedrock as an upstream: requests signed with Signature Version 4 (checked against AWS's
/// published test suite), OpenAI chat as Converse and back, the binary event stream read into
/// OpenAI chunks — the traps peers fell into (the model id's `:` signed once-encoded, usage
/// missing because it comes after `messageStop`, cache tokens unbilled) checked one by one.
@Suite("Bedrock as an upstream")
struct BedrockProviderTests {
    static let example = AWSCredentials(accessKeyID: "AKIDEXAMPLE", secretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
    /// 2015-08-30T12:36:00Z, the test suite's moment.
    static let moment = Date(timeIntervalSince1970: 1_440_938_160)

    static func signature(
        _ method: String, path: String = "/", query: String = "", headers: [(String, String)] = [], body: String = "",
        credentials: AWSCredentials = example, service: String = "service"
    ) throws -> String {
        let added = SigV4.sign(
            method: method, path: path, query: query, headers: [("Host", "example.amazonaws.com")] + headers, body: Array(body.utf8),
            credentials: credentials, region: "us-east-1", service: service, date: moment)
        return try #require(added.first { $0.0 == "authorization" }).1
    }

    @Test("Signature Version 4: AWS's published test suite (get-vanilla, query order, post-vanilla, a form body, a session token)")
    func testSuite() throws {
        let prefix = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
        #expect(try Self.signature("GET") == prefix + "SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31")
        #expect(try Self.signature("GET", query: "Param2=value2&Param1=value1").hasSuffix("b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"))
        #expect(try Self.signature("POST").hasSuffix("Signature=5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"))
        #expect(
            try Self.signature("POST", headers: [("Content-Type", "application/x-www-form-urlencoded")], body: "Param1=value1")
                == prefix + "SignedHeaders=content-type;host;x-amz-date, Signature=ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a")
        var temporary = Self.example
        temporary.sessionToken =
            "AQoDYXdzEPT//////////wEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8j4FZTwdQWLWsKWHGBuFqwAeMicRXmxfpSPfIeoIYRqTflfKD8YUuwthAx7mSEI/qkPpKPi/kMcGdQrmGdeehM4IC1NtBmUpp2wUE8phUZampKsburEDy0KPkyQDYwT7WZ0wq5VSXDvp75YU9HFvlRd8Tx6q6fE8YQcHNVXAkiY9q6d+xo0rKwT38xVqr7ZD0u0iPPkUL64lIZbqBAz+scqKmlzm8FDrypNC9Yjc8fPOLn9FX9KSYvKTr4rvx3iSIlTJabIQwj2ICCR/oLxBA=="
        #expect(
            try Self.signature("POST", credentials: temporary)
                == prefix + "SignedHeaders=host;x-amz-date;x-amz-security-token, Signature=85d96828115b5dc0cfc3bd16ad9e210dd772bbebba041836c64533a82be05ead")
        #expect(
            SigV4.hex(Array(SigV4.signingKey(secret: Self.example.secretAccessKey, day: "20150830", region: "us-east-1", service: "service")
                .withUnsafeBytes { Array($0) })) == "938127b5336810ddb6a5d6af445fcac9e371f9ed418ed386b022aed82901be75")
        #expect(SigV4.timestamp(Self.moment) == "20150830T123600Z")
        #expect(SigV4.timestamp(Date(timeIntervalSince1970: 951_782_400)) == "20000229T000000Z", "a leap day")
    }

    @Test("A Bedrock model id's ':' is sent once encoded and signed twice encoded, as botocore signs it")
    func modelIDs() throws {
        let path = BedrockProvider.path(model: "anthropic.claude-3-5-sonnet-20240620-v1:0", stream: false)
        #expect(path == "/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse")
        #expect(SigV4.canonicalPath(path) == "/model/anthropic.claude-3-5-sonnet-20240620-v1%253A0/converse")
        // Computed by botocore's SigV4Auth for the same request (service bedrock, the suite's keys and moment).
        let added = SigV4.sign(
            method: "POST", path: path, headers: [("host", "bedrock-runtime.us-east-1.amazonaws.com"), ("content-type", "application/json")],
            body: Array(#"{"messages":[]}"#.utf8), credentials: Self.example, region: "us-east-1", service: "bedrock", date: Self.moment)
        #expect(added.first { $0.0 == "authorization" }?.1.hasSuffix("Signature=40f11609b51d318bc71127993eb5b075cc12b3bde24aa11d2a25186d1fc1d196") == true)
        #expect(BedrockProvider.path(model: "arn:aws:bedrock:us-east-1:123:inference-profile/us.x", stream: true).hasSuffix("profile%2Fus.x/converse-stream"))
        // Signed as the upstream client sends it: its Host header and target.
        let head = try UpstreamClient.head(of: "https://proxy.example:443/aws" + path)
        #expect(head.host == "proxy.example" && head.target == "/aws/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse")
        #expect(try UpstreamClient.head(of: "http://127.0.0.1:9000/model/x/converse").host == "127.0.0.1:9000")
    }

    @Test("AWS keys: from the variables, or a profile of the shared credentials file, read again when it changes")
    func credentials() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("lumen-aws-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let file = folder.appendingPathComponent("credentials")
        try "[default]\naws_access_key_id = AKIADEFAULT\naws_secret_access_key = s1\n\n# a comment\n[profile prod]\naws_access_key_id=AKIAPROD\naws_secret_access_key=s2\naws_session_token = t2\n[half]\naws_access_key_id = AKIAHALF\n"
            .write(to: file, atomically: true, encoding: .utf8)
        let environment: [String: String] = ["AWS_SHARED_CREDENTIALS_FILE": file.path, "AWS_ACCESS_KEY_ID": "AKIAENV", "AWS_SECRET_ACCESS_KEY": "s0"]
        let store = AWSCredentialStore(environment: { environment[$0] })
        #expect(store.credentials(profile: "") == AWSCredentials(accessKeyID: "AKIAENV", secretAccessKey: "s0"))
        #expect(store.credentials(profile: "prod") == AWSCredentials(accessKeyID: "AKIAPROD", secretAccessKey: "s2", sessionToken: "t2"))
        #expect(store.credentials(profile: "half") == nil && store.problem(profile: "half").contains("profile half is not in \(file.path)"))
        #expect(store.problem(profile: "default").isEmpty)
        try "[prod]\naws_access_key_id=AKIAROTATED\naws_secret_access_key=s3\n".write(to: file, atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.modificationDate: Date().addingTimeInterval(5)], ofItemAtPath: file.path)
        #expect(store.credentials(profile: "prod")?.accessKeyID == "AKIAROTATED")
        let empty = AWSCredentialStore(environment: { _ in nil })
        #expect(empty.problem(profile: "").contains("AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not set"))
    }

    @Test("Chat as Converse: system blocks, alternating turns, images as bytes, tool uses and results, tool config, inference config")
    func request() throws {
        let body = try BedrockRequest.body(
            try AnthropicProviderTests.json(
                #"""
                {"messages":[
                  {"role":"system","content":"You are terse."},
                  {"role":"user","content":[{"type":"text","text":"Weather?"},{"type":"image_url","image_url":{"url":"data:image/jpeg;base64,/9j/4AAQ"}}]},
                  {"role":"assistant","content":"Checking.","tool_calls":[
                    {"id":"tooluse_1","type":"function","function":{"name":"weather","arguments":"{\"city\":\"Paris\"}"}}]},
                  {"role":"tool","tool_call_id":"tooluse_1","content":"{\"celsius\":18}"},
                  {"role":"user","content":"And Lyon?"}],
                 "tools":[{"type":"function","function":{"name":"weather","description":"Today's weather","parameters":{"type":"object"}}}],
                 "tool_choice":"required","stop":"END","temperature":0.5,"top_p":0.9,"user":"u-1"}
                """#), maxTokens: 300)
        #expect(body["system"] == .array([.object(["text": .string("You are terse.")])]))
        let messages = try #require(body["messages"]?.arrayValue)
        #expect(messages.compactMap { $0["role"]?.stringValue } == ["user", "assistant", "user"])
        #expect(messages[0]["content"]?.arrayValue?.last?["image"] == .object([
            "format": .string("jpeg"), "source": .object(["bytes": .string("/9j/4AAQ")]),
        ]))
        #expect(messages[1]["content"]?.arrayValue?.last?["toolUse"]?["input"] == .object(["city": .string("Paris")]))
        let results = try #require(messages[2]["content"]?.arrayValue)
        #expect(results.first?["toolResult"] == .object([
            "toolUseId": .string("tooluse_1"), "content": .array([.object(["json": .object(["celsius": .number(18)])])]),
        ]))
        #expect(results.last == .object(["text": .string("And Lyon?")]))
        #expect(body["toolConfig"]?["toolChoice"] == .object(["any": .object([:])]))
        #expect(body["toolConfig"]?["tools"]?.arrayValue?.first?["toolSpec"]?["inputSchema"] == .object(["json": .object(["type": .string("object")])]))
        let inference = try #require(body["inferenceConfig"])
        #expect(inference["maxTokens"] == .number(300) && inference["stopSequences"] == .array([.string("END")]))
        #expect(inference["temperature"] == .number(try #require(Decimal(string: "0.5"))))

        for (text, code, param) in [
            (#"{"n":2,"messages":[{"role":"user","content":"hi"}]}"#, "n_not_supported", "n"),
            (#"{"seed":7,"messages":[{"role":"user","content":"hi"}]}"#, "unsupported_parameter", "seed"),
            (#"{"response_format":{"type":"json_object"},"messages":[{"role":"user","content":"hi"}]}"#, "unsupported_parameter", "response_format"),
            (#"{"tools":[{"type":"function","function":{"name":"f"}}],"tool_choice":"none","messages":[{"role":"user","content":"hi"}]}"#,
             "unsupported_parameter", "tool_choice"),
            (#"{"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/bmp;base64,Qk0="}}]}]}"#,
             "unsupported_content", "messages[0].content[0]"),
            (#"{"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"https://example.com/a.png"}}]}]}"#,
             "image_url_not_supported", "messages[0].content[0]"),
        ] {
            let error = try #require(throws: APIError.self) { try BedrockRequest.body(try AnthropicProviderTests.json(text), maxTokens: 10) }
            #expect(error.code == code && error.param == param, "\(text)")
        }
    }

    @Test("A Converse answer as a chat completion; Bedrock's errors in OpenAI's shape")
    func completion() throws {
        let answer = try #require(
            BedrockAnswer.completion(
                ByteBuffer(
                    string: #"{"output":{"message":{"role":"assistant","content":[{"reasoningContent":{"reasoningText":{"text":"hm"}}},{"text":"Checking."},{"toolUse":{"toolUseId":"tooluse_1","name":"weather","input":{"city":"Paris"}}}]}},"stopReason":"tool_use","usage":{"inputTokens":20,"outputTokens":9,"totalTokens":29,"cacheReadInputTokens":100,"cacheWriteInputTokens":30},"metrics":{"latencyMs":400}}"#
                ), model: "claude", id: "chatcmpl-r", created: 7))
        #expect(answer.reported == .init(input: 20, cachedInput: 100, cacheWrite: 30, output: 9))
        let json = try #require(try JSONSerialization.jsonObject(with: Data(answer.body.readableBytesView)) as? [String: Any])
        let choice = try #require((json["choices"] as? [[String: Any]])?.first)
        #expect(choice["finish_reason"] as? String == "tool_calls")
        let message = try #require(choice["message"] as? [String: Any])
        #expect(message["content"] as? String == "Checking.")
        #expect((message["tool_calls"] as? [[String: Any]])?.first?["id"] as? String == "tooluse_1")
        let usage = try #require(json["usage"] as? [String: Any])
        #expect(usage["prompt_tokens"] as? Int == 150 && (usage["prompt_tokens_details"] as? [String: Any])?["cached_tokens"] as? Int == 100)
        #expect(
            String(buffer: BedrockAnswer.error(ByteBuffer(string: #"{"message":"The model returned an error."}"#), status: 429))
                == #"{"error":{"message":"The model returned an error.","type":"throttling_exception","param":null,"code":"throttling_exception"}}"#)
    }

    /// A Converse stream as Bedrock frames it.
    static func converseStream(exception: Bool = false) -> ByteBuffer {
        func event(_ type: String, _ payload: String) -> ByteBuffer {
            EventStreamEncoder.message(
                headers: [(":event-type", type), (":content-type", "application/json"), (":message-type", "event")], payload: ByteBuffer(string: payload))
        }
        var out = ByteBuffer()
        var events = [
            event("messageStart", #"{"role":"assistant"}"#),
            event("contentBlockDelta", #"{"contentBlockIndex":0,"delta":{"text":"Let me "}}"#),
            event("contentBlockDelta", #"{"contentBlockIndex":0,"delta":{"text":"check."}}"#),
            event("contentBlockStop", #"{"contentBlockIndex":0}"#),
            event("contentBlockStart", #"{"contentBlockIndex":1,"start":{"toolUse":{"toolUseId":"tooluse_a","name":"weather"}}}"#),
            event("contentBlockDelta", #"{"contentBlockIndex":1,"delta":{"toolUse":{"input":"{\"city\": "}}}"#),
            event("contentBlockDelta", #"{"contentBlockIndex":1,"delta":{"toolUse":{"input":"\"Paris\"}"}}}"#),
            event("contentBlockStop", #"{"contentBlockIndex":1}"#),
            event("messageStop", #"{"stopReason":"tool_use"}"#),
            event("metadata", #"{"usage":{"inputTokens":50,"outputTokens":42,"totalTokens":92,"cacheReadInputTokens":10},"metrics":{"latencyMs":1}}"#),
        ]
        if exception {
            events.insert(
                EventStreamEncoder.message(
                    headers: [(":exception-type", "modelStreamErrorException"), (":message-type", "exception")],
                    payload: ByteBuffer(string: #"{"message":"the model failed"}"#)), at: 3)
        }
        for var event in events { out.writeBuffer(&event) }
        return out
    }

    @Test("A stream as chunks: text, a tool call indexed from 0 with its arguments as they come, the finish, usage after messageStop, [DONE]")
    func stream() throws {
        let reader = BedrockAnswer.Stream(model: "claude", id: "chatcmpl-r", includeUsage: true, created: 1)
        var framing = EventStreamFraming()
        var out = ByteBuffer()
        var ended = false
        var bytes = Self.converseStream(exception: true)
        while let piece = bytes.readSlice(length: min(7, bytes.readableBytes)), piece.readableBytes > 0 {
            for event in try framing.feed(piece) where reader.relay(event, into: &out) { ended = true }
        }
        #expect(ended, "metadata ends the answer")
        let text = String(buffer: out)
        var chunks: [[String: Any]] = []
        var parser = SSEParser()
        for event in parser.feed(out) where !event.isDone {
            let data = try #require(event.data)
            chunks.append(try #require(try JSONSerialization.jsonObject(with: Data(data.utf8)) as? [String: Any]))
        }
        let deltas = chunks.compactMap { ($0["choices"] as? [[String: Any]])?.first?["delta"] as? [String: Any] }
        #expect(deltas.first?["role"] as? String == "assistant")
        #expect(deltas.compactMap { $0["content"] as? String }.joined() == "Let me check.")
        let calls = deltas.compactMap { ($0["tool_calls"] as? [[String: Any]])?.first }
        #expect(calls.map { $0["index"] as? Int } == [0, 0, 0])
        #expect(calls.compactMap { ($0["function"] as? [String: Any])?["arguments"] as? String }.joined() == #"{"city": "Paris"}"#)
        #expect(chunks.compactMap { ($0["choices"] as? [[String: Any]])?.first?["finish_reason"] as? String } == ["tool_calls"])
        #expect(chunks.contains { ($0["error"] as? [String: Any])?["message"] as? String == "the model failed" })
        #expect((chunks.last?["usage"] as? [String: Any])?["prompt_tokens"] as? Int == 60)
        #expect(text.hasSuffix("data: [DONE]\n\n") && reader.reported == .init(input: 50, cachedInput: 10, output: 42))
        // A stream cut before its metadata still ends for the caller, without usage.
        let cut = BedrockAnswer.Stream(model: "claude", id: "chatcmpl-r", includeUsage: true, created: 1)
        var rest = ByteBuffer()
        #expect(cut.finish(into: &rest) && String(buffer: rest) == "data: [DONE]\n\n" && cut.reported == nil)
    }

    final class Received: Sendable {
        let requests = Mutex<[(path: String, host: String?, headers: HTTPFields, body: ByteBuffer)]>([])
    }

    @Test("Through the gateway: signed chat, a signed stream from the event stream, metered from Bedrock's usage")
    func throughTheGateway() async throws {
        let received = Received()
        let router = Router()
        router.post("model/**") { request, _ -> Response in
            let body = try await request.body.collect(upTo: 1 << 20)
            received.requests.withLock { $0.append((request.uri.path, request.head.authority, request.headers, body)) }
            if request.uri.path.hasSuffix("/converse-stream") {
                return Response(
                    status: .ok, headers: [.contentType: "application/vnd.amazon.eventstream"], body: .init(byteBuffer: Self.converseStream()))
            }
            return Response(
                status: .ok, headers: [.contentType: "application/json"],
                body: .init(byteBuffer: ByteBuffer(string: #"{"output":{"message":{"role":"assistant","content":[{"text":"Bonjour"}]}},"stopReason":"end_turn","usage":{"inputTokens":12,"outputTokens":3,"totalTokens":15,"cacheReadInputTokens":4}}"#)))
        }
        let bedrock = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)))
        setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE", 1)
        setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", 1)
        setenv("AWS_SESSION_TOKEN", "session-1", 1)
        try await bedrock.test(.live) { upstream in
            let port = try #require(upstream.port)
            try await GatewayHarness.run(
                model: "claude", vendor: "Anthropic",
                backend: .with {
                    $0.id = "aws"
                    $0.provider = .bedrock
                    $0.baseURL = "http://127.0.0.1:\(port)"
                    $0.region = "eu-west-3"
                    $0.upstreamModel = "anthropic.claude-sonnet-4-5-v1:0"
                }
            ) { gateway, secret, keyID in
                let (status, body) = try await gateway.send(
                    .post, "/v1/chat/completions", json: #"{"model":"claude","messages":[{"role":"user","content":"Hi"}]}"#, as: .bearer(secret))
                #expect(status == 200, "\(body)")
                #expect(((body["choices"] as? [[String: Any]])?.first?["message"] as? [String: Any])?["content"] as? String == "Bonjour")
                let sent = try #require(received.requests.withLock { $0.first })
                #expect(sent.path == "/model/anthropic.claude-sonnet-4-5-v1%3A0/converse")
                let authorization = try #require(sent.headers[.authorization])
                #expect(authorization.hasPrefix("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/"))
                #expect(authorization.contains("/eu-west-3/bedrock/aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-security-token, "))
                let token = try #require(HTTPField.Name("x-amz-security-token"))
                let date = try #require(HTTPField.Name("x-amz-date"))
                #expect(sent.headers[token] == "session-1")
                // What arrived is what was signed: the same signature recomputed from the request as received.
                let stamp = try #require(sent.headers[date])
                let signedAt = try #require(Self.date(stamp))
                let again = SigV4.sign(
                    method: "POST", path: sent.path,
                    headers: [("host", try #require(sent.host)), ("content-type", try #require(sent.headers[.contentType]))],
                    body: sent.body.readableBytesView,
                    credentials: .init(accessKeyID: "AKIDEXAMPLE", secretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", sessionToken: "session-1"),
                    region: "eu-west-3", service: "bedrock",
                    date: signedAt)
                #expect(again.last?.1 == authorization)

                let streamed = try await gateway.raw(
                    .post, "/v1/chat/completions",
                    json: #"{"model":"claude","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"Weather?"}]}"#,
                    bearer: secret)
                let text = String(buffer: streamed.body)
                #expect(streamed.status == .ok && text.contains(#""finish_reason":"tool_calls""#) && text.hasSuffix("data: [DONE]\n\n"))
                #expect(received.requests.withLock { $0.last?.path } == "/model/anthropic.claude-sonnet-4-5-v1%3A0/converse-stream")
                #expect(received.requests.withLock { $0.last?.headers[.accept] } == "application/vnd.amazon.eventstream")

                var lines: [Lumen_Ledger_V1_UsageLine] = []
                for _ in 0..<200 {
                    lines = try await gateway.services.ledger.listUsage(.with { $0.filter.keyID = keyID }, metadata: gateway.tenant.metadata).lines
                    if lines.count == 2 && lines.allSatisfy({ $0.status == .settled }) { break }
                    try await Task.sleep(for: .milliseconds(10))
                }
                #expect(Set(lines.map { [$0.inputTokens, $0.cachedInputTokens, $0.outputTokens] }) == [[12, 4, 3], [50, 10, 42]])
                #expect(lines.allSatisfy { !$0.estimated && $0.backendID == "aws" })
            }
        }
        unsetenv("AWS_ACCESS_KEY_ID")
        unsetenv("AWS_SECRET_ACCESS_KEY")
        unsetenv("AWS_SESSION_TOKEN")
    }

    /// `20150830T123600Z` as a date.
    static func date(_ stamp: String) -> Date? {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "yyyyMMdd'T'HHmmss'Z'"
        return formatter.date(from: stamp)
    }
}
