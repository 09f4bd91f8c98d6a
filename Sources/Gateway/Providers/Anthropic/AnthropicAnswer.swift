import Foundation
import HTTPTypes
import NIOCore
import SharedRules
import WireFormats

/// Anthropic's answers read back as OpenAI's: a message as a chat completion, its events as
/// chunks, its errors in OpenAI's shape.
enum AnthropicAnswer {
    /// OpenAI's `finish_reason` for Anthropic's `stop_reason` (`tool_use` is `tool_calls`, so
    /// that an agent runs its tools instead of stopping).
    static func finishReason(_ stopReason: String) -> String {
        switch stopReason {
        case "max_tokens", "model_context_window_exceeded": "length"
        case "tool_use": "tool_calls"
        case "refusal": "content_filter"
        default: "stop"  // end_turn, stop_sequence, pause_turn
        }
    }

    /// Anthropic's `usage`: input apart from what was written to or read from the prompt cache.
    struct Usage {
        var input: Int64 = 0
        var cacheCreation: Int64 = 0
        var cacheRead: Int64 = 0
        var output: Int64 = 0

        /// Takes what `value` reports (a stream's `message_delta` repeats or adds to `message_start`'s).
        mutating func read(_ value: JSONValue?) {
            guard let value else { return }
            if let input = value["input_tokens"]?.int64Value { self.input = input }
            if let created = value["cache_creation_input_tokens"]?.int64Value { cacheCreation = created }
            if let read = value["cache_read_input_tokens"]?.int64Value { cacheRead = read }
            if let output = value["output_tokens"]?.int64Value { self.output = output }
        }

        /// What Lumen bills: cache reads as cached input, cache writes at the cache-write price.
        var tokens: Pricing.Tokens { Pricing.Tokens(input: input, cachedInput: cacheRead, cacheWrite: cacheCreation, output: output) }

        /// OpenAI's `usage` object: the prompt is every input token, cache reads among them.
        func write(to buffer: inout ByteBuffer) {
            let prompt = input + cacheCreation + cacheRead
            var usage = JSONMembers(opening: &buffer)
            usage.number("prompt_tokens", "\(prompt)", in: &buffer)
            usage.number("completion_tokens", "\(output)", in: &buffer)
            usage.number("total_tokens", "\(prompt + output)", in: &buffer)
            usage.name("prompt_tokens_details", in: &buffer)
            var details = JSONMembers(opening: &buffer)
            details.number("cached_tokens", "\(cacheRead)", in: &buffer)
            details.close(&buffer)
            usage.close(&buffer)
        }
    }

    /// A message (`"type": "message"`) as a chat completion; nil when the body is not one.
    static func completion(_ body: ByteBuffer, model: String, created: Int64) -> ProviderAnswer? {
        guard let message = try? JSONValue.parse(body), message["type"]?.stringValue == "message" else { return nil }
        var text = ""
        var calls: [(id: String, name: String, arguments: String)] = []
        for block in message["content"]?.arrayValue ?? [] {
            switch block["type"]?.stringValue {
            case "text": text += block["text"]?.stringValue ?? ""
            case "tool_use":
                let arguments = block["input"].map { String(buffer: $0.bytes) } ?? "{}"
                calls.append((block["id"]?.stringValue ?? "", block["name"]?.stringValue ?? "", arguments))
            default: break  // thinking and the like: not part of OpenAI's answer
            }
        }
        var usage = Usage()
        usage.read(message["usage"])
        var out = ByteBuffer()
        var completion = JSONMembers(opening: &out)
        completion.string("id", "chatcmpl-" + (message["id"]?.stringValue ?? ""), in: &out)
        completion.string("object", "chat.completion", in: &out)
        completion.number("created", "\(created)", in: &out)
        completion.string("model", model, in: &out)
        completion.array("choices", [()], in: &out) { _, out in
            var choice = JSONMembers(opening: &out)
            choice.number("index", "0", in: &out)
            choice.name("message", in: &out)
            var reply = JSONMembers(opening: &out)
            reply.string("role", "assistant", in: &out)
            reply.string("content", text.isEmpty && !calls.isEmpty ? nil : text, in: &out)
            if !calls.isEmpty {
                reply.array("tool_calls", calls, in: &out) { call, out in writeToolCall(id: call.id, name: call.name, arguments: call.arguments, to: &out) }
            }
            reply.string("refusal", nil, in: &out)
            reply.close(&out)
            choice.string("logprobs", nil, in: &out)
            choice.string("finish_reason", finishReason(message["stop_reason"]?.stringValue ?? "end_turn"), in: &out)
            choice.close(&out)
        }
        completion.name("usage", in: &out)
        usage.write(to: &out)
        completion.close(&out)
        return ProviderAnswer(body: out, contentType: "application/json", reported: usage.tokens, text: text)
    }

