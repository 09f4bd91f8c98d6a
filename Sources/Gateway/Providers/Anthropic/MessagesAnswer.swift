import Foundation
import HTTPTypes
import NIOCore
import SharedRules
import WireFormats

/// Answers for a caller of `/v1/messages` (Anthropic's format): an OpenAI backend's answers
/// translated (`message`, `Stream`), or a Claude backend's passed through (`Passthrough`), and
/// every error in Anthropic's shape.
enum MessagesAnswer {
    /// Anthropic's `stop_reason` for OpenAI's `finish_reason`.
    static func stopReason(_ finishReason: String?) -> String {
        switch finishReason {
        case "length": "max_tokens"
        case "tool_calls", "function_call": "tool_use"
        case "content_filter": "refusal"
        default: "end_turn"
        }
    }

    /// Anthropic's error type and status for a status Lumen or an upstream answered.
    static func errorType(_ status: Int) -> (type: String, status: Int) {
        switch status {
        case 400, 422: ("invalid_request_error", 400)
        case 401: ("authentication_error", 401)
        case 402: ("billing_error", 402)
        case 403: ("permission_error", 403)
        case 404: ("not_found_error", 404)
        case 413: ("request_too_large", 413)
        case 429: ("rate_limit_error", 429)
        case 502, 503, 529: ("overloaded_error", 529)
        default: ("api_error", status >= 500 ? 500 : status)
        }
    }

    /// `{"type":"error","error":{"type":…,"message":…}}`.
    static func errorBody(type: String, message: String) -> ByteBuffer {
        var out = ByteBuffer()
        var body = JSONMembers(opening: &out)
        body.string("type", "error", in: &out)
        body.name("error", in: &out)
        var error = JSONMembers(opening: &out)
        error.string("type", type, in: &out)
        error.string("message", message, in: &out)
        error.close(&out)
        body.close(&out)
        return out
    }

    /// One of Lumen's refusals as Anthropic answers it: its status and type.
    static func refusal(_ error: APIError) -> (status: HTTPResponse.Status, body: ByteBuffer) {
        let (type, status) = errorType(Int(error.status.code))
        return (HTTPResponse.Status(code: status), errorBody(type: type, message: error.message))
    }

    /// A refusal after a stream began, as Anthropic's `error` event.
    static func errorEvent(_ error: APIError) -> ByteBuffer {
        var out = ByteBuffer()
        event("error", into: &out) { out in
            var body = refusal(error).body
            out.writeBuffer(&body)
        }
        return out
    }

    /// An OpenAI error body (`{"error":{"message":…}}`) as Anthropic's.
    static func error(fromOpenAI body: ByteBuffer, status: Int) -> ByteBuffer {
        let message = (try? JSONValue.parse(body))?["error"]?["message"]?.stringValue ?? String(buffer: body)
        return errorBody(type: errorType(status).type, message: message)
    }

    /// OpenAI's usage as Anthropic's: the prompt apart from its cached part.
    static func writeUsage(prompt: Int64, cached: Int64, output: Int64, to out: inout ByteBuffer) {
        var usage = JSONMembers(opening: &out)
        usage.number("input_tokens", "\(max(0, prompt - cached))", in: &out)
        usage.number("cache_creation_input_tokens", "0", in: &out)
        usage.number("cache_read_input_tokens", "\(cached)", in: &out)
        usage.number("output_tokens", "\(output)", in: &out)
        usage.close(&out)
    }

