import Foundation
import NIOCore

/// JSON text to `JSONValue` and back, by hand: every request body and every upstream answer
/// on the inference path goes through here, and the `Codable` route (a failed `try?` per
/// type guess for each value) cost more than the rest of the request (see bench/README.md).
///
/// The parser takes RFC 8259 JSON only: no comments, no trailing commas, no leading zeros,
/// no `NaN`; strings must be valid UTF-8 with valid escapes (a lone surrogate is an error);
/// numbers keep their exact decimal value (`Decimal`), and one `Decimal` cannot hold
/// (beyond about 38 digits or an exponent past ±127) is an error — or, with
/// `.clampingHugeNumbers` (management bodies, which validate every field's range and never
/// relay the text), the largest or smallest `Decimal` of its sign, which every field's bounds
/// refuse with the field's own error.
extension JSONValue {
    /// Why a text is not JSON, with the byte offset where that was found.
    public struct SyntaxError: Error, CustomStringConvertible {
        public var offset: Int
        public var reason: String
        public var description: String { "\(reason) at byte \(offset)" }
    }

    /// The deepest nesting accepted: enough for any real request, and no stack overflow.
    public static let maxDepth = 256

    /// What to do with a number `Decimal` cannot hold.
    public enum NumberPolicy: Sendable {
        /// A syntax error ("number out of range"): the text is relayed upstream, so no value may change.
        case refuseHugeNumbers
        /// Its sign's largest (or, for a tiny one, smallest nonzero) `Decimal`.
        case clampingHugeNumbers
    }

    /// Parses one JSON text (surrounding whitespace allowed).
    public static func parse(_ bytes: some Collection<UInt8>, numbers: NumberPolicy = .refuseHugeNumbers) throws(SyntaxError) -> JSONValue {
        if let result = bytes.withContiguousStorageIfAvailable({ buffer in
            Result(catching: { () throws(SyntaxError) in try parse(UnsafeRawBufferPointer(buffer), numbers: numbers) })
        }) {
            return try result.get()
        }
        return try Array(bytes).withUnsafeBytes { buffer in
            Result(catching: { () throws(SyntaxError) in try parse(buffer, numbers: numbers) })
        }.get()
    }

    /// Parses the readable bytes of `buffer` without copying them.
    public static func parse(_ buffer: ByteBuffer) throws(SyntaxError) -> JSONValue {
        try buffer.withUnsafeReadableBytes { bytes in Result(catching: { () throws(SyntaxError) in try parse(bytes) }) }.get()
    }

    public static func parse(_ bytes: UnsafeRawBufferPointer, numbers: NumberPolicy = .refuseHugeNumbers) throws(SyntaxError) -> JSONValue {
        var parser = Parser(bytes: bytes, numbers: numbers)
        parser.skipWhitespace()
        let value = try parser.value(depth: 0)
        parser.skipWhitespace()
        guard parser.index == bytes.count else { throw parser.error("unexpected text after the JSON value") }
        return value
    }

    /// The compact JSON text of this value (object members in no particular order).
    public var bytes: ByteBuffer {
        var buffer = ByteBuffer()
        buffer.reserveCapacity(256)
        Self.write(self, to: &buffer)
        return buffer
    }

    private static func write(_ value: JSONValue, to buffer: inout ByteBuffer) {
        switch value {
        case .null: buffer.writeStaticString("null")
        case .bool(let flag): buffer.writeStaticString(flag ? "true" : "false")
        case .number(let number): buffer.writeString(number.description)
        case .string(let string): writeString(string, to: &buffer)
        case .array(let elements):
            buffer.writeInteger(UInt8(ascii: "["))
            for (index, element) in elements.enumerated() {
                if index > 0 { buffer.writeInteger(UInt8(ascii: ",")) }
                write(element, to: &buffer)
            }
            buffer.writeInteger(UInt8(ascii: "]"))
        case .object(let members):
            buffer.writeInteger(UInt8(ascii: "{"))
            var first = true
            for (key, member) in members {
                if !first { buffer.writeInteger(UInt8(ascii: ",")) }
                first = false
                writeString(key, to: &buffer)
                buffer.writeInteger(UInt8(ascii: ":"))
                write(member, to: &buffer)
            }
            buffer.writeInteger(UInt8(ascii: "}"))
        }
    }

    private static let hexDigits = Array("0123456789abcdef".utf8)

