import NIOCore
import WireFormats

/// OpenAI's chat answers as the translating providers (Anthropic, Gemini, Bedrock) write them:
/// a whole completion, a stream's chunks, an error — each written once, here.
enum OpenAIChatWriter {
    /// One choice of a whole completion.
    struct Choice {
        var index = 0
        var text: String
        var calls: [ToolCall] = []
        var finishReason: String
    }

    struct ToolCall {
        var id: String
        var name: String
        var arguments: String
    }

    /// A `chat.completion`; `usage` writes its usage object.
    static func completion(
        id: String, model: String, created: Int64, choices: [Choice], usage: (inout ByteBuffer) -> Void
    ) -> ByteBuffer {
        var out = ByteBuffer()
        var completion = JSONMembers(opening: &out)
        completion.string("id", id, in: &out)
        completion.string("object", "chat.completion", in: &out)
        completion.number("created", "\(created)", in: &out)
        completion.string("model", model, in: &out)
        completion.array("choices", choices, in: &out) { choice, out in
            var members = JSONMembers(opening: &out)
            members.number("index", "\(choice.index)", in: &out)
            members.name("message", in: &out)
            var reply = JSONMembers(opening: &out)
            reply.string("role", "assistant", in: &out)
            reply.string("content", choice.text.isEmpty && !choice.calls.isEmpty ? nil : choice.text, in: &out)
            if !choice.calls.isEmpty {
                reply.array("tool_calls", choice.calls, in: &out) { call, out in
                    toolCall(id: call.id, name: call.name, arguments: call.arguments, to: &out)
                }
            }
            reply.string("refusal", nil, in: &out)
            reply.close(&out)
            members.string("logprobs", nil, in: &out)
            members.string("finish_reason", choice.finishReason, in: &out)
            members.close(&out)
        }
        completion.name("usage", in: &out)
        usage(&out)
        completion.close(&out)
        return out
    }

    /// A tool call: whole (`id` given, `type` with it), or a stream's delta of one (`index`).
    static func toolCall(index: Int? = nil, id: String?, name: String?, arguments: String, to out: inout ByteBuffer) {
        var call = JSONMembers(opening: &out)
        if let index { call.number("index", "\(index)", in: &out) }
        if let id { call.string("id", id, in: &out) }
        if id != nil { call.string("type", "function", in: &out) }
        call.name("function", in: &out)
        var function = JSONMembers(opening: &out)
        if let name { function.string("name", name, in: &out) }
        function.string("arguments", arguments, in: &out)
        function.close(&out)
        call.close(&out)
    }

    /// `{"error":{"message":…,"type":…,"param":null,"code":…}}`.
    static func error(message: String, type: String, code: String) -> ByteBuffer {
        var out = ByteBuffer()
        var members = JSONMembers(opening: &out)
        members.name("error", in: &out)
        var fields = JSONMembers(opening: &out)
        fields.string("message", message, in: &out)
        fields.string("type", type, in: &out)
        fields.string("param", nil, in: &out)
        fields.string("code", code, in: &out)
        fields.close(&out)
        members.close(&out)
        return out
    }

    /// OpenAI's `usage` object; `reasoning` adds `completion_tokens_details.reasoning_tokens`.
    static func usage(prompt: Int64, cached: Int64, completion: Int64, reasoning: Int64? = nil, to out: inout ByteBuffer) {
        var usage = JSONMembers(opening: &out)
        usage.number("prompt_tokens", "\(prompt)", in: &out)
        usage.number("completion_tokens", "\(completion)", in: &out)
        usage.number("total_tokens", "\(prompt + completion)", in: &out)
        usage.name("prompt_tokens_details", in: &out)
        var details = JSONMembers(opening: &out)
        details.number("cached_tokens", "\(cached)", in: &out)
        details.close(&out)
        if let reasoning {
            usage.name("completion_tokens_details", in: &out)
            var details = JSONMembers(opening: &out)
            details.number("reasoning_tokens", "\(reasoning)", in: &out)
            details.close(&out)
        }
        usage.close(&out)
    }

    /// A stream's `chat.completion.chunk`s, each as one SSE event.
    struct Chunks {
        var id: String
        let model: String
        let created: Int64

        /// `data: {…chunk…}` with one choice (`index`) whose delta `write` fills.
        func chunk(
            index: Int = 0, finishReason: String? = nil, into out: inout ByteBuffer, _ write: (inout JSONMembers, inout ByteBuffer) -> Void
        ) {
            out.writeStaticString("data: ")
            var chunk = opening(&out)
            chunk.array("choices", [()], in: &out) { _, out in
                var choice = JSONMembers(opening: &out)
                choice.number("index", "\(index)", in: &out)
                choice.name("delta", in: &out)
                var delta = JSONMembers(opening: &out)
                write(&delta, &out)
                delta.close(&out)
                choice.string("logprobs", nil, in: &out)
                choice.string("finish_reason", finishReason, in: &out)
                choice.close(&out)
            }
            chunk.close(&out)
            out.writeStaticString("\n\n")
        }

        /// The first chunk of a choice: its role.
        func role(index: Int = 0, into out: inout ByteBuffer) {
            chunk(index: index, into: &out) { delta, out in
                delta.string("role", "assistant", in: &out)
                delta.string("content", "", in: &out)
            }
        }

        func content(_ text: String, index: Int = 0, into out: inout ByteBuffer) {
            chunk(index: index, into: &out) { delta, out in delta.string("content", text, in: &out) }
        }

        /// A tool call's delta: its start (`id` and `name`) or more of its arguments.
        func toolCall(_ call: Int, id: String?, name: String?, arguments: String, index: Int = 0, into out: inout ByteBuffer) {
            chunk(index: index, into: &out) { delta, out in
                delta.array("tool_calls", [()], in: &out) { _, out in
                    OpenAIChatWriter.toolCall(index: call, id: id, name: name, arguments: arguments, to: &out)
                }
            }
        }

        /// The usage chunk (no choices); `usage` writes its usage object.
        func usage(into out: inout ByteBuffer, _ usage: (inout ByteBuffer) -> Void) {
            out.writeStaticString("data: ")
            var chunk = opening(&out)
            chunk.array("choices", [Int](), in: &out) { _, _ in }
            chunk.name("usage", in: &out)
            usage(&out)
            chunk.close(&out)
            out.writeStaticString("\n\n")
        }

        /// `data: [DONE]`.
        func done(into out: inout ByteBuffer) { out.writeStaticString("data: [DONE]\n\n") }

        /// An error event (`data: {"error":…}`).
        func error(_ body: ByteBuffer, into out: inout ByteBuffer) {
            var body = body
            out.writeStaticString("data: ")
            out.writeBuffer(&body)
            out.writeStaticString("\n\n")
        }

        private func opening(_ out: inout ByteBuffer) -> JSONMembers {
            var chunk = JSONMembers(opening: &out)
            chunk.string("id", id, in: &out)
            chunk.string("object", "chat.completion.chunk", in: &out)
            chunk.number("created", "\(created)", in: &out)
            chunk.string("model", model, in: &out)
            return chunk
        }
    }
}
