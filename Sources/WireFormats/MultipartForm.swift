import Foundation
import NIOCore

/// Reads one text field of a `multipart/form-data` body (RFC 7578) without decoding the rest:
/// enough to learn which model an upload (image edit, transcription) is for.
public enum MultipartForm {
    public static func field(_ name: String, in body: ByteBuffer, contentType: String) -> String? {
        guard let boundary = boundary(of: contentType) else { return nil }
        let text = String(decoding: body.readableBytesView, as: UTF8.self)
        for part in text.components(separatedBy: "--" + boundary).dropFirst() {
            guard let headerEnd = part.range(of: "\r\n\r\n") ?? part.range(of: "\n\n") else { continue }
            let headers = part[part.startIndex..<headerEnd.lowerBound].lowercased()
            guard headers.contains("name=\"\(name.lowercased())\"") else { continue }
            // The CRLF before the next boundary belongs to the delimiter; a model name has no
            // surrounding whitespace of its own.
            return String(part[headerEnd.upperBound...]).trimmingCharacters(in: .whitespacesAndNewlines)
        }
        return nil
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
}