    /// An OpenAI chat completion as an Anthropic message; nil when the body is not one.
    static func message(fromOpenAI body: ByteBuffer, model: String) -> ProviderAnswer? {
        guard let completion = try? JSONValue.parse(body), let choice = completion["choices"]?.arrayValue?.first else { return nil }
        let payload = MeteredPayload(completion)
        let reply = choice["message"]
        let text = reply?["content"]?.stringValue ?? ""
        let usage = completion["usage"]
        var out = ByteBuffer()
        var message = JSONMembers(opening: &out)
        message.string("id", "msg_" + (completion["id"]?.stringValue ?? ""), in: &out)
        message.string("type", "message", in: &out)
        message.string("role", "assistant", in: &out)
        message.string("model", model, in: &out)
        var blocks: [JSONValue] = []
        if !text.isEmpty { blocks.append(.object(["type": .string("text"), "text": .string(text)])) }
        for call in reply?["tool_calls"]?.arrayValue ?? [] {
            let arguments = call["function"]?["arguments"]?.stringValue ?? "{}"
            let input = (try? JSONValue.parse(Array((arguments.isEmpty ? "{}" : arguments).utf8))) ?? .object([:])
            blocks.append(.object([
                "type": .string("tool_use"), "id": call["id"] ?? .string(""), "name": call["function"]?["name"] ?? .string(""),
                "input": input,
            ]))
        }
        message.array("content", blocks, in: &out) { block, out in
            var bytes = block.bytes
            out.writeBuffer(&bytes)
        }
        message.string("stop_reason", stopReason(choice["finish_reason"]?.stringValue), in: &out)
        message.string("stop_sequence", nil, in: &out)
        message.name("usage", in: &out)
        let cached = usage?["prompt_tokens_details"]?["cached_tokens"]?.int64Value ?? 0
        writeUsage(
            prompt: usage?["prompt_tokens"]?.int64Value ?? 0, cached: cached, output: usage?["completion_tokens"]?.int64Value ?? 0,
            to: &out)
        message.close(&out)
        return ProviderAnswer(body: out, contentType: "application/json", reported: payload?.reported, text: text)
    }

    /// Writes `event: <type>` and its data.
    static func event(_ type: StaticString, into out: inout ByteBuffer, _ write: (inout ByteBuffer) -> Void) {
        out.writeStaticString("event: ")
        out.writeStaticString(type)
        out.writeStaticString("\ndata: ")
        write(&out)
        out.writeStaticString("\n\n")
    }

    /// An OpenAI chat stream as Anthropic's events: `message_start` (then a `ping`), a text
    /// block and a `tool_use` block per tool call, each with its `content_block_start`, deltas
    /// (`text_delta`, `input_json_delta`) and `content_block_stop`; at `[DONE]`
    /// `message_delta` with the stop reason and usage, then `message_stop`.
    final class Stream: ProviderStream {
        let model: String
        let id: String
        /// The prompt as Lumen counted it, for `message_start` (OpenAI reports usage at the end).
        let promptTokens: Int64
        private var started = false
        private var ended = false
        /// The open block: its index and, for a tool call, OpenAI's index of it.
        private var open: (index: Int, tool: Int?)?
        private var blocks = 0
        private var tools: [Int: Int] = [:]
        private var finishReason: String?
        private var usage: ReportedUsage?
        private(set) var reported: Pricing.Tokens?
        private var produced = ""

        init(model: String, id: String, promptTokens: Int64) {
            self.model = model
            self.id = id
            self.promptTokens = promptTokens
        }

        func text() -> String { produced }