    /// Writes `string` as a JSON string (quoted; `"`, `\\` and control characters escaped,
    /// everything else as UTF-8), for writers that produce JSON text without a tree.
    public static func writeString(_ string: String, to buffer: inout ByteBuffer) {
        var string = string
        let plain = string.withUTF8 { utf8 in
            // Most strings need no escape: then one write for the quotes and the text.
            guard !utf8.contains(where: { $0 < 0x20 || $0 == UInt8(ascii: "\"") || $0 == UInt8(ascii: "\\") }) else { return false }
            buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: utf8.count + 2) { out in
                out[0] = UInt8(ascii: "\"")
                UnsafeMutableRawBufferPointer(rebasing: out[1..<1 + utf8.count]).copyMemory(from: UnsafeRawBufferPointer(utf8))
                out[1 + utf8.count] = UInt8(ascii: "\"")
                return utf8.count + 2
            }
            return true
        }
        guard !plain else { return }
        buffer.writeInteger(UInt8(ascii: "\""))
        string.withUTF8 { utf8 in
            var start = 0
            for (index, byte) in utf8.enumerated() where byte < 0x20 || byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") {
                buffer.writeBytes(UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(utf8)[start..<index]))
                start = index + 1
                buffer.writeInteger(UInt8(ascii: "\\"))
                switch byte {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"): buffer.writeInteger(byte)
                case 0x0A: buffer.writeInteger(UInt8(ascii: "n"))
                case 0x0D: buffer.writeInteger(UInt8(ascii: "r"))
                case 0x09: buffer.writeInteger(UInt8(ascii: "t"))
                case 0x08: buffer.writeInteger(UInt8(ascii: "b"))
                case 0x0C: buffer.writeInteger(UInt8(ascii: "f"))
                default:
                    buffer.writeBytes([UInt8(ascii: "u"), 0x30, 0x30, hexDigits[Int(byte >> 4)], hexDigits[Int(byte & 0xF)]])
                }
            }
            buffer.writeBytes(UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(utf8)[start...]))
        }
        buffer.writeInteger(UInt8(ascii: "\""))
    }

    private struct Parser {
        let bytes: UnsafeRawBufferPointer
        let numbers: NumberPolicy
        var index = 0

        init(bytes: UnsafeRawBufferPointer, numbers: NumberPolicy) {
            self.bytes = bytes
            self.numbers = numbers
        }

        func error(_ reason: String) -> SyntaxError { SyntaxError(offset: index, reason: reason) }

        var current: UInt8? { index < bytes.count ? bytes[index] : nil }

        mutating func skipWhitespace() {
            while index < bytes.count, JSONSplice.isWhitespace(bytes[index]) { index += 1 }
        }

        mutating func expect(_ literal: StaticString, _ value: JSONValue) throws(SyntaxError) -> JSONValue {
            let count = literal.utf8CodeUnitCount
            guard index + count <= bytes.count,
                memcmp(bytes.baseAddress! + index, literal.utf8Start, count) == 0
            else { throw error("invalid literal") }
            index += count
            return value
        }

        mutating func value(depth: Int) throws(SyntaxError) -> JSONValue {
            guard let byte = current else { throw error("unexpected end of text") }
            switch byte {
            case UInt8(ascii: "{"): return try object(depth: depth + 1)
            case UInt8(ascii: "["): return try array(depth: depth + 1)
            case UInt8(ascii: "\""): return .string(try string())
            case UInt8(ascii: "t"): return try expect("true", .bool(true))
            case UInt8(ascii: "f"): return try expect("false", .bool(false))
            case UInt8(ascii: "n"): return try expect("null", .null)
            case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return .number(try number())
            default: throw error("unexpected character")
            }
        }

        mutating func object(depth: Int) throws(SyntaxError) -> JSONValue {
            guard depth <= JSONValue.maxDepth else { throw error("nested too deeply") }
            index += 1
            var members: [String: JSONValue] = [:]
            skipWhitespace()
            if current == UInt8(ascii: "}") {
                index += 1
                return .object(members)
            }
            while true {
                guard current == UInt8(ascii: "\"") else { throw error("expected a member name") }
                let key = try string()
                skipWhitespace()
                guard current == UInt8(ascii: ":") else { throw error("expected ':'") }
                index += 1
                skipWhitespace()
                members[key] = try value(depth: depth)
                skipWhitespace()
                switch current {
                case UInt8(ascii: ",")?:
                    index += 1
                    skipWhitespace()
                case UInt8(ascii: "}")?:
                    index += 1
                    return .object(members)
                default: throw error("expected ',' or '}'")
                }
            }
        }

        mutating func array(depth: Int) throws(SyntaxError) -> JSONValue {
            guard depth <= JSONValue.maxDepth else { throw error("nested too deeply") }
            index += 1
            var elements: [JSONValue] = []
            skipWhitespace()
            if current == UInt8(ascii: "]") {
                index += 1
                return .array(elements)
            }
            while true {
                elements.append(try value(depth: depth))
                skipWhitespace()
                switch current {
                case UInt8(ascii: ",")?:
                    index += 1
                    skipWhitespace()
                case UInt8(ascii: "]")?:
                    index += 1
                    return .array(elements)
                default: throw error("expected ',' or ']'")
                }
            }
        }

        /// A string, `index` at its opening quote.
        mutating func string() throws(SyntaxError) -> String {
            index += 1
            let start = index
            // Fast path: no escapes.
            while index < bytes.count {
                let byte = bytes[index]
                if byte == UInt8(ascii: "\"") {
                    guard let text = String(validating: UnsafeRawBufferPointer(rebasing: bytes[start..<index]), as: UTF8.self) else {
                        throw error("invalid UTF-8 in a string")
                    }
                    index += 1
                    return text
                }
                if byte == UInt8(ascii: "\\") { break }
                if byte < 0x20 { throw error("control character in a string") }
                index += 1
            }
            var utf8 = Array(UnsafeRawBufferPointer(rebasing: bytes[start..<index]))
            while true {
                guard let byte = current else { throw error("unterminated string") }
                index += 1
                switch byte {
                case UInt8(ascii: "\""):
                    guard let text = String(validating: utf8, as: UTF8.self) else { throw error("invalid UTF-8 in a string") }
                    return text
                case UInt8(ascii: "\\"):
                    guard let escaped = current else { throw error("unterminated string") }
                    index += 1
                    switch escaped {
                    case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): utf8.append(escaped)
                    case UInt8(ascii: "b"): utf8.append(0x08)
                    case UInt8(ascii: "f"): utf8.append(0x0C)
                    case UInt8(ascii: "n"): utf8.append(0x0A)
                    case UInt8(ascii: "r"): utf8.append(0x0D)
                    case UInt8(ascii: "t"): utf8.append(0x09)
                    case UInt8(ascii: "u"):
                        var scalar = UInt32(try hex4())
                        if (0xD800..<0xDC00).contains(scalar) {
                            guard current == UInt8(ascii: "\\"), index + 1 < bytes.count, bytes[index + 1] == UInt8(ascii: "u") else {
                                throw error("unpaired surrogate in a string")
                            }
                            index += 2
                            let low = UInt32(try hex4())
                            guard (0xDC00..<0xE000).contains(low) else { throw error("unpaired surrogate in a string") }
                            scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                        } else if (0xDC00..<0xE000).contains(scalar) {
                            throw error("unpaired surrogate in a string")
                        }
                        utf8.append(contentsOf: String(Character(Unicode.Scalar(scalar)!)).utf8)
                    default: throw error("invalid escape in a string")
                    }
                default:
                    if byte < 0x20 { throw error("control character in a string") }
                    utf8.append(byte)
                }
            }
        }

        mutating func hex4() throws(SyntaxError) -> UInt16 {
            guard index + 4 <= bytes.count else { throw error("invalid \\u escape") }
            var value: UInt16 = 0
            for _ in 0..<4 {
                let byte = bytes[index]
                let digit: UInt8
                switch byte {
                case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
                case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
                case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
                default: throw error("invalid \\u escape")
                }
                value = value << 4 | UInt16(digit)
                index += 1
            }
            return value
        }

        mutating func digits() -> Int {
            let start = index
            while let byte = current, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) { index += 1 }
            return index - start
        }

        mutating func number() throws(SyntaxError) -> Decimal {
            let start = index
            if current == UInt8(ascii: "-") { index += 1 }
            if current == UInt8(ascii: "0") {
                index += 1
            } else if digits() == 0 {
                throw error("invalid number")
            }
            if current == UInt8(ascii: ".") {
                index += 1
                guard digits() > 0 else { throw error("invalid number") }
            }
            if current == UInt8(ascii: "e") || current == UInt8(ascii: "E") {
                index += 1
                if current == UInt8(ascii: "+") || current == UInt8(ascii: "-") { index += 1 }
                guard digits() > 0 else { throw error("invalid number") }
            }
            let text = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<index]), as: UTF8.self)
            // Small integers, the common case, without Decimal's string parser.
            if index - start <= 18, let whole = Int64(text) { return Decimal(whole) }
            if let number = Decimal(string: text, locale: nil), !number.isNaN { return number }
            guard numbers == .clampingHugeNumbers else { throw SyntaxError(offset: start, reason: "number out of range") }
            // Too many digits or too large an exponent: huge, unless the exponent is negative
            // (or the number starts 0.), then tiny.
            let negative = text.hasPrefix("-")
            let unsigned = negative ? text.dropFirst() : Substring(text)
            let tiny =
                if let e = unsigned.firstIndex(where: { $0 == "e" || $0 == "E" }) {
                    unsigned[unsigned.index(after: e)] == "-"
                } else {
                    unsigned.hasPrefix("0")
                }
            let magnitude = tiny ? Decimal.leastNonzeroMagnitude : Decimal.greatestFiniteMagnitude
            return negative ? -magnitude : magnitude
        }
    }
}
