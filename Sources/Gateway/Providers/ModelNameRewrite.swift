import NIOCore
import WireFormats

/// Answers carry the logical model name the caller asked for (`my-gpt`), never the name a
/// backend uses upstream (`gpt-4o-mini-2024-07-18`, `fake-model`): the upstream's stays in the
/// usage line. Works on the bytes as they came — a JSON body, or SSE events whose data is JSON —
/// replacing the string value of every `"model"` member and copying the rest untouched, so
/// numbers, order and spacing are the upstream's own.
enum ModelNameRewrite {
    /// `bytes` with every `"model": "…"` member's value replaced by `name`; `bytes` itself when
    /// there is nothing to replace.
    static func rewrite(_ bytes: ByteBuffer, to name: String) -> ByteBuffer {
        let replacement = Array(JSONValue.string(name).bytes.readableBytesView)
        return bytes.withUnsafeReadableBytes { view -> ByteBuffer? in
            var output: ByteBuffer?
            var copied = 0
            var index = 0
            while let value = nextModelValue(in: view, from: &index) {
                guard !view[value].elementsEqual(replacement) else { continue }
                if output == nil { output = ByteBuffer() }
                output!.writeBytes(UnsafeRawBufferPointer(rebasing: view[copied..<value.lowerBound]))
                output!.writeBytes(replacement)
                copied = value.upperBound
            }
            guard var output else { return nil }
            output.writeBytes(UnsafeRawBufferPointer(rebasing: view[copied...]))
            return output
        } ?? bytes
    }

    private static let key = Array(#""model""#.utf8)

    /// The byte range of the next `"model"` member's string value (quotes included) at or after
    /// `index`, which moves past it. A key's opening quote follows `{` or `,` (whitespace
    /// aside): inside a string every quote is escaped, so text that merely mentions "model"
    /// never matches.
    private static func nextModelValue(in view: UnsafeRawBufferPointer, from index: inout Int) -> Range<Int>? {
        let end = view.count
        while index + key.count <= end {
            guard view[index] == UInt8(ascii: "\""), view[index..<(index + key.count)].elementsEqual(key) else {
                index += 1
                continue
            }
            let start = index
            index += key.count
            var before = start - 1
            while before >= 0, JSONSplice.isWhitespace(view[before]) { before -= 1 }
            guard before >= 0, view[before] == UInt8(ascii: "{") || view[before] == UInt8(ascii: ",") else { continue }
            var cursor = index
            while cursor < end, JSONSplice.isWhitespace(view[cursor]) { cursor += 1 }
            guard cursor < end, view[cursor] == UInt8(ascii: ":") else { continue }
            cursor += 1
            while cursor < end, JSONSplice.isWhitespace(view[cursor]) { cursor += 1 }
            guard cursor < end, view[cursor] == UInt8(ascii: "\"") else { continue }
            let valueStart = cursor
            cursor += 1
            while cursor < end, view[cursor] != UInt8(ascii: "\"") {
                cursor += view[cursor] == UInt8(ascii: "\\") ? 2 : 1
            }
            guard cursor < end else { return nil }
            index = cursor + 1
            return valueStart..<index
        }
        return nil
    }

    /// Whether a response of this content type is rewritten (JSON or an event stream).
    static func applies(to contentType: String?) -> Bool {
        guard let contentType else { return false }
        return contains(contentType, "json") || contains(contentType, "text/event-stream")
    }

    /// Whether `text` holds `part` (lowercase ASCII), ASCII letters compared without case: on
    /// the bytes (Foundation's `lowercased().contains` cost more than the rewrite itself).
    private static func contains(_ text: String, _ part: StaticString) -> Bool {
        let needle = UnsafeRawBufferPointer(start: part.utf8Start, count: part.utf8CodeUnitCount)
        var text = text
        return text.withUTF8 { bytes in
            guard bytes.count >= needle.count else { return false }
            return (0...(bytes.count - needle.count)).contains { start in
                (0..<needle.count).allSatisfy { offset in
                    let byte = bytes[start + offset]
                    let lowered = (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte) ? byte | 0x20 : byte
                    return lowered == needle[offset]
                }
            }
        }
    }
}
