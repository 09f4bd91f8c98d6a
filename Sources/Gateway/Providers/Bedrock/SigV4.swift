import Crypto
import Foundation
import SharedRules
import Synchronization

/// An AWS access key pair, with its session token when temporary.
struct AWSCredentials: Sendable, Equatable {
    var accessKeyID: String
    var secretAccessKey: String
    var sessionToken: String?
}

/// AWS Signature Version 4 (`AWS4-HMAC-SHA256`), as AWS's services verify it and botocore
/// signs: the canonical request (method; the path with each segment URI-encoded once more, as
/// every service but S3 expects — a Bedrock model id's `%3A` is signed as `%253A`; the query
/// sorted; the signed headers lowercased, trimmed, sorted; the body's SHA-256), the string to
/// sign over the request's date and scope, and a key derived from the secret per day, region
/// and service. Checked against AWS's published test suite.
enum SigV4 {
    /// The headers to add to a request so that AWS accepts it: `x-amz-date`,
    /// `x-amz-security-token` (temporary credentials) and `authorization`. `headers` are the
    /// request's others to sign (`host` among them), names in any case.
    static func sign(
        method: String, path: String, query: String = "", headers: [(String, String)], body: some Collection<UInt8>,
        credentials: AWSCredentials, region: String, service: String, date: Date
    ) -> [(String, String)] {
        let amzDate = timestamp(date)
        let day = String(amzDate.prefix(8))
        var signed = headers.map { ($0.0.lowercased(), canonicalValue($0.1)) }
        signed.append(("x-amz-date", amzDate))
        if let token = credentials.sessionToken { signed.append(("x-amz-security-token", token)) }
        signed.sort { $0.0 < $1.0 }
        let signedNames = signed.map(\.0).joined(separator: ";")
        let canonical = [
            method.uppercased(),
            canonicalPath(path),
            canonicalQuery(query),
            signed.map { "\($0.0):\($0.1)\n" }.joined(),
            signedNames,
            hex(SHA256.hash(data: Array(body))),
        ].joined(separator: "\n")
        let scope = "\(day)/\(region)/\(service)/aws4_request"
        let stringToSign = "AWS4-HMAC-SHA256\n\(amzDate)\n\(scope)\n\(hex(SHA256.hash(data: Array(canonical.utf8))))"
        let key = keys.key(secret: credentials.secretAccessKey, day: day, region: region, service: service)
        let signature = hex(HMAC<SHA256>.authenticationCode(for: Array(stringToSign.utf8), using: key))
        var added = [("x-amz-date", amzDate)]
        if let token = credentials.sessionToken { added.append(("x-amz-security-token", token)) }
        added.append((
            "authorization",
            "AWS4-HMAC-SHA256 Credential=\(credentials.accessKeyID)/\(scope), SignedHeaders=\(signedNames), Signature=\(signature)"
        ))
        return added
    }

    /// The signing keys derived lately, as the AWS SDKs keep them: one per secret, day, region
    /// and service, so that a request costs one HMAC chain less.
    static let keys = SigningKeys()

    final class SigningKeys: Sendable {
        private let recent = Mutex<[String: SymmetricKey]>([:])

        func key(secret: String, day: String, region: String, service: String) -> SymmetricKey {
            let name = "\(day)/\(region)/\(service)/\(secret)"
            if let key = recent.withLock({ $0[name] }) { return key }
            let key = signingKey(secret: secret, day: day, region: region, service: service)
            recent.withLock { keys in
                if keys.count >= 64 { keys.removeAll() }
                keys[name] = key
            }
            return key
        }
    }

    /// `kSigning = HMAC(HMAC(HMAC(HMAC("AWS4" + secret, day), region), service), "aws4_request")`.
    static func signingKey(secret: String, day: String, region: String, service: String) -> SymmetricKey {
        var key = SymmetricKey(data: Array(("AWS4" + secret).utf8))
        for part in [day, region, service, "aws4_request"] {
            key = SymmetricKey(data: Array(HMAC<SHA256>.authenticationCode(for: Array(part.utf8), using: key)))
        }
        return key
    }

    /// `20150830T123600Z`: the RFC 3339 time without its separators and fraction.
    static func timestamp(_ date: Date) -> String {
        let rfc3339 = RFC3339.format(millis: Int64((date.timeIntervalSince1970 * 1000).rounded(.down)))
        return String(rfc3339.filter { $0 != "-" && $0 != ":" }.prefix(15)) + "Z"
    }

    /// The characters AWS leaves unencoded, by byte.
    static let unreservedBytes: [Bool] = {
        var table = [Bool](repeating: false, count: 256)
        for byte in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~".utf8 { table[Int(byte)] = true }
        return table
    }()

    static func isUnreserved(_ byte: UInt8) -> Bool { unreservedBytes[Int(byte)] }

    /// `value` percent-encoded byte by byte, all but the unreserved (and `/` when `keepSlash`).
    static func uriEncode(_ value: String, keepSlash: Bool = false) -> String {
        let digits = Array("0123456789ABCDEF".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(value.utf8.count)
        for byte in value.utf8 {
            if isUnreserved(byte) || (keepSlash && byte == UInt8(ascii: "/")) {
                out.append(byte)
            } else {
                out += [UInt8(ascii: "%"), digits[Int(byte >> 4)], digits[Int(byte & 0x0F)]]
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// The path as sent, encoded once more (empty: `/`).
    static func canonicalPath(_ path: String) -> String {
        path.isEmpty ? "/" : uriEncode(path, keepSlash: true)
    }

    /// The query's parameters decoded, encoded AWS's way and sorted by name, then value.
    static func canonicalQuery(_ query: String) -> String {
        var pairs: [(name: String, value: String)] = []
        for pair in query.split(separator: "&", omittingEmptySubsequences: true) {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let name = String(parts[0]).removingPercentEncoding ?? String(parts[0])
            let value = parts.count > 1 ? (String(parts[1]).removingPercentEncoding ?? String(parts[1])) : ""
            pairs.append((uriEncode(name), uriEncode(value)))
        }
        pairs.sort { $0.name == $1.name ? $0.value < $1.value : $0.name < $1.name }
        return pairs.map { $0.name + "=" + $0.value }.joined(separator: "&")
    }

    /// A header's value trimmed, its runs of spaces made one.
    static func canonicalValue(_ value: String) -> String {
        value.split(separator: " ", omittingEmptySubsequences: true).joined(separator: " ").trimmingCharacters(in: .whitespaces)
    }

    static func hex(_ bytes: some Sequence<UInt8>) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(64)
        for byte in bytes {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0x0F)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}
