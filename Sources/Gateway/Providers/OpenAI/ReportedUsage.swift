import Foundation
import NIOCore
import RPCSupport
import SharedRules
import WireFormats

/// The `usage` object an upstream reports, in either of OpenAI's shapes: chat/completions/
/// embeddings (`prompt_tokens`, `completion_tokens`, `prompt_tokens_details.cached_tokens`) or
/// responses (`input_tokens`, `output_tokens`, `input_tokens_details.cached_tokens`).
struct ReportedUsage: Sendable {
    var promptTokens: Int64?
    var completionTokens: Int64?
    var inputTokens: Int64?
    var outputTokens: Int64?
    var promptCachedTokens: Int64?
    var inputCachedTokens: Int64?

    /// Reads a `usage` object; nil when `value` is not an object.
    init?(_ value: JSONValue?) {
        guard let value, case .object = value else { return nil }
        promptTokens = value["prompt_tokens"]?.int64Value
        completionTokens = value["completion_tokens"]?.int64Value
        inputTokens = value["input_tokens"]?.int64Value
        outputTokens = value["output_tokens"]?.int64Value
        promptCachedTokens = value["prompt_tokens_details"]?["cached_tokens"]?.int64Value
        inputCachedTokens = value["input_tokens_details"]?["cached_tokens"]?.int64Value
    }

    /// The counts Lumen bills: input excludes the cached part, which is priced apart.
    var tokens: Pricing.Tokens? {
        guard let input = promptTokens ?? inputTokens else { return nil }
        let cached = min(input, max(0, promptCachedTokens ?? inputCachedTokens ?? 0))
        return Pricing.Tokens(input: input - cached, cachedInput: cached, output: completionTokens ?? outputTokens ?? 0)
    }
}

/// The parts of a response body or stream event that metering reads; anything it does not
/// understand is ignored, never an error.
struct MeteredPayload: Sendable {
    /// Top-level `usage` (chat, completions, embeddings; responses when not streamed).
    var usage: ReportedUsage?
    /// `response.usage` of a responses stream's `response.completed` event.
    var responseUsage: ReportedUsage?
    /// Whether `choices` is present and empty (the usage-only chunk of a chat stream).
    var hasNoChoices = false
    /// Generated text in this payload: chat messages and deltas, completion text, responses
    /// output and text deltas.
    var text = ""

    /// Reads a payload; nil when it is not a JSON object.
    init?(_ payload: JSONValue) {
        guard case .object = payload else { return nil }
        usage = ReportedUsage(payload["usage"])
        responseUsage = ReportedUsage(payload["response"]?["usage"])
        if let choices = payload["choices"]?.arrayValue {
            hasNoChoices = choices.isEmpty
            for choice in choices {
                text += choice["delta"]?["content"]?.stringValue ?? ""
                text += choice["message"]?["content"]?.stringValue ?? ""
                text += choice["text"]?.stringValue ?? ""
            }
        }
        for item in payload["output"]?.arrayValue ?? [] {
            for part in item["content"]?.arrayValue ?? [] { text += part["text"]?.stringValue ?? "" }
        }
        if let type = payload["type"]?.stringValue, type.hasSuffix(".delta"), let delta = payload["delta"]?.stringValue {
            text += delta
        }
    }

    /// Whether an event's data may carry usage (it holds `"usage"` followed by an object; OpenAI
    /// sends `"usage":null` in every other chunk): the others need not be parsed unless the
    /// stream ends without usage and its text must be counted.
    static func mayReportUsage(_ data: String) -> Bool {
        var data = data
        return data.withUTF8 { bytes in
            let name: StaticString = #""usage""#
            let length = name.utf8CodeUnitCount
            let pattern = UnsafeBufferPointer(start: name.utf8Start, count: length)
            var index = 0
            while index + length <= bytes.count {
                guard bytes[index] == UInt8(ascii: "\""), bytes[index + 1] == UInt8(ascii: "u"),
                    UnsafeBufferPointer(rebasing: bytes[index..<index + length]).elementsEqual(pattern)
                else {
                    index += 1
                    continue
                }
                index += length
                while index < bytes.count, bytes[index] == 0x20 || bytes[index] == 0x09 || bytes[index] == 0x0A
                    || bytes[index] == 0x0D || bytes[index] == UInt8(ascii: ":")
                {
                    index += 1
                }
                if index < bytes.count, bytes[index] == UInt8(ascii: "{") { return true }
            }
            return false
        }
    }

    static func decode(_ bytes: some Collection<UInt8>) -> MeteredPayload? {
        (try? JSONValue.parse(bytes)).flatMap(MeteredPayload.init)
    }

    var reported: Pricing.Tokens? { (usage ?? responseUsage)?.tokens }

    /// The usage a whole JSON answer reports, from its top-level `usage` and `response` members
    /// alone: the rest (the choices and their text, most of the answer) is stepped over, not
    /// parsed — what `decode(…).reported` answers for a JSON object, at a fraction of the cost.
    static func reportedUsage(in body: ByteBuffer) -> Pricing.Tokens? {
        body.withUnsafeReadableBytes { bytes in
            var members: [String: JSONValue] = [:]
            for member in JSONSplice.members(of: bytes) where member.key == "usage" || member.key == "response" {
                members[member.key] = try? JSONValue.parse(UnsafeRawBufferPointer(rebasing: bytes[member.value]))
            }
            return members.isEmpty ? nil : MeteredPayload(.object(members))?.reported
        }
    }
}
