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

/// Gemini as an upstream: OpenAI chat and embeddings requests as Google's Gemini API takes
/// them, and its answers, streams and errors back as OpenAI's — the traps peers fell into
/// (function results without the function's name, thought signatures lost between turns,
/// thinking tokens unbilled, cached tokens billed twice, a stream that ends without `[DONE]`)
/// checked one by one.
@Suite("Gemini as an upstream")
struct GeminiProviderTests {
    static func translated(_ text: String) throws -> JSONValue {
        try GeminiRequest.body(try AnthropicProviderTests.json(text))
    }

    @Test("System instruction, turns as user and model, tool calls with their signatures and named results, tools, choice, generation config")
    func request() throws {
        let body = try Self.translated(
            #"""
            {"model":"gemini","messages":[
              {"role":"system","content":"You are terse."},
              {"role":"developer","content":[{"type":"text","text":"Answer in French."}]},
              {"role":"user","content":"Weather in Paris and Lyon?"},
              {"role":"assistant","content":null,"tool_calls":[
                {"id":"call_0_0__thought__c2ln","type":"function","function":{"name":"weather","arguments":"{\"city\":\"Paris\"}"}},
                {"id":"call_0_1","type":"function","function":{"name":"weather","arguments":"{\"city\":\"Lyon\"}"}}]},
              {"role":"tool","tool_call_id":"call_0_0__thought__c2ln","content":"{\"celsius\":18}"},
              {"role":"tool","tool_call_id":"call_0_1","content":"21C"},
              {"role":"user","content":[{"type":"text","text":"And this?"},{"type":"image_url","image_url":{"url":"data:image/png;base64,iVBORw0K"}}]}],
             "tools":[{"type":"function","function":{"name":"weather","description":"Today's weather","parameters":{"type":"object","additionalProperties":false,"properties":{"city":{"type":"string"}}}}}],
             "tool_choice":{"type":"function","function":{"name":"weather"}},"stop":["END"],"temperature":0.2,"top_p":0.9,
             "max_completion_tokens":300,"n":2,"seed":7,"presence_penalty":0.5,
             "response_format":{"type":"json_schema","json_schema":{"name":"w","schema":{"type":"object"}}},
             "reasoning_effort":"low","user":"u-1","parallel_tool_calls":true}
            """#)
        #expect(body["systemInstruction"]?["parts"]?.arrayValue?.compactMap { $0["text"]?.stringValue } == ["You are terse.", "Answer in French."])
        let contents = try #require(body["contents"]?.arrayValue)
        #expect(contents.compactMap { $0["role"]?.stringValue } == ["user", "model", "user"])
        let calls = try #require(contents[1]["parts"]?.arrayValue)
        #expect(calls.map { $0["functionCall"]?["name"] } == [.string("weather"), .string("weather")])
        #expect(calls[0]["functionCall"]?["args"]?["city"] == .string("Paris"))
        #expect(calls[0]["thoughtSignature"] == .string("c2ln") && calls[1]["thoughtSignature"] == nil, "the signature goes back with its call")
        // Both results and the next user turn in one user turn, each result named after its call.
        let results = try #require(contents[2]["parts"]?.arrayValue)
        #expect(results.count == 4)
        #expect(results[0]["functionResponse"] == .object(["name": .string("weather"), "response": .object(["celsius": .number(18)])]))
        #expect(results[1]["functionResponse"]?["response"] == .object(["content": .string("21C")]))
        #expect(results[3]["inlineData"] == .object(["mimeType": .string("image/png"), "data": .string("iVBORw0K")]))
        let declaration = try #require(body["tools"]?.arrayValue?.first?["functionDeclarations"]?.arrayValue?.first)
        #expect(declaration["name"] == .string("weather") && declaration["description"] == .string("Today's weather"))
        #expect(declaration["parametersJsonSchema"]?["additionalProperties"] == .bool(false), "JSON Schema as it is, nothing stripped")
        #expect(
            body["toolConfig"]
                == .object(["functionCallingConfig": .object(["mode": .string("ANY"), "allowedFunctionNames": .array([.string("weather")])])]))
        let config = try #require(body["generationConfig"])
        #expect(config["stopSequences"] == .array([.string("END")]) && config["maxOutputTokens"] == .number(300))
        #expect(config["temperature"] == .number(try #require(Decimal(string: "0.2"))))
        #expect(config["topP"] == .number(try #require(Decimal(string: "0.9"))))
        #expect(config["candidateCount"] == .number(2) && config["seed"] == .number(7))
        #expect(config["presencePenalty"] == .number(try #require(Decimal(string: "0.5"))))
        #expect(config["responseMimeType"] == .string("application/json") && config["responseJsonSchema"] == .object(["type": .string("object")]))
        #expect(config["thinkingConfig"] == .object(["thinkingBudget": .number(1_024)]))
        #expect(body["model"] == nil && body["stream"] == nil, "the model and the stream are in the URL")

        let plain = try Self.translated(#"{"messages":[{"role":"user","content":"hi"}],"tool_choice":"required","response_format":{"type":"json_object"}}"#)
        #expect(plain["toolConfig"] == .object(["functionCallingConfig": .object(["mode": .string("ANY")])]))
        #expect(plain["generationConfig"] == .object(["responseMimeType": .string("application/json")]))
    }

    @Test("What Gemini cannot take is refused with a 400 that names it")
    func refusals() throws {
        for (text, code, param) in [
            (#"{"logprobs":true,"messages":[{"role":"user","content":"hi"}]}"#, "unsupported_parameter", "logprobs"),
            (#"{"logit_bias":{"42":5},"messages":[{"role":"user","content":"hi"}]}"#, "unsupported_parameter", "logit_bias"),
            (#"{"parallel_tool_calls":false,"messages":[{"role":"user","content":"hi"}]}"#, "unsupported_parameter", "parallel_tool_calls"),
            (#"{"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"https://example.com/cat.png"}}]}]}"#,
             "image_url_not_supported", "messages[0].content[0]"),
            (#"{"messages":[{"role":"user","content":[{"type":"input_audio","input_audio":{}}]}]}"#, "unsupported_content", "messages[0].content[0]"),
            (#"{"messages":[{"role":"user","content":"hi"},{"role":"tool","tool_call_id":"nope","content":"18C"}]}"#, "invalid_messages", "messages[1].tool_call_id"),
            (#"{"messages":[{"role":"system","content":"only a system prompt"}]}"#, "invalid_messages", "messages"),
            (#"{"reasoning_effort":"extreme","messages":[{"role":"user","content":"hi"}]}"#, "invalid_reasoning_effort", "reasoning_effort"),
            (#"{"response_format":{"type":"xml"},"messages":[{"role":"user","content":"hi"}]}"#, "invalid_response_format", "response_format"),
        ] {
            let error = try #require(throws: APIError.self) { try Self.translated(text) }
            #expect(error.code == code && error.param == param, "\(text)")
            #expect(error.status == .badRequest)
        }
        // Neutral values of what Gemini lacks are no reason to refuse.
        _ = try Self.translated(#"{"logprobs":false,"logit_bias":{},"messages":[{"role":"user","content":"hi"}]}"#)
        let tokens = try #require(throws: APIError.self) {
            try GeminiRequest.embeddings(try AnthropicProviderTests.json(#"{"input":[[1,2,3]]}"#), model: "text-embedding-004")
        }
        #expect(tokens.code == "unsupported_input")
    }

    @Test("An answer as a chat completion: each candidate a choice, thoughts left out, calls with ids and signatures, usage with cached and thinking tokens")
    func completion() throws {
        let body = ByteBuffer(
            string: #"""
                {"candidates":[
                  {"index":0,"finishReason":"STOP","content":{"role":"model","parts":[
                    {"text":"I should check.","thought":true},{"text":"Checking."},
                    {"functionCall":{"name":"weather","args":{"city":"Paris"}},"thoughtSignature":"c2ln"},
                    {"functionCall":{"name":"weather","args":{"city":"Lyon"}}}]}},
                  {"index":1,"finishReason":"MAX_TOKENS","content":{"role":"model","parts":[{"text":"Paris is"}]}}],
                 "usageMetadata":{"promptTokenCount":100,"cachedContentTokenCount":40,"candidatesTokenCount":20,"thoughtsTokenCount":15,"totalTokenCount":135},
                 "modelVersion":"gemini-2.5-flash","responseId":"r-1"}
                """#)
        let answer = try #require(GeminiAnswer.completion(body, model: "gemini", id: "chatcmpl-x", created: 7))
        #expect(answer.reported == .init(input: 60, cachedInput: 40, output: 35), "thinking is output; the cached part priced apart")
        #expect(answer.text == "Checking.Paris is")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(answer.body.readableBytesView)) as? [String: Any])
        #expect(json["model"] as? String == "gemini" && json["id"] as? String == "chatcmpl-r-1")
        let choices = try #require(json["choices"] as? [[String: Any]])
        #expect(choices.map { $0["finish_reason"] as? String } == ["tool_calls", "length"])
        let message = try #require(choices[0]["message"] as? [String: Any])
        #expect(message["content"] as? String == "Checking.")
        let calls = try #require(message["tool_calls"] as? [[String: Any]])
        #expect(calls.map { $0["id"] as? String } == ["call_0_0__thought__c2ln", "call_0_1"])
        #expect(calls.map { ($0["function"] as? [String: Any])?["arguments"] as? String } == [#"{"city":"Paris"}"#, #"{"city":"Lyon"}"#])
        let usage = try #require(json["usage"] as? [String: Any])
        #expect(usage["prompt_tokens"] as? Int == 100 && usage["completion_tokens"] as? Int == 35 && usage["total_tokens"] as? Int == 135)
        #expect((usage["prompt_tokens_details"] as? [String: Any])?["cached_tokens"] as? Int == 40)
        #expect((usage["completion_tokens_details"] as? [String: Any])?["reasoning_tokens"] as? Int == 15)

        // A blocked prompt: one empty choice, content_filter.
        let blocked = try #require(
            GeminiAnswer.completion(
                ByteBuffer(string: #"{"promptFeedback":{"blockReason":"SAFETY"},"usageMetadata":{"promptTokenCount":9}}"#), model: "g",
                id: "chatcmpl-y", created: 7))
        #expect(String(buffer: blocked.body).contains(#""finish_reason":"content_filter""#))
        #expect(blocked.reported == .init(input: 9, output: 0))
        // Google's errors in OpenAI's shape.
        let error = GeminiAnswer.error(
            ByteBuffer(string: #"{"error":{"code":400,"message":"API key not valid.","status":"INVALID_ARGUMENT"}}"#))
        #expect(String(buffer: error) == #"{"error":{"message":"API key not valid.","type":"invalid_argument","param":null,"code":"invalid_argument"}}"#)
    }

    static let events = [
        #"{"candidates":[{"content":{"role":"model","parts":[{"text":"Let me "}]},"index":0}],"usageMetadata":{"promptTokenCount":50,"candidatesTokenCount":2,"totalTokenCount":52}}"#,
        #"{"candidates":[{"content":{"role":"model","parts":[{"text":"check."}]},"index":0}],"usageMetadata":{"promptTokenCount":50,"candidatesTokenCount":4,"totalTokenCount":54}}"#,
        #"{"candidates":[{"content":{"role":"model","parts":[{"functionCall":{"name":"weather","args":{"city":"Paris"}},"thoughtSignature":"c2ln"},{"functionCall":{"name":"weather","args":{"city":"Lyon"}}}]},"finishReason":"STOP","index":0}],"usageMetadata":{"promptTokenCount":50,"cachedContentTokenCount":10,"candidatesTokenCount":30,"thoughtsTokenCount":12,"totalTokenCount":92}}"#,
    ]

    /// The chunks a Gemini stream turns into, as JSON objects, and whether `[DONE]` came.
    static func chunks(_ reader: any ProviderStream) throws -> (chunks: [[String: Any]], done: Bool) {
        var parser = SSEParser()
        var out = ByteBuffer()
        for event in parser.feed(ByteBuffer(string: events.map { "data: \($0)\r\n\r\n" }.joined())) {
            #expect(!reader.relay(event, into: &out), "Gemini's stream has no event that ends it")
        }
        #expect(reader.finish(into: &out), "the upstream's end ends the answer")
        var chunks: [[String: Any]] = []
        var done = false
        var again = SSEParser()
        for event in again.feed(out) {
            if event.isDone { done = true; continue }
            let data = try #require(event.data)
            chunks.append(try #require(try JSONSerialization.jsonObject(with: Data(data.utf8)) as? [String: Any]))
        }
        return (chunks, done)
    }

    @Test("A stream as chunks: the role first, text as it comes, whole tool calls indexed from 0, the finish, usage and [DONE] at the end")
    func stream() throws {
        let reader = GeminiAnswer.Stream(model: "gemini", id: "chatcmpl-r", includeUsage: true, created: 1)
        let (chunks, done) = try Self.chunks(reader)
        #expect(done)
        #expect(chunks.allSatisfy { $0["model"] as? String == "gemini" && $0["id"] as? String == "chatcmpl-r" })
        let deltas = chunks.compactMap { ($0["choices"] as? [[String: Any]])?.first?["delta"] as? [String: Any] }
        #expect(deltas.first?["role"] as? String == "assistant")
        #expect(deltas.compactMap { $0["content"] as? String }.joined() == "Let me check.")
        let calls = deltas.compactMap { ($0["tool_calls"] as? [[String: Any]])?.first }
        #expect(calls.map { $0["index"] as? Int } == [0, 1])
        #expect(calls.compactMap { $0["id"] as? String } == ["call_0_0__thought__c2ln", "call_0_1"])
        let finishes = chunks.compactMap { ($0["choices"] as? [[String: Any]])?.first?["finish_reason"] as? String }
        #expect(finishes == ["tool_calls"])
        let usage = try #require(chunks.last?["usage"] as? [String: Any])
        #expect(usage["prompt_tokens"] as? Int == 50 && usage["completion_tokens"] as? Int == 42)
        #expect(reader.reported == .init(input: 40, cachedInput: 10, output: 42))
        #expect(reader.text() == "Let me check.")
        let quiet = GeminiAnswer.Stream(model: "gemini", id: "chatcmpl-r", includeUsage: false, created: 1)
        #expect(try Self.chunks(quiet).chunks.allSatisfy { $0["usage"] == nil } && quiet.reported != nil)
    }

    final class Received: Sendable {
        let requests = Mutex<[(path: String, query: String?, headers: HTTPFields, body: JSONValue)]>([])
    }

    @Test("Through the gateway: chat, a stream, embeddings and a /v1/messages stream, metered from Gemini's usage")
    func throughTheGateway() async throws {
        let received = Received()
        let router = Router()
        router.post("v1beta/models/**") { request, _ -> Response in
            let body = try JSONValue.parse(try await request.body.collect(upTo: 1 << 20))
            received.requests.withLock { $0.append((request.uri.path, request.uri.query, request.headers, body)) }
            let path = request.uri.path
            let json: String
            if path.hasSuffix(":streamGenerateContent") {
                return Response(
                    status: .ok, headers: [.contentType: "text/event-stream"],
                    body: .init(byteBuffer: ByteBuffer(string: Self.events.map { "data: \($0)\r\n\r\n" }.joined())))
            } else if path.hasSuffix(":batchEmbedContents") {
                json = #"{"embeddings":[{"values":[0.5,-0.25]},{"values":[1,0]}]}"#
            } else if path.hasSuffix(":embedContent") {
                json = #"{"embedding":{"values":[0.5,-0.25]}}"#
            } else {
                json = #"{"candidates":[{"content":{"role":"model","parts":[{"text":"Bonjour"}]},"finishReason":"STOP","index":0}],"usageMetadata":{"promptTokenCount":12,"cachedContentTokenCount":4,"candidatesTokenCount":3,"thoughtsTokenCount":5}}"#
            }
            return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: json)))
        }
        let gemini = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)))
        setenv("LUMEN_TEST_GEMINI_KEY", "AIza-test", 1)
        try await gemini.test(.live) { upstream in
            let port = try #require(upstream.port)
            try await GatewayHarness.run(
                model: "gemini", vendor: "Google", scenes: [.chat, .embedding],
                backend: .with {
                    $0.id = "google"
                    $0.provider = .gemini
                    $0.baseURL = "http://127.0.0.1:\(port)"
                    $0.upstreamModel = "gemini-2.5-flash"
                    $0.credentialEnv = "LUMEN_TEST_GEMINI_KEY"
                }
            ) { gateway, secret, keyID in
                let (status, body) = try await gateway.send(
                    .post, "/v1/chat/completions", json: #"{"model":"gemini","messages":[{"role":"user","content":"Hi"}]}"#, as: .bearer(secret))
                #expect(status == 200, "\(body)")
                #expect(((body["choices"] as? [[String: Any]])?.first?["message"] as? [String: Any])?["content"] as? String == "Bonjour")
                let sent = try #require(received.requests.withLock { $0.first })
                #expect(sent.path == "/v1beta/models/gemini-2.5-flash:generateContent")
                let apiKey = try #require(HTTPField.Name("x-goog-api-key"))
                #expect(sent.headers[apiKey] == "AIza-test" && sent.headers[.authorization] == nil)
                #expect(sent.body["contents"]?.arrayValue?.first?["parts"]?.arrayValue?.first?["text"] == .string("Hi"))

                let streamed = try await gateway.raw(
                    .post, "/v1/chat/completions",
                    json: #"{"model":"gemini","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"Weather?"}]}"#,
                    bearer: secret)
                let text = String(buffer: streamed.body)
                #expect(streamed.status == .ok && text.contains(#""finish_reason":"tool_calls""#) && text.contains(#""completion_tokens":42"#))
                #expect(text.hasSuffix("data: [DONE]\n\n"))
                let streamedTo = try #require(received.requests.withLock { $0.last })
                #expect(streamedTo.path == "/v1beta/models/gemini-2.5-flash:streamGenerateContent" && streamedTo.query == "alt=sse")

                let (one, vector) = try await gateway.send(.post, "/v1/embeddings", json: #"{"model":"gemini","input":"hello"}"#, as: .bearer(secret))
                #expect(one == 200 && (vector["data"] as? [[String: Any]])?.first?["embedding"] as? [Double] == [0.5, -0.25], "\(vector)")
                #expect(received.requests.withLock { $0.last?.body["model"] } == .string("models/gemini-2.5-flash"))
                let (two, vectors) = try await gateway.send(
                    .post, "/v1/embeddings", json: #"{"model":"gemini","input":["a","b"],"dimensions":2,"encoding_format":"base64"}"#,
                    as: .bearer(secret))
                #expect(two == 200 && (vectors["data"] as? [[String: Any]])?.count == 2, "\(vectors)")
                // 0.5 and -0.25 as little-endian float32.
                #expect((vectors["data"] as? [[String: Any]])?.first?["embedding"] as? String == "AAAAPwAAgL4=")
                let batch = try #require(received.requests.withLock { $0.last })
                #expect(batch.path.hasSuffix(":batchEmbedContents"))
                #expect(batch.body["requests"]?.arrayValue?.first?["outputDimensionality"] == .number(2))

                // A Claude Code–style caller of /v1/messages, streamed: Anthropic's events end to end.
                let messages = try await gateway.raw(
                    .post, "/v1/messages",
                    json: #"{"model":"gemini","max_tokens":100,"stream":true,"messages":[{"role":"user","content":"Weather?"}]}"#,
                    bearer: secret)
                let events = String(buffer: messages.body)
                #expect(messages.status == .ok && events.contains("event: message_start") && events.contains(#""stop_reason":"tool_use""#))
                #expect(events.contains(#""name":"weather""#) && events.hasSuffix("event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"))

                // Metered from Gemini's usage: cached input apart, thinking as output; embeddings as Lumen counts them.
                var lines: [Lumen_Ledger_V1_UsageLine] = []
                for _ in 0..<200 {
                    lines = try await gateway.services.ledger.listUsage(.with { $0.filter.keyID = keyID }, metadata: gateway.tenant.metadata).lines
                    if lines.count == 5 && lines.allSatisfy({ $0.status == .settled }) { break }
                    try await Task.sleep(for: .milliseconds(10))
                }
                let chats = lines.filter { !$0.estimated }.map { [$0.inputTokens, $0.cachedInputTokens, $0.outputTokens] }
                #expect(chats.sorted { $0[0] < $1[0] } == [[8, 4, 8], [40, 10, 42], [40, 10, 42]])
                #expect(lines.filter(\.estimated).count == 2 && lines.allSatisfy { $0.backendID == "google" })
            }
        }
    }

    @Test("URLs: the API version added unless the base has one, models/ dropped, the name escaped")
    func urls() {
        #expect(GeminiProvider.url("https://generativelanguage.googleapis.com/", "models/x:generateContent")
            == "https://generativelanguage.googleapis.com/v1beta/models/x:generateContent")
        #expect(GeminiProvider.url("https://proxy.example/v1", "models/x") == "https://proxy.example/v1/models/x")
        #expect(GeminiProvider.modelName("models/gemini-2.5-pro") == "gemini-2.5-pro")
        #expect(GeminiProvider.modelName("tuned model?") == "tuned%20model%3F")
    }
}
