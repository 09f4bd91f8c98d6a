import Foundation
import Hummingbird
import NIOCore
import WireFormats

/// A fast upstream for `bench/run.sh`: fixed answers, no work, so what the benchmark measures
/// is the path through Lumen. `POST /v1/chat/completions` answers JSON, or SSE (five content
/// chunks, the usage chunk when asked, `[DONE]`) when `"stream": true`; `POST /v1/messages`
/// the same answer in Anthropic's format (a message, or its events); Azure OpenAI's deployment
/// routes the OpenAI answers; Gemini's `generateContent` / `streamGenerateContent` and Bedrock's
/// `converse` / `converse-stream` (AWS's event stream; signatures are not checked) the same
/// answer in their formats.
///
/// Usage: bench-upstream [port]   (default 9700, loopback only)
@main
struct MockUpstream {
    static let completion = ByteBuffer(string: """
        {"id":"chatcmpl-bench","object":"chat.completion","created":1,"model":"bench","choices":[{"index":0,"message":{"role":"assistant","content":"Hello from the benchmark upstream."},"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":7,"total_tokens":19}}
        """)

    static func stream(usage: Bool) -> ByteBuffer {
        var text = ""
        for word in ["Hello", " from", " the", " benchmark", " upstream."] {
            text += #"data: {"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1,"model":"bench","choices":[{"index":0,"delta":{"content":"\#(word)"},"finish_reason":null}]}"# + "\n\n"
        }
        text += #"data: {"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1,"model":"bench","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"# + "\n\n"
        if usage {
            text += #"data: {"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1,"model":"bench","choices":[],"usage":{"prompt_tokens":12,"completion_tokens":7,"total_tokens":19}}"# + "\n\n"
        }
        return ByteBuffer(string: text + "data: [DONE]\n\n")
    }

    /// Anthropic's Messages API (`POST /v1/messages`), for Lumen's `anthropic` backends.
    static let message = ByteBuffer(string: """
        {"id":"msg_bench","type":"message","role":"assistant","model":"bench","content":[{"type":"text","text":"Hello from the benchmark upstream."}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":12,"output_tokens":7}}
        """)

    /// The same answer as Anthropic streams it.
    static let events: ByteBuffer = {
        var text = #"event: message_start\#ndata: {"type":"message_start","message":{"id":"msg_bench","type":"message","role":"assistant","model":"bench","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":12,"output_tokens":1}}}"# + "\n\n"
        text += #"event: content_block_start\#ndata: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"# + "\n\n"
        for word in ["Hello", " from", " the", " benchmark", " upstream."] {
            text += #"event: content_block_delta\#ndata: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"\#(word)"}}"# + "\n\n"
        }
        text += #"event: content_block_stop\#ndata: {"type":"content_block_stop","index":0}"# + "\n\n"
        text += #"event: message_delta\#ndata: {"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":7}}"# + "\n\n"
        text += #"event: message_stop\#ndata: {"type":"message_stop"}"# + "\n\n"
        return ByteBuffer(string: text)
    }()

    /// Gemini's `GenerateContentResponse`, whole and as `alt=sse` chunks.
    static let gemini = ByteBuffer(string: """
        {"candidates":[{"content":{"role":"model","parts":[{"text":"Hello from the benchmark upstream."}]},"finishReason":"STOP","index":0}],"usageMetadata":{"promptTokenCount":12,"candidatesTokenCount":7,"totalTokenCount":19},"modelVersion":"bench"}
        """)
    static let geminiStream: ByteBuffer = {
        let words = ["Hello", " from", " the", " benchmark", " upstream."]
        var text = ""
        for (index, word) in words.enumerated() {
            let finish = index == words.count - 1 ? #","finishReason":"STOP""# : ""
            text += #"data: {"candidates":[{"content":{"role":"model","parts":[{"text":"\#(word)"}]}\#(finish),"index":0}],"usageMetadata":{"promptTokenCount":12,"candidatesTokenCount":\#(index + 1),"totalTokenCount":\#(13 + index)},"modelVersion":"bench"}"# + "\r\n\r\n"
        }
        return ByteBuffer(string: text)
    }()

