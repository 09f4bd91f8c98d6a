import Foundation
import HTTPTypes
import NIOCore
import SharedRules
import WireFormats

/// Gemini's answers read back as OpenAI's: a `GenerateContentResponse` as a chat completion
/// (each candidate a choice), its stream as chunks, embeddings as OpenAI's list, errors in
/// OpenAI's shape.
enum GeminiAnswer {
    /// OpenAI's `finish_reason` for Gemini's `finishReason`; a candidate that calls functions
    /// finishes with `tool_calls`, so that an agent runs its tools instead of stopping.
    static func finishReason(_ reason: String?, calledTools: Bool) -> String {
        switch reason {
        case "MAX_TOKENS": "length"
        case "SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY", "LANGUAGE": "content_filter"
        default: calledTools ? "tool_calls" : "stop"  // STOP, MALFORMED_FUNCTION_CALL, OTHER, FINISH_REASON_UNSPECIFIED
        }
    }

    /// Gemini's `usageMetadata`. The prompt count includes the cached part and the tool-use
    /// prompt is input too; thinking tokens are output, billed at the output price.
    struct Usage {
        var prompt: Int64 = 0
        var cached: Int64 = 0
        var toolUsePrompt: Int64 = 0
        var candidates: Int64 = 0
        var thoughts: Int64 = 0

        /// Takes what `value` reports (each stream chunk repeats the counts so far).
        mutating func read(_ value: JSONValue?) {
            guard let value else { return }
            if let count = value["promptTokenCount"]?.int64Value { prompt = count }
            if let count = value["cachedContentTokenCount"]?.int64Value { cached = count }
            if let count = value["toolUsePromptTokenCount"]?.int64Value { toolUsePrompt = count }
            if let count = value["candidatesTokenCount"]?.int64Value { candidates = count }
            if let count = value["thoughtsTokenCount"]?.int64Value { thoughts = count }
        }

        var tokens: Pricing.Tokens {
            Pricing.Tokens(input: prompt + toolUsePrompt - cached, cachedInput: cached, output: candidates + thoughts)
        }

        func write(to out: inout ByteBuffer) {
            OpenAIChatWriter.usage(
                prompt: prompt + toolUsePrompt, cached: cached, completion: candidates + thoughts, reasoning: thoughts, to: &out)
        }
    }

    /// One candidate's content: its text (thought summaries left out) and function calls, whose
    /// ids are Gemini's or made from the candidate and the call's place, with the call's
    /// thought signature kept after `GeminiRequest.signatureSeparator`.
    static func read(_ candidate: JSONValue, callsSoFar: Int = 0) -> (text: String, calls: [OpenAIChatWriter.ToolCall]) {
        var text = ""
        var calls: [OpenAIChatWriter.ToolCall] = []
        let index = candidate["index"]?.int64Value ?? 0
        for part in candidate["content"]?["parts"]?.arrayValue ?? [] {
            if part["thought"] == .bool(true) { continue }
            if let piece = part["text"]?.stringValue { text += piece }
            if let call = part["functionCall"] {
                var id = call["id"]?.stringValue ?? "call_\(index)_\(callsSoFar + calls.count)"
                if let signature = part["thoughtSignature"]?.stringValue, !signature.isEmpty {
                    id += GeminiRequest.signatureSeparator + signature
                }
                let arguments = call["args"].map { String(buffer: $0.bytes) } ?? "{}"
                calls.append(.init(id: id, name: call["name"]?.stringValue ?? "", arguments: arguments))
            }
        }
        return (text, calls)
    }

    /// A `GenerateContentResponse` as a chat completion; nil when the body is not one. A prompt
    /// Gemini blocked (no candidates, `promptFeedback.blockReason`) is one empty choice
    /// finished by `content_filter`.
    static func completion(_ body: ByteBuffer, model: String, id: String, created: Int64) -> ProviderAnswer? {
        guard let response = try? JSONValue.parse(body), case .object = response,
            response["candidates"] != nil || response["promptFeedback"] != nil
        else { return nil }
        var usage = Usage()
        usage.read(response["usageMetadata"])
        var choices: [OpenAIChatWriter.Choice] = []
        for (number, candidate) in (response["candidates"]?.arrayValue ?? []).enumerated() {
            let (text, calls) = read(candidate)
            choices.append(
                .init(
                    index: candidate["index"]?.int64Value.map(Int.init) ?? number, text: text, calls: calls,
                    finishReason: finishReason(candidate["finishReason"]?.stringValue, calledTools: !calls.isEmpty)))
        }
        if choices.isEmpty { choices = [.init(text: "", finishReason: "content_filter")] }
        let out = OpenAIChatWriter.completion(
            id: response["responseId"]?.stringValue.map { "chatcmpl-" + $0 } ?? id, model: model, created: created, choices: choices,
            usage: usage.write(to:))
        let produced = choices.map(\.text).joined()
        return ProviderAnswer(body: out, contentType: "application/json", reported: usage.tokens, text: produced)
    }

    /// A Google API error (`{"error":{"code":…,"message":…,"status":…}}`) in OpenAI's shape,
    /// its `status` (`INVALID_ARGUMENT`, `RESOURCE_EXHAUSTED`, …) lowercased as the code; the
    /// body as it came when it is not one.
    static func error(_ body: ByteBuffer) -> ByteBuffer {
        var value = try? JSONValue.parse(body)
        if case .array(let list)? = value, let first = list.first { value = first }  // a stream's error comes as a list
        guard let error = value?["error"], let message = error["message"]?.stringValue else { return body }
        let status = error["status"]?.stringValue?.lowercased() ?? "api_error"
        return OpenAIChatWriter.error(message: message, type: status, code: status)
    }

