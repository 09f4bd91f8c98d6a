import Foundation
import HTTPTypes
import NIOCore
import SharedRules
import WireFormats

/// Bedrock's Converse answers read back as OpenAI's: a `ConverseResponse` as a chat completion,
/// a `ConverseStream` (its event stream messages, each as `{"<eventType>": payload}`) as chunks,
/// errors in OpenAI's shape.
enum BedrockAnswer {
    /// OpenAI's `finish_reason` for Converse's `stopReason`.
    static func finishReason(_ stopReason: String?) -> String {
        switch stopReason {
        case "max_tokens", "model_context_window_exceeded": "length"
        case "tool_use": "tool_calls"
        case "guardrail_intervened", "content_filtered": "content_filter"
        default: "stop"  // end_turn, stop_sequence
        }
    }

    /// Converse's `usage`: input apart from what was read from or written to the prompt cache.
    struct Usage {
        var input: Int64 = 0
        var output: Int64 = 0
        var cacheRead: Int64 = 0
        var cacheWrite: Int64 = 0

        init(_ value: JSONValue?) {
            input = value?["inputTokens"]?.int64Value ?? 0
            output = value?["outputTokens"]?.int64Value ?? 0
            cacheRead = value?["cacheReadInputTokens"]?.int64Value ?? 0
            cacheWrite = value?["cacheWriteInputTokens"]?.int64Value ?? 0
        }

        var tokens: Pricing.Tokens { Pricing.Tokens(input: input, cachedInput: cacheRead, cacheWrite: cacheWrite, output: output) }

        func write(to out: inout ByteBuffer) {
            OpenAIChatWriter.usage(prompt: input + cacheRead + cacheWrite, cached: cacheRead, completion: output, to: &out)
        }
    }

    /// A `ConverseResponse` as a chat completion; nil when the body is not one.
    static func completion(_ body: ByteBuffer, model: String, id: String, created: Int64) -> ProviderAnswer? {
        guard let response = try? JSONValue.parse(body), let message = response["output"]?["message"] else { return nil }
        var text = ""
        var calls: [OpenAIChatWriter.ToolCall] = []
        for block in message["content"]?.arrayValue ?? [] {
            if let piece = block["text"]?.stringValue { text += piece }
            if let use = block["toolUse"] {
                let arguments = use["input"].map { String(buffer: $0.bytes) } ?? "{}"
                calls.append(.init(id: use["toolUseId"]?.stringValue ?? "", name: use["name"]?.stringValue ?? "", arguments: arguments))
            }
            // reasoningContent and the like: not part of OpenAI's answer
        }
        let usage = Usage(response["usage"])
        let out = OpenAIChatWriter.completion(
            id: id, model: model, created: created,
            choices: [.init(text: text, calls: calls, finishReason: finishReason(response["stopReason"]?.stringValue))],
            usage: usage.write(to:))
        let produced = text
        return ProviderAnswer(body: out, contentType: "application/json", reported: usage.tokens, text: produced)
    }

    /// AWS's error code for an HTTP status Bedrock answers with.
    static func errorCode(_ status: Int) -> String {
        switch status {
        case 400: "validation_exception"
        case 403: "access_denied_exception"
        case 404: "resource_not_found_exception"
        case 408: "model_timeout_exception"
        case 424: "model_error_exception"
        case 429: "throttling_exception"
        case 503: "service_unavailable_exception"
        default: "internal_server_exception"
        }
    }

    /// A Bedrock error (`{"message": …}`, or `{"Message": …}`) in OpenAI's shape, its code from
    /// the status; the body as it came when it is not one.
    static func error(_ body: ByteBuffer, status: Int) -> ByteBuffer {
        guard let value = try? JSONValue.parse(body), let message = (value["message"] ?? value["Message"])?.stringValue else { return body }
        let code = errorCode(status)
        return OpenAIChatWriter.error(message: message, type: code, code: code)
    }

