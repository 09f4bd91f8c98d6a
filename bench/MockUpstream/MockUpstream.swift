import Foundation
import Hummingbird
import NIOCore

/// A fast OpenAI-compatible upstream for `bench/run.sh`: fixed answers, no work, so what the
/// benchmark measures is the path through Lumen. `POST /v1/chat/completions` answers JSON, or
/// SSE (five content chunks, the usage chunk when asked, `[DONE]`) when `"stream": true`.
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
        let app = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: port)))
        try await app.runService()
    }
}
