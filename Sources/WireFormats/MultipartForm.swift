import Foundation
import NIOCore

/// Reads one text field of a `multipart/form-data` body (RFC 7578) without decoding the rest:
/// enough to learn which model an upload (image edit, transcription) is for. The bytes are
/// scanned where they lie — an upload of up to 32 MB is neither copied nor decoded as text;
/// only the field's own value becomes a String. (A general multipart parser, multipart-kit,
/// would hand every part over, the file included, to find one short field.)
public enum MultipartForm {
    public static func field(_ name: String, in body: ByteBuffer, contentType: String) -> String? {
        guard let boundary = boundary(of: contentType), !boundary.isEmpty else { return nil }
        let delimiter = Array(("--" + boundary).utf8)
        let wanted = Array("name=\"\(name.lowercased())\"".utf8)
        return body.withUnsafeReadableBytes { bytes -> String? in
            var delimiterAt = firstIndex(of: delimiter, in: bytes, from: 0)
            while let at = delimiterAt {
                let partStart = at + delimiter.count
                let next = firstIndex(of: delimiter, in: bytes, from: partStart)
                let partEnd = next ?? bytes.count
                delimiterAt = next
                // Headers end at the first blank line (CRLF CRLF, else LF LF).
                guard let (headersEnd, valueStart) = firstIndex(of: crlfcrlf, in: bytes, from: partStart, before: partEnd)
                    .map({ ($0, $0 + crlfcrlf.count) })
                    ?? firstIndex(of: lflf, in: bytes, from: partStart, before: partEnd).map({ ($0, $0 + lflf.count) })
                else { continue }
                let headers = bytes[partStart..<headersEnd].map { $0 >= 65 && $0 <= 90 ? $0 + 32 : $0 }
                guard firstIndex(of: wanted, in: headers) != nil else { continue }
                // The CRLF before the next boundary belongs to the delimiter; a model name has no
                // surrounding whitespace of its own.
                let value = UnsafeRawBufferPointer(rebasing: bytes[valueStart..<partEnd])
                return String(decoding: value, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            }
            return nil
        }
    }

    /// How many parts `body` has at most (its boundary delimiters, the closing one included):
    /// each may be a file whose tokens are not its bytes.
    public static func partCount(in body: ByteBuffer, contentType: String) -> Int {
        guard let boundary = boundary(of: contentType), !boundary.isEmpty else { return 0 }
        let delimiter = Array(("--" + boundary).utf8)
        return body.withUnsafeReadableBytes { bytes in
            var count = 0
            var from = 0
            while let at = firstIndex(of: delimiter, in: bytes, from: from) {
                count += 1
                from = at + delimiter.count
            }
            return count
        }
    }

    public static func boundary(of contentType: String) -> String? {
        for parameter in contentType.split(separator: ";").dropFirst() {
            let pair = parameter.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            if pair.count == 2, pair[0].lowercased() == "boundary" {
                return pair[1].trimmingCharacters(in: CharacterSet(charactersIn: "\""))
            }
        }
        return nil
    }

    private static let crlfcrlf = Array("\r\n\r\n".utf8)
    private static let lflf = Array("\n\n".utf8)

    /// Where `needle` first occurs in `haystack[from..<before]`.
    private static func firstIndex(
        of needle: [UInt8], in haystack: UnsafeRawBufferPointer, from start: Int, before end: Int? = nil
    ) -> Int? {
        let end = end ?? haystack.count
        guard let first = needle.first, end - start >= needle.count else { return nil }
        var index = start
        while index + needle.count <= end {
            if haystack[index] == first, haystack[index..<(index + needle.count)].elementsEqual(needle) { return index }
            index += 1
        }
        return nil
    }

    private static func firstIndex(of needle: [UInt8], in haystack: [UInt8]) -> Int? {
        haystack.withUnsafeBytes { firstIndex(of: needle, in: $0, from: 0) }
    }
}
