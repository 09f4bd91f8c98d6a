import NIOCore

/// Changes to the top-level members of a JSON object, made on its bytes: everything else is
/// copied as it came (numbers, order, spacing, the long message arrays), so that what goes
/// upstream is what the caller sent but for the members changed — the same way answers are
/// rewritten (`ModelNameRewrite`), by splicing bytes rather than re-serialising a parse.
///
/// The bytes must be a JSON object that `JSONValue.parse` accepted: the scan relies on it.
public enum JSONSplice {
    /// A top-level member: its key (decoded) and the byte range of its value.
    public struct Member: Equatable, Sendable {
        public var key: String
        public var value: Range<Int>
    }

    /// The object's top-level members, in order.
    public static func members(of bytes: UnsafeRawBufferPointer) -> [Member] {
        var members: [Member] = []
        var index = 0
        skipWhitespace(bytes, &index)
        guard index < bytes.count, bytes[index] == UInt8(ascii: "{") else { return [] }
        index += 1
        while true {
            skipWhitespace(bytes, &index)
            guard index < bytes.count, bytes[index] == UInt8(ascii: "\"") else { return members }
            let keyStart = index
            skipString(bytes, &index)
            let keyBytes = bytes[keyStart..<index]
            let key: String
            if keyBytes.contains(UInt8(ascii: "\\")), case .string(let decoded)? = try? JSONValue.parse(Array(keyBytes)) {
                key = decoded
            } else {
                key = String(decoding: keyBytes.dropFirst().dropLast(), as: UTF8.self)
            }
            skipWhitespace(bytes, &index)
            guard index < bytes.count, bytes[index] == UInt8(ascii: ":") else { return members }
            index += 1
            skipWhitespace(bytes, &index)
            let valueStart = index
            skipValue(bytes, &index)
            members.append(Member(key: key, value: valueStart..<index))
            skipWhitespace(bytes, &index)
            guard index < bytes.count, bytes[index] == UInt8(ascii: ",") else { return members }
            index += 1
        }
    }

    /// `bytes` with each top-level member named in `replace` given the new value's JSON (every
    /// occurrence, should a key repeat), and the members of `insert` whose key is absent added
    /// first, as `"key":value,` right after the opening brace.
    public static func apply(_ bytes: ByteBuffer, replace: [String: ByteBuffer], insert: [(String, ByteBuffer)] = []) -> ByteBuffer {
        bytes.withUnsafeReadableBytes { view in
            let members = members(of: view)
            var output = ByteBuffer()
            output.reserveCapacity(view.count + 64)
            var copied = 0
            let open = (view.firstIndex(of: UInt8(ascii: "{")) ?? -1) + 1
            output.writeBytes(UnsafeRawBufferPointer(rebasing: view[0..<open]))
            copied = open
            let present = Set(members.map(\.key))
            for (key, value) in insert where !present.contains(key) {
                JSONValue.writeString(key, to: &output)
                output.writeInteger(UInt8(ascii: ":"))
                output.writeImmutableBuffer(value)
                output.writeInteger(UInt8(ascii: ","))
            }
            // An object with nothing in it took a trailing comma above: it has no members to follow.
            if members.isEmpty, !insert.isEmpty, output.readableBytes > open {
                output.moveWriterIndex(to: output.writerIndex - 1)
            }
            for member in members {
                guard let value = replace[member.key] else { continue }
                output.writeBytes(UnsafeRawBufferPointer(rebasing: view[copied..<member.value.lowerBound]))
                output.writeImmutableBuffer(value)
                copied = member.value.upperBound
            }
            output.writeBytes(UnsafeRawBufferPointer(rebasing: view[copied...]))
            return output
        }
    }

    static func skipWhitespace(_ bytes: UnsafeRawBufferPointer, _ index: inout Int) {
        while index < bytes.count, isWhitespace(bytes[index]) { index += 1 }
    }

    /// Whether a byte is JSON's whitespace (a switch, not `[…].contains`: an array literal in a
    /// loop is an allocation a byte).
    public static func isWhitespace(_ byte: UInt8) -> Bool {
        switch byte {
        case 0x20, 0x09, 0x0A, 0x0D: true
        default: false
        }
    }

    /// Past a string whose opening quote is at `index`.
    static func skipString(_ bytes: UnsafeRawBufferPointer, _ index: inout Int) {
        index += 1
        while index < bytes.count, bytes[index] != UInt8(ascii: "\"") {
            index += bytes[index] == UInt8(ascii: "\\") ? 2 : 1
        }
        index = min(index + 1, bytes.count)
    }

    /// Past the value at `index`: a string, an object or array (nesting counted, strings
    /// skipped whole), or a number or literal (up to the next delimiter).
    static func skipValue(_ bytes: UnsafeRawBufferPointer, _ index: inout Int) {
        guard index < bytes.count else { return }
        switch bytes[index] {
        case UInt8(ascii: "\""):
            skipString(bytes, &index)
        case UInt8(ascii: "{"), UInt8(ascii: "["):
            var depth = 0
            while index < bytes.count {
                switch bytes[index] {
                case UInt8(ascii: "\""):
                    skipString(bytes, &index)
                    continue
                case UInt8(ascii: "{"), UInt8(ascii: "["): depth += 1
                case UInt8(ascii: "}"), UInt8(ascii: "]"):
                    depth -= 1
                    if depth == 0 {
                        index += 1
                        return
                    }
                default: break
                }
                index += 1
            }
        default:
            while index < bytes.count, bytes[index] != UInt8(ascii: ","), bytes[index] != UInt8(ascii: "}"), !isWhitespace(bytes[index]) {
                index += 1
            }
        }
    }
}
