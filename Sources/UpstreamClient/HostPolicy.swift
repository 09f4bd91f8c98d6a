import Foundation
import NIOCore
import NIOPosix

/// Which hosts Lumen may call at an address a caller (or an organisation's administrator)
/// chose — images given by URL (`--image-url-hosts`), alert webhooks (`--alert-webhook-hosts`):
/// the hosts the operator named, wherever they resolve, and with `*` any other host at a public
/// address. Fetching a URL somebody else chose is a door into the deployment's network (SSRF):
/// loopback, private, link-local, carrier-grade NAT, multicast and reserved addresses are
/// reached only when named.
public struct HostPolicy: Sendable, Equatable {
    /// Hosts the operator named: exact names or addresses, or `*.example.com` for the
    /// subdomains of `example.com`. Called whatever address they resolve to.
    public private(set) var hosts: [String] = []
    /// `*` among them: any other host too, when the address it resolves to is public.
    public private(set) var anyPublicHost = false

    /// No host.
    public static let none = HostPolicy()

    public var isOff: Bool { hosts.isEmpty && !anyPublicHost }

    init() {}

    /// `list`: comma-separated entries (`assets.example.com`, `*.example.com`, `10.0.0.7`, `*`);
    /// empty: none.
    public init(list: String) throws(HostPolicyError) {
        for entry in list.split(separator: ",") {
            let host = entry.trimmingCharacters(in: .whitespaces).lowercased()
            if host.isEmpty { continue }
            if host == "*" {
                anyPublicHost = true
                continue
            }
            let name = host.hasPrefix("*.") ? String(host.dropFirst(2)) : host
            guard !name.isEmpty, !name.contains("*"), !name.contains("/"), !name.contains("@"),
                name.unicodeScalars.allSatisfy({ $0.isASCII && $0.value > 0x20 })
            else {
                throw HostPolicyError(
                    "\"\(entry)\" is not a host: give host names (assets.example.com), *.example.com for a domain's subdomains, addresses, or * for any public host")
            }
            hosts.append(host)
        }
    }

    /// The host of a URL as a policy compares it: lower-cased, without an IPv6 literal's brackets
    /// or a trailing dot; nil when there is none.
    public static func host(of components: URLComponents) -> String? {
        guard var host = components.host?.lowercased(), !host.isEmpty else { return nil }
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        if host.hasSuffix(".") { host.removeLast() }
        return host
    }

    /// Why a host may not be called.
    public enum Refusal: Error, Sendable, Equatable {
        /// Neither named nor covered by `*`.
        case notAllowed
        case doesNotResolve
        /// Not named, and at a loopback, private, link-local or reserved address.
        case notPublic
    }

    /// Where to connect for `host` (as `host(of:)` gives it) on `port`: resolved off the event
    /// loops, and for a host the operator did not name, only a public address. Connect to this
    /// address (`UpstreamHTTPRequest.address`), so a name cannot resolve elsewhere in between.
    public func address(of host: String, port: Int) async throws(Refusal) -> SocketAddress {
        let (allowed, publicOnly) = admits(host)
        guard allowed else { throw .notAllowed }
        let address: SocketAddress
        do {
            address = try await NIOThreadPool.singleton.runIfActive { try SocketAddress.makeAddressResolvingHost(host, port: port) }
        } catch {
            throw .doesNotResolve
        }
        guard !publicOnly || Self.isPublic(address) else { throw .notPublic }
        return address
    }

    /// Whether `host` (lowercased, no brackets) may be called, and whether only at a public address.
    public func admits(_ host: String) -> (allowed: Bool, publicOnly: Bool) {
        let named = hosts.contains { entry in
            entry.hasPrefix("*.") ? host.hasSuffix(entry.dropFirst()) : host == entry
        }
        if named { return (true, false) }
        return (anyPublicHost, true)
    }

    /// Whether `address` is one anybody on the internet could reach: not loopback, private,
    /// shared (carrier-grade NAT), link-local, documentation, benchmarking, multicast or
    /// reserved — IPv4 inside IPv6 (mapped, NAT64, 6to4) judged as IPv4.
    public static func isPublic(_ address: SocketAddress) -> Bool {
        switch address {
        case .v4(let v4):
            return isPublic(v4: withUnsafeBytes(of: v4.address.sin_addr) { Array($0) })
        case .v6(let v6):
            return isPublic(v6: withUnsafeBytes(of: v6.address.sin6_addr) { Array($0) })
        case .unixDomainSocket:
            return false
        }
    }

    public static func isPublic(v4 bytes: [UInt8]) -> Bool {
        guard bytes.count == 4 else { return false }
        let (a, b, c) = (bytes[0], bytes[1], bytes[2])
        switch a {
        case 0, 10, 127: return false
        case 100 where (64...127).contains(b): return false  // shared address space
        case 169 where b == 254: return false  // link-local
        case 172 where (16...31).contains(b): return false
        case 192 where b == 168: return false
        case 192 where b == 0 && (c == 0 || c == 2): return false  // IETF protocol assignments, documentation
        case 198 where b == 18 || b == 19: return false  // benchmarking
        case 198 where b == 51 && c == 100, 203 where b == 0 && c == 113: return false  // documentation
        case 224...255: return false  // multicast, reserved, broadcast
        default: return true
        }
    }

    public static func isPublic(v6 bytes: [UInt8]) -> Bool {
        guard bytes.count == 16 else { return false }
        if bytes[0..<10].allSatisfy({ $0 == 0 }) {
            // ::, ::1, IPv4-compatible (::a.b.c.d) and IPv4-mapped (::ffff:a.b.c.d).
            if bytes[10] == 0xFF && bytes[11] == 0xFF { return isPublic(v4: Array(bytes[12..<16])) }
            return false
        }
        if bytes[0..<12] == [0x00, 0x64, 0xFF, 0x9B, 0, 0, 0, 0, 0, 0, 0, 0] { return isPublic(v4: Array(bytes[12..<16])) }  // NAT64
        if bytes[0] == 0x20 && bytes[1] == 0x02 { return isPublic(v4: Array(bytes[2..<6])) }  // 6to4
        if bytes[0] & 0xFE == 0xFC { return false }  // unique local
        if bytes[0] == 0xFE && bytes[1] & 0xC0 == 0x80 { return false }  // link-local
        if bytes[0] == 0xFF { return false }  // multicast
        if bytes[0] == 0x20 && bytes[1] == 0x01 && bytes[2] == 0x0D && bytes[3] == 0xB8 { return false }  // documentation
        if bytes[0] == 0x01 && bytes[1] == 0x00 && bytes[2..<8].allSatisfy({ $0 == 0 }) { return false }  // discard
        return true
    }
}

public struct HostPolicyError: Error, CustomStringConvertible, Sendable {
    public let description: String
    init(_ description: String) { self.description = description }
}