    /// Bedrock's `ConverseResponse`, whole and as ConverseStream's event stream.
    static let converse = ByteBuffer(string: """
        {"output":{"message":{"role":"assistant","content":[{"text":"Hello from the benchmark upstream."}]}},"stopReason":"end_turn","usage":{"inputTokens":12,"outputTokens":7,"totalTokens":19},"metrics":{"latencyMs":1}}
        """)
    static let converseStream: ByteBuffer = {
        func event(_ type: String, _ payload: String) -> ByteBuffer {
            EventStreamEncoder.message(
                headers: [(":event-type", type), (":content-type", "application/json"), (":message-type", "event")], payload: ByteBuffer(string: payload))
        }
        var events = [event("messageStart", #"{"role":"assistant"}"#)]
        for word in ["Hello", " from", " the", " benchmark", " upstream."] {
            events.append(event("contentBlockDelta", #"{"contentBlockIndex":0,"delta":{"text":"\#(word)"}}"#))
        }
        events.append(event("contentBlockStop", #"{"contentBlockIndex":0}"#))
        events.append(event("messageStop", #"{"stopReason":"end_turn"}"#))
        events.append(event("metadata", #"{"usage":{"inputTokens":12,"outputTokens":7,"totalTokens":19},"metrics":{"latencyMs":1}}"#))
        var out = ByteBuffer()
        for var event in events { out.writeBuffer(&event) }
        return out
    }()

    static func main() async throws {
        let port = CommandLine.arguments.dropFirst().first.flatMap(Int.init) ?? 9700
        let streamWithUsage = stream(usage: true)
        let streamWithout = stream(usage: false)
        let router = Router()
        @Sendable func chat(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
            let body = try await request.body.collect(upTo: 1 << 20)
            let text = String(buffer: body)
            if text.contains(#""stream":true"#) || text.contains(#""stream": true"#) {
                let usage = text.contains(#""include_usage":true"#) || text.contains(#""include_usage": true"#)
                return Response(
                    status: .ok, headers: [.contentType: "text/event-stream"],
                    body: .init(byteBuffer: usage ? streamWithUsage : streamWithout))
            }
            return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: completion))
        }
        router.post("v1/chat/completions", use: chat)
        router.post("openai/deployments/:deployment/chat/completions", use: chat)
        let (gemini, geminiStream, converse, converseStream) = (Self.gemini, Self.geminiStream, Self.converse, Self.converseStream)
        router.post("v1beta/models/:method") { request, _ -> Response in
            _ = try await request.body.collect(upTo: 1 << 20)
            if request.uri.path.hasSuffix(":streamGenerateContent") {
                return Response(status: .ok, headers: [.contentType: "text/event-stream"], body: .init(byteBuffer: geminiStream))
            }
            return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: gemini))
        }
        router.post("model/:model/converse") { request, _ -> Response in
            _ = try await request.body.collect(upTo: 1 << 20)
            return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: converse))
        }
        router.post("model/:model/converse-stream") { request, _ -> Response in
            _ = try await request.body.collect(upTo: 1 << 20)
            return Response(status: .ok, headers: [.contentType: "application/vnd.amazon.eventstream"], body: .init(byteBuffer: converseStream))
        }
        let message = Self.message
        let events = Self.events
        router.post("v1/messages") { request, _ -> Response in
            let body = String(buffer: try await request.body.collect(upTo: 1 << 20))
            if body.contains(#""stream":true"#) || body.contains(#""stream": true"#) {
                return Response(status: .ok, headers: [.contentType: "text/event-stream"], body: .init(byteBuffer: events))
            }
            return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: message))
        }
        let app = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: port)))
        try await app.runService()
    }
}