    /// `embedContent`'s (`{"embedding": {"values": …}}`) or `batchEmbedContents`' answer
    /// (`{"embeddings": [...]}`) as OpenAI's embeddings list, floats or base64 (little-endian
    /// float32) as asked. Gemini reports no usage: the prompt is Lumen's count.
    static func embeddings(_ body: ByteBuffer, model: String, base64: Bool, promptTokens: Int64) -> ProviderAnswer? {
        guard let response = try? JSONValue.parse(body) else { return nil }
        let vectors: [JSONValue]
        if let list = response["embeddings"]?.arrayValue {
            vectors = list.compactMap { $0["values"] }
        } else if let one = response["embedding"]?["values"] {
            vectors = [one]
        } else {
            return nil
        }
        var out = ByteBuffer()
        var list = JSONMembers(opening: &out)
        list.string("object", "list", in: &out)
        list.array("data", Array(vectors.enumerated()), in: &out) { item, out in
            var embedding = JSONMembers(opening: &out)
            embedding.string("object", "embedding", in: &out)
            embedding.number("index", "\(item.offset)", in: &out)
            if base64 {
                var bytes: [UInt8] = []
                for value in item.element.arrayValue ?? [] {
                    guard case .number(let number) = value else { continue }
                    withUnsafeBytes(of: NSDecimalNumber(decimal: number).floatValue.bitPattern.littleEndian) { bytes.append(contentsOf: $0) }
                }
                embedding.string("embedding", Data(bytes).base64EncodedString(), in: &out)
            } else {
                embedding.name("embedding", in: &out)
                var values = item.element.bytes
                out.writeBuffer(&values)
            }
            embedding.close(&out)
        }
        list.string("model", model, in: &out)
        list.name("usage", in: &out)
        var usage = JSONMembers(opening: &out)
        usage.number("prompt_tokens", "\(promptTokens)", in: &out)
        usage.number("total_tokens", "\(promptTokens)", in: &out)
        usage.close(&out)
        list.close(&out)
        return ProviderAnswer(body: out, contentType: "application/json", reported: nil, text: "")
    }

    /// `streamGenerateContent?alt=sse` as OpenAI chunks: each candidate's role first, its text
    /// as `delta.content`, each function call as a whole tool call of its own index, its
    /// `finishReason` as `finish_reason`; the latest `usageMetadata` is the usage. Gemini's
    /// stream simply ends: then come the usage chunk (if the caller asked for it) and `[DONE]`.
    final class Stream: ProviderStream {
        let includeUsage: Bool
        private let chunks: OpenAIChatWriter.Chunks
        private var usage = Usage()
        private var sawUsage = false
        private var ended = false
        private var produced = ""
        /// Per candidate: whether its role went out, and its tool calls so far.
        private var started: Set<Int> = []
        private var calls: [Int: Int] = [:]

        init(model: String, id: String, includeUsage: Bool, created: Int64) {
            self.includeUsage = includeUsage
            self.chunks = OpenAIChatWriter.Chunks(id: id, model: model, created: created)
        }

        var reported: Pricing.Tokens? { sawUsage ? usage.tokens : nil }
        func text() -> String { produced }

        func relay(_ event: SSEEvent, into out: inout ByteBuffer) -> Bool {
            guard !ended, let data = event.data, let response = MessagesAnswer.Stream.parse(data) else { return false }
            if response["error"] != nil {
                chunks.error(GeminiAnswer.error(ByteBuffer(string: data)), into: &out)
                return false
            }
            if let metadata = response["usageMetadata"] {
                usage.read(metadata)
                sawUsage = true
            }
            let candidates = response["candidates"]?.arrayValue ?? []
            if candidates.isEmpty, response["promptFeedback"]?["blockReason"] != nil {
                start(0, into: &out)
                chunks.chunk(finishReason: "content_filter", into: &out) { _, _ in }
            }
            for (number, candidate) in candidates.enumerated() {
                let index = candidate["index"]?.int64Value.map(Int.init) ?? number
                start(index, into: &out)
                let (text, newCalls) = read(candidate, callsSoFar: calls[index] ?? 0)
                if !text.isEmpty {
                    produced += text
                    chunks.content(text, index: index, into: &out)
                }
                for call in newCalls {
                    let position = calls[index] ?? 0
                    calls[index] = position + 1
                    chunks.toolCall(position, id: call.id, name: call.name, arguments: call.arguments, index: index, into: &out)
                }
                if let reason = candidate["finishReason"]?.stringValue {
                    chunks.chunk(index: index, finishReason: finishReason(reason, calledTools: (calls[index] ?? 0) > 0), into: &out) { _, _ in }
                }
            }
            return false
        }

        func finish(into out: inout ByteBuffer) -> Bool {
            guard !ended else { return false }
            ended = true
            if includeUsage && sawUsage { chunks.usage(into: &out, usage.write(to:)) }
            chunks.done(into: &out)
            return true
        }

        private func start(_ index: Int, into out: inout ByteBuffer) {
            guard started.insert(index).inserted else { return }
            chunks.role(index: index, into: &out)
        }
    }
}
