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
            OpenAIChatWriter.usage(prompt: input + cacheCreation + cacheRead, cached: cacheRead, completion: output, to: &buffer)
        }
    }

    /// A message (`"type": "message"`) as a chat completion; nil when the body is not one.
    static func completion(_ body: ByteBuffer, model: String, created: Int64) -> ProviderAnswer? {
        guard let message = try? JSONValue.parse(body), message["type"]?.stringValue == "message" else { return nil }
        var text = ""
        var calls: [OpenAIChatWriter.ToolCall] = []
        for block in message["content"]?.arrayValue ?? [] {
            switch block["type"]?.stringValue {
            case "text": text += block["text"]?.stringValue ?? ""
            case "tool_use":
                let arguments = block["input"].map { String(buffer: $0.bytes) } ?? "{}"
                calls.append(.init(id: block["id"]?.stringValue ?? "", name: block["name"]?.stringValue ?? "", arguments: arguments))
            default: break  // thinking and the like: not part of OpenAI's answer
            }
        }
        var usage = Usage()
        usage.read(message["usage"])
        let out = OpenAIChatWriter.completion(
            id: "chatcmpl-" + (message["id"]?.stringValue ?? ""), model: model, created: created,
            choices: [.init(text: text, calls: calls, finishReason: finishReason(message["stop_reason"]?.stringValue ?? "end_turn"))],
            usage: usage.write(to:))
        let produced = text
        return ProviderAnswer(body: out, contentType: "application/json", reported: usage.tokens, text: produced)
    }

    /// An Anthropic error (`{"type":"error","error":{"type":…,"message":…}}`) in OpenAI's shape;
    /// the body as it came when it is not one.
    static func error(_ body: ByteBuffer) -> ByteBuffer {
        guard let value = try? JSONValue.parse(body), let error = value["error"], let message = error["message"]?.stringValue else {
            return body
        }
        let type = error["type"]?.stringValue ?? "api_error"
        return OpenAIChatWriter.error(message: message, type: type, code: type)
    }

    /// A Messages API event stream as OpenAI chunks: the role first, text deltas as
    /// `delta.content`, each `tool_use` block as a tool call of its own index (from 0, in order)
    /// whose `input_json_delta`s are its `function.arguments`, `message_delta`'s stop reason as
    /// `finish_reason`; at `message_stop` the usage chunk if the caller asked for it, then
    /// `[DONE]`. An `error` event goes on as an OpenAI error event.
    final class Stream: ProviderStream {
        let includeUsage: Bool
        private var chunks: OpenAIChatWriter.Chunks
        private var usage = Usage()
        private var ended = false
        private(set) var reported: Pricing.Tokens?
        private var produced = ""
        /// Anthropic's content block index → OpenAI's tool call index.
        private var toolIndex: [Int: Int] = [:]

        init(model: String, includeUsage: Bool, created: Int64) {
            self.includeUsage = includeUsage
            self.chunks = OpenAIChatWriter.Chunks(id: "chatcmpl-", model: model, created: created)
        }

        func text() -> String { produced }

        func relay(_ event: SSEEvent, into out: inout ByteBuffer) -> Bool {
            guard !ended, let data = event.data, let payload = MessagesAnswer.Stream.parse(data) else { return false }
            switch payload["type"]?.stringValue {
            case "message_start":
                chunks.id = "chatcmpl-" + (payload["message"]?["id"]?.stringValue ?? "")
                usage.read(payload["message"]?["usage"])
                chunks.role(into: &out)
            case "content_block_start":
                let block = payload["content_block"]
                let index = payload["index"]?.int64Value.map(Int.init) ?? 0
                if block?["type"]?.stringValue == "tool_use" {
                    let call = toolIndex.count
                    toolIndex[index] = call
                    chunks.toolCall(
                        call, id: block?["id"]?.stringValue ?? "", name: block?["name"]?.stringValue ?? "", arguments: "", into: &out)
                } else if let text = block?["text"]?.stringValue, !text.isEmpty {
                    content(text, into: &out)
                }
            case "content_block_delta":
                let delta = payload["delta"]
                switch delta?["type"]?.stringValue {
                case "text_delta": content(delta?["text"]?.stringValue ?? "", into: &out)
                case "input_json_delta":
                    guard let call = toolIndex[payload["index"]?.int64Value.map(Int.init) ?? -1] else { break }
                    chunks.toolCall(call, id: nil, name: nil, arguments: delta?["partial_json"]?.stringValue ?? "", into: &out)
                default: break  // thinking, signatures: not part of OpenAI's answer
                }
            case "message_delta":
                usage.read(payload["usage"])
                reported = usage.tokens
                if let stop = payload["delta"]?["stop_reason"]?.stringValue {
                    chunks.chunk(finishReason: AnthropicAnswer.finishReason(stop), into: &out) { _, _ in }
                }
            case "message_stop":
                ended = true
                reported = usage.tokens
                if includeUsage { chunks.usage(into: &out, usage.write(to:)) }
                chunks.done(into: &out)
                return true
            case "error":
                chunks.error(AnthropicAnswer.error(ByteBuffer(string: data)), into: &out)
            default: break  // ping, content_block_stop
            }
            return false
        }

        private func content(_ text: String, into out: inout ByteBuffer) {
            guard !text.isEmpty else { return }
            produced += text
            chunks.content(text, into: &out)
        }
    }
}