    /// A Converse stream as OpenAI chunks: the role at `messageStart`, text deltas as
    /// `delta.content`, each `toolUse` block a tool call of its own index (from 0, in order)
    /// whose input deltas are its arguments, `messageStop`'s reason as `finish_reason`; at
    /// `metadata` (which comes after `messageStop` and carries the usage) the usage chunk if
    /// the caller asked for it, then `[DONE]`. An exception goes on as an OpenAI error event.
    final class Stream: ProviderStream {
        let includeUsage: Bool
        private let chunks: OpenAIChatWriter.Chunks
        private var usage: Usage?
        private var ended = false
        private var produced = ""
        /// Converse's content block index → OpenAI's tool call index.
        private var toolIndex: [Int: Int] = [:]

        init(model: String, id: String, includeUsage: Bool, created: Int64) {
            self.includeUsage = includeUsage
            self.chunks = OpenAIChatWriter.Chunks(id: id, model: model, created: created)
        }

        var reported: Pricing.Tokens? { usage?.tokens }
        func text() -> String { produced }

        func relay(_ event: SSEEvent, into out: inout ByteBuffer) -> Bool {
            guard !ended, let data = event.data, case .object(let members)? = MessagesAnswer.Stream.parse(data),
                let (kind, payload) = members.first
            else { return false }
            switch kind {
            case "messageStart":
                chunks.role(into: &out)
            case "contentBlockStart":
                guard let use = payload["start"]?["toolUse"] else { break }
                let call = toolIndex.count
                toolIndex[payload["contentBlockIndex"]?.int64Value.map(Int.init) ?? 0] = call
                chunks.toolCall(call, id: use["toolUseId"]?.stringValue ?? "", name: use["name"]?.stringValue ?? "", arguments: "", into: &out)
            case "contentBlockDelta":
                let delta = payload["delta"]
                if let text = delta?["text"]?.stringValue, !text.isEmpty {
                    produced += text
                    chunks.content(text, into: &out)
                } else if let input = delta?["toolUse"]?["input"]?.stringValue,
                    let call = toolIndex[payload["contentBlockIndex"]?.int64Value.map(Int.init) ?? -1]
                {
                    chunks.toolCall(call, id: nil, name: nil, arguments: input, into: &out)
                }
            // reasoningContent deltas: not part of OpenAI's answer
            case "messageStop":
                chunks.chunk(finishReason: BedrockAnswer.finishReason(payload["stopReason"]?.stringValue), into: &out) { _, _ in }
            case "metadata":
                usage = Usage(payload["usage"])
                return finish(into: &out)
            default:
                if kind.hasSuffix("Exception") {
                    let message = payload["message"]?.stringValue ?? payload["Message"]?.stringValue ?? kind
                    chunks.error(OpenAIChatWriter.error(message: message, type: kind, code: kind), into: &out)
                }
            }
            return false
        }

        func finish(into out: inout ByteBuffer) -> Bool {
            guard !ended else { return false }
            ended = true
            if includeUsage, let usage { chunks.usage(into: &out, usage.write(to:)) }
            chunks.done(into: &out)
            return true
        }
    }
}

/// An AWS event stream read as events for a provider's stream: each message as
/// `{"<its :event-type or :exception-type>": payload}` — the shape the AWS SDKs give a stream's
/// union of events — with its CRCs checked (a bad one ends the stream).
struct EventStreamFraming: StreamFraming {
    private var decoder = EventStreamDecoder()

    mutating func feed(_ chunk: ByteBuffer) throws -> [SSEEvent] {
        try decoder.feed(chunk).compactMap(Self.event)
    }

    mutating func finish() throws -> SSEEvent? {
        try decoder.finish()
        return nil
    }

    static func event(_ message: EventStreamMessage) -> SSEEvent? {
        let kind: String
        var payload = message.payload
        switch message.headers[":message-type"] {
        case "event"?: kind = message.headers[":event-type"] ?? ""
        case "exception"?: kind = message.headers[":exception-type"] ?? ""
        case "error"?:
            kind = "internalServerException"
            payload = JSONValue.object(["message": .string(message.headers[":error-message"] ?? "Bedrock's stream failed")]).bytes
        default: return nil
        }
        guard !kind.isEmpty, kind.utf8.allSatisfy(SigV4.isUnreserved) else { return nil }
        if payload.readableBytes == 0 { payload = ByteBuffer(string: "{}") }
        var data = ByteBuffer(string: "{\"\(kind)\":")
        data.writeBuffer(&payload)
        data.writeStaticString("}")
        return SSEEvent(raw: ByteBuffer(), data: String(buffer: data))
    }
}
