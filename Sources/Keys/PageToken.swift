import Foundation
import RPCSupport
import SharedRules

/// `ListKeys`' page tokens: where a page of a list in creation order ended, and which way the
/// list runs (`n`ewest or `o`ldest first) — `n.1764633600123.key_abc`, base64url without
/// padding. Opaque to callers; a token that does not decode, or runs the other way than the
/// request, is INVALID_ARGUMENT `invalid_page_token`.
enum PageToken {
    static func make(after position: KeyListPosition, newestFirst: Bool) -> String {
        Data("\(newestFirst ? "n" : "o").\(position.createdAt).\(position.id)".utf8).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    static func position(_ token: String, newestFirst: Bool) throws -> KeyListPosition {
        var base64 = token.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        base64 += String(repeating: "=", count: (4 - base64.utf8.count % 4) % 4)
        guard token.utf8.count <= 200, let data = Data(base64Encoded: base64), let text = String(data: data, encoding: .utf8)
        else { throw invalid }
        let parts = text.split(separator: ".", maxSplits: 2, omittingEmptySubsequences: false)
        guard parts.count == 3, parts[0] == (newestFirst ? "n" : "o"), let createdAt = Int64(parts[1]), !parts[2].isEmpty
        else { throw invalid }
        return KeyListPosition(createdAt: createdAt, id: String(parts[2]))
    }

    static let invalid = ServiceError.invalid(
        "invalid_page_token", "page_token must be a next_page_token of this list, in the same order", param: "page_token")
}