    static func writeToolCall(index: Int? = nil, id: String?, name: String?, arguments: String, to out: inout ByteBuffer) {
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

    /// An Anthropic error (`{"type":"error","error":{"type":…,"message":…}}`) in OpenAI's shape;
    /// the body as it came when it is not one.
    static func error(_ body: ByteBuffer) -> ByteBuffer {
        guard let value = try? JSONValue.parse(body), let error = value["error"], let message = error["message"]?.stringValue else {
            return body
        }
        let type = error["type"]?.stringValue ?? "api_error"
        var out = ByteBuffer()
        var members = JSONMembers(opening: &out)
        members.name("error", in: &out)
        var fields = JSONMembers(opening: &out)
        fields.string("message", message, in: &out)
        fields.string("type", type, in: &out)
        fields.string("param", nil, in: &out)
        fields.string("code", type, in: &out)
        fields.close(&out)
        members.close(&out)
        return out
    }

    /// A Messages API event stream as OpenAI chunks: the role first, text deltas as
    /// `delta.content`, each `tool_use` block as a tool call of its own index (from 0, in order)
    /// whose `input_json_delta`s are its `function.arguments`, `message_delta`'s stop reason as
    /// `finish_reason`; at `message_stop` the usage chunk if the caller asked for it, then
    /// `[DONE]`. An `error` event goes on as an OpenAI error event.
    final class Stream: ProviderStream {
        let model: String
        let includeUsage: Bool
        let created: Int64
        private var id = "chatcmpl-"
        private var usage = Usage()
        private var ended = false
        private(set) var reported: Pricing.Tokens?
        private var produced = ""
        /// Anthropic's content block index → OpenAI's tool call index.
        private var toolIndex: [Int: Int] = [:]

        init(model: String, includeUsage: Bool, created: Int64) {
            self.model = model
            self.includeUsage = includeUsage
            self.created = created
        }

        func text() -> String { produced }

        func relay(_ event: SSEEvent, into out: inout ByteBuffer) -> Bool {
            guard !ended, let data = event.data, let payload = MessagesAnswer.Stream.parse(data) else { return false }
            switch payload["type"]?.stringValue {
            case "message_start":
                id = "chatcmpl-" + (payload["message"]?["id"]?.stringValue ?? "")
                usage.read(payload["message"]?["usage"])
                chunk(into: &out) { delta, out in
                    delta.string("role", "assistant", in: &out)
                    delta.string("content", "", in: &out)
                }
            case "content_block_start":
                let block = payload["content_block"]
                let index = payload["index"]?.int64Value.map(Int.init) ?? 0
                if block?["type"]?.stringValue == "tool_use" {
                    let call = toolIndex.count
                    toolIndex[index] = call
                    chunk(into: &out) { delta, out in
                        delta.array("tool_calls", [()], in: &out) { _, out in
                            writeToolCall(
                                index: call, id: block?["id"]?.stringValue ?? "", name: block?["name"]?.stringValue ?? "", arguments: "",
                                to: &out)
                        }
                    }
                } else if let text = block?["text"]?.stringValue, !text.isEmpty {
                    content(text, into: &out)
                }
            case "content_block_delta":
                let delta = payload["delta"]
                switch delta?["type"]?.stringValue {
                case "text_delta": content(delta?["text"]?.stringValue ?? "", into: &out)
                case "input_json_delta":
                    guard let call = toolIndex[payload["index"]?.int64Value.map(Int.init) ?? -1] else { break }
                    let partial = delta?["partial_json"]?.stringValue ?? ""
                    chunk(into: &out) { delta, out in
                        delta.array("tool_calls", [()], in: &out) { _, out in
                            writeToolCall(index: call, id: nil, name: nil, arguments: partial, to: &out)
                        }
                    }
                default: break  // thinking, signatures: not part of OpenAI's answer
                }
            case "message_delta":
                usage.read(payload["usage"])
                reported = usage.tokens
                if let stop = payload["delta"]?["stop_reason"]?.stringValue {
                    chunk(finishReason: AnthropicAnswer.finishReason(stop), into: &out) { _, _ in }
                }
            case "message_stop":
                ended = true
                reported = usage.tokens
                if includeUsage { usageChunk(into: &out) }
                out.writeStaticString("data: [DONE]\n\n")
                return true
            case "error":
                out.writeStaticString("data: ")
                var error = AnthropicAnswer.error(ByteBuffer(string: data))
                out.writeBuffer(&error)
                out.writeStaticString("\n\n")
            default: break  // ping, content_block_stop
            }
            return false
        }

        private func content(_ text: String, into out: inout ByteBuffer) {
            guard !text.isEmpty else { return }
            produced += text
            chunk(into: &out) { delta, out in delta.string("content", text, in: &out) }
        }

        /// `data: {…chunk…}` with one choice whose delta `write` fills.
        private func chunk(finishReason: String? = nil, into out: inout ByteBuffer, _ write: (inout JSONMembers, inout ByteBuffer) -> Void) {
            out.writeStaticString("data: ")
            var chunk = opening(&out)
            chunk.array("choices", [()], in: &out) { _, out in
                var choice = JSONMembers(opening: &out)
                choice.number("index", "0", in: &out)
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

        private func usageChunk(into out: inout ByteBuffer) {
            out.writeStaticString("data: ")
            var chunk = opening(&out)
            chunk.array("choices", [Int](), in: &out) { _, _ in }
            chunk.name("usage", in: &out)
            usage.write(to: &out)
            chunk.close(&out)
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
