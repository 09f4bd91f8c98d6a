import Crypto
import Foundation
import LumenAPI
import RPCSupport
import SharedRules

/// Secrets of keys and tokens: made once, shown once, stored only as SHA-256 digests.
///
/// A secret is a prefix (`sk-`, `mt-` or `op-`) and 48 random letters and digits (about 285 bits),
/// so a plain SHA-256 digest is safe to store: there is nothing to guess.
enum Secret {
    static let randomLength = 48

    static func make(kind: Lumen_Keys_V1_KeyKind) -> String {
        let prefix =
            switch kind {
            case .management: "mt-"
            case .operator: "op-"
            default: "sk-"
            }
        return prefix + Identifier.secret(count: randomLength)
    }

    static func digest(_ secret: String) -> Data {
        Data(SHA256.hash(data: Array(secret.utf8)))
    }

    /// First 4 + last 4 characters, for recognising a key in a list.
    static func hint(_ secret: String) -> String {
        "\(secret.prefix(4))...\(secret.suffix(4))"
    }

    /// The visible prefix, for example `sk-abc123...`.
    static func displayPrefix(_ secret: String) -> String {
        "\(secret.prefix(9))..."
    }
}