        func relay(_ event: SSEEvent, into out: inout ByteBuffer) -> Bool {
            guard !ended else { return false }
            if event.isDone {
                start(&out)
                close(&out)
                let output = usage?.completionTokens ?? usage?.outputTokens ?? 0
                let prompt = usage?.promptTokens ?? promptTokens
                let cached = usage?.promptCachedTokens ?? 0
                let stop = stopReason(finishReason)
                MessagesAnswer.event("message_delta", into: &out) { out in
                    var delta = JSONMembers(opening: &out)
                    delta.string("type", "message_delta", in: &out)
                    delta.name("delta", in: &out)
                    var inner = JSONMembers(opening: &out)
                    inner.string("stop_reason", stop, in: &out)
                    inner.string("stop_sequence", nil, in: &out)
                    inner.close(&out)
                    delta.name("usage", in: &out)
                    writeUsage(prompt: prompt, cached: cached, output: output, to: &out)
                    delta.close(&out)
                }
                MessagesAnswer.event("message_stop", into: &out) { $0.writeStaticString(#"{"type":"message_stop"}"#) }
                ended = true
                return true
            }
            guard let data = event.data else { return false }
            if let text = Self.contentDelta(data) {
                // Most chunks: a content delta, read without parsing the chunk.
                start(&out)
                content(text, into: &out)
                return false
            }
            guard let chunk = Self.parse(data) else { return false }
            if let reported = ReportedUsage(chunk["usage"]), let tokens = reported.tokens {
                usage = reported
                self.reported = tokens
            }
            guard let choice = chunk["choices"]?.arrayValue?.first else { return false }
            start(&out)
            let delta = choice["delta"]
            if let text = delta?["content"]?.stringValue { content(text, into: &out) }
            for call in delta?["tool_calls"]?.arrayValue ?? [] {
                let index = call["index"]?.int64Value.map(Int.init) ?? 0
                if tools[index] == nil {
                    close(&out)
                    tools[index] = blocks
                    let (id, name) = (call["id"]?.stringValue ?? "", call["function"]?["name"]?.stringValue ?? "")
                    begin(&out, tool: index) { out in
                        var block = JSONMembers(opening: &out)
                        block.string("type", "tool_use", in: &out)
                        block.string("id", id, in: &out)
                        block.string("name", name, in: &out)
                        block.name("input", in: &out)
                        out.writeStaticString("{}")
                        block.close(&out)
                    }
                }
                if let arguments = call["function"]?["arguments"]?.stringValue, !arguments.isEmpty, let block = tools[index] {
                    MessagesAnswer.event("content_block_delta", into: &out) { out in
                        var members = JSONMembers(opening: &out)
                        members.string("type", "content_block_delta", in: &out)
                        members.number("index", "\(block)", in: &out)
                        members.name("delta", in: &out)
                        var inner = JSONMembers(opening: &out)
                        inner.string("type", "input_json_delta", in: &out)
                        inner.string("partial_json", arguments, in: &out)
                        inner.close(&out)
                        members.close(&out)
                    }
                }
            }
            if let finish = choice["finish_reason"]?.stringValue { finishReason = finish }
            return false
        }

        /// Text as a `text_delta` of the open text block (opened first when there is none).
        private func content(_ text: String, into out: inout ByteBuffer) {
            guard !text.isEmpty else { return }
            if open == nil || open?.tool != nil {
                close(&out)
                begin(&out) { out in out.writeStaticString(#"{"type":"text","text":""}"#) }
            }
            produced += text
            blockDelta(&out) { out in
                var members = JSONMembers(opening: &out)
                members.string("type", "text_delta", in: &out)
                members.string("text", text, in: &out)
                members.close(&out)
            }
        }

        static func parse(_ data: String) -> JSONValue? {
            var data = data
            return data.withUTF8 { try? JSONValue.parse(UnsafeRawBufferPointer($0)) }
        }

        private static let contentKey = Array(#""delta":{"content":""#.utf8)
        private static let unfinished = Array(#""finish_reason":null"#.utf8)
        private static let toolCalls = Array(#""tool_calls""#.utf8)

        /// The text of a chunk that is nothing but a content delta (`"delta":{"content":"…"}`,
        /// `"finish_reason":null`, no tool calls, no usage); nil for any other, which is parsed.
        static func contentDelta(_ data: String) -> String? {
            guard !MeteredPayload.mayReportUsage(data) else { return nil }
            var data = data
            return data.withUTF8 { bytes -> String? in
                guard let key = find(contentKey, in: bytes), find(unfinished, in: bytes) != nil, find(toolCalls, in: bytes) == nil
                else { return nil }
                // The string value: from its opening quote to the first unescaped quote.
                var index = key
                while index < bytes.count, bytes[index] != UInt8(ascii: "\"") {
                    index += bytes[index] == UInt8(ascii: "\\") ? 2 : 1
                }
                guard index < bytes.count,
                    case .string(let text)? = try? JSONValue.parse(UnsafeRawBufferPointer(UnsafeBufferPointer(rebasing: bytes[(key - 1)...index])))
                else { return nil }
                return text
            }
        }

        /// Where `pattern` ends in `bytes`, if it is there.
        static func find(_ pattern: [UInt8], in bytes: UnsafeBufferPointer<UInt8>) -> Int? {
            guard let base = bytes.baseAddress, bytes.count >= pattern.count else { return nil }
            return pattern.withUnsafeBufferPointer { needle -> Int? in
                guard let first = needle.baseAddress else { return nil }
                var start = 0
                while start + needle.count <= bytes.count {
                    guard let hit = memchr(base + start, Int32(first.pointee), bytes.count - start - needle.count + 1) else { return nil }
                    let offset = base.distance(to: hit.assumingMemoryBound(to: UInt8.self))
                    if memcmp(base + offset, first, needle.count) == 0 { return offset + needle.count }
                    start = offset + 1
                }
                return nil
            }
        }

        private func start(_ out: inout ByteBuffer) {
            guard !started else { return }
            started = true
            MessagesAnswer.event("message_start", into: &out) { out in
                var event = JSONMembers(opening: &out)
                event.string("type", "message_start", in: &out)
                event.name("message", in: &out)
                var message = JSONMembers(opening: &out)
                message.string("id", id, in: &out)
                message.string("type", "message", in: &out)
                message.string("role", "assistant", in: &out)
                message.string("model", model, in: &out)
                message.name("content", in: &out)
                out.writeStaticString("[]")
                message.string("stop_reason", nil, in: &out)
                message.string("stop_sequence", nil, in: &out)
                message.name("usage", in: &out)
                writeUsage(prompt: promptTokens, cached: 0, output: 0, to: &out)
                message.close(&out)
                event.close(&out)
            }
            MessagesAnswer.event("ping", into: &out) { $0.writeStaticString(#"{"type":"ping"}"#) }
        }

        private func begin(_ out: inout ByteBuffer, tool: Int? = nil, _ block: (inout ByteBuffer) -> Void) {
            let index = blocks
            blocks += 1
            open = (index, tool)
            MessagesAnswer.event("content_block_start", into: &out) { out in
                var members = JSONMembers(opening: &out)
                members.string("type", "content_block_start", in: &out)
                members.number("index", "\(index)", in: &out)
                members.name("content_block", in: &out)
                block(&out)
                members.close(&out)
            }
        }

        private func blockDelta(_ out: inout ByteBuffer, _ delta: (inout ByteBuffer) -> Void) {
            guard let index = open?.index else { return }
            MessagesAnswer.event("content_block_delta", into: &out) { out in
                var members = JSONMembers(opening: &out)
                members.string("type", "content_block_delta", in: &out)
                members.number("index", "\(index)", in: &out)
                members.name("delta", in: &out)
                delta(&out)
                members.close(&out)
            }
        }

        private func close(_ out: inout ByteBuffer) {
            guard let index = open?.index else { return }
            open = nil
            MessagesAnswer.event("content_block_stop", into: &out) { out in
                var members = JSONMembers(opening: &out)
                members.string("type", "content_block_stop", in: &out)
                members.number("index", "\(index)", in: &out)
                members.close(&out)
            }
        }
    }

    /// A Claude backend's stream for a `/v1/messages` caller: its events as they came (the model
    /// renamed to the logical one), usage read from `message_start` and `message_delta`, the text
    /// from its `text_delta`s; `message_stop` ends the answer.
    final class Passthrough: ProviderStream {
        let model: String
        private var usage = AnthropicAnswer.Usage()
        private(set) var reported: Pricing.Tokens?
        private var produced = ""

        init(model: String) { self.model = model }

        func text() -> String { produced }

        func relay(_ event: SSEEvent, into out: inout ByteBuffer) -> Bool {
            var ends = false
            if let data = event.data, let payload = try? JSONValue.parse(Array(data.utf8)) {
                switch payload["type"]?.stringValue {
                case "message_start": usage.read(payload["message"]?["usage"])
                case "message_delta":
                    usage.read(payload["usage"])
                    reported = usage.tokens
                case "content_block_delta": produced += payload["delta"]?["text"]?.stringValue ?? ""
                case "message_stop":
                    reported = usage.tokens
                    ends = true
                default: break
                }
            }
            var relayed = event.data == nil ? event.raw : ModelNameRewrite.rewrite(event.raw, to: model)
            out.writeBuffer(&relayed)
            return ends
        }
    }

    /// A Claude backend's whole answer for a `/v1/messages` caller, passed through.
    static func passthrough(_ body: ByteBuffer, status: HTTPResponse.Status, contentType: String?, model: String) -> ProviderAnswer {
        guard status.code < 300, let message = try? JSONValue.parse(body) else {
            return ProviderAnswer(body: body, contentType: contentType ?? "application/json", reported: nil, text: "")
        }
        var usage = AnthropicAnswer.Usage()
        usage.read(message["usage"])
        let text = (message["content"]?.arrayValue ?? []).compactMap { $0["text"]?.stringValue }.joined()
        return ProviderAnswer(
            body: ModelNameRewrite.rewrite(body, to: model), contentType: contentType ?? "application/json",
            reported: message["usage"] == nil ? nil : usage.tokens, text: text)
    }
}
