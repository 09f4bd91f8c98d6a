import Foundation
import Hummingbird
import NIOCore

/// A fast upstream for `bench/run.sh`: fixed answers, no work, so what the benchmark measures
/// is the path through Lumen. `POST /v1/chat/completions` answers JSON, or SSE (five content
/// chunks, the usage chunk when asked, `[DONE]`) when `"stream": true`; `POST /v1/messages`
/// the same answer in Anthropic's format (a message, or its events).
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

    static func main() async throws {
        let port = CommandLine.arguments.dropFirst().first.flatMap(Int.init) ?? 9700
        let streamWithUsage = stream(usage: true)
        let streamWithout = stream(usage: false)
        let router = Router()
        router.post("v1/chat/completions") { request, _ -> Response in
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
