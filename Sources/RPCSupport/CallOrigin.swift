import GRPCCore

/// Where a call comes from: the id of the HTTP request that caused it and the client's address.
/// A facade binds it for each request it handles (`RequestIDMiddleware`); every call made
/// meanwhile carries it in its metadata (`Metadata.bearer` adds `lumen-request-id` and
/// `lumen-client-address`); `AuthInterceptor` binds it again for the handler — what the audit
/// log records. A direct gRPC caller may name an address of its own: then the address the call
/// came from is recorded beside it (`203.0.113.5 via 198.51.100.7`), so a claim is never taken
/// alone.
public struct CallOrigin: Sendable, Equatable {
    public var requestID: String
    public var clientAddress: String
    /// The account on the machine that ran a `lumen admin` command on the data directory itself
    /// (as the internal caller): the audit log's `cli` actor.
    public var localUser: String

    public init(requestID: String = "", clientAddress: String = "", localUser: String = "") {
        self.requestID = requestID
        self.clientAddress = clientAddress
        self.localUser = localUser
    }

    @TaskLocal public static var current = CallOrigin()

    static let requestIDKey = "lumen-request-id"
    static let clientAddressKey = "lumen-client-address"
    static let localUserKey = "lumen-local-user"

    /// The origin a call names in `metadata`, the address of its gRPC `peer` (`ipv4:10.0.0.2:5000`,
    /// `ipv6:[::1]:443`; none for `in-process:…`) beside a claimed one that differs.
    static func of(_ metadata: Metadata, peer: String) -> CallOrigin {
        let requestID = metadata[stringValues: requestIDKey].first(where: { _ in true }) ?? ""
        let claimed = metadata[stringValues: clientAddressKey].first(where: { _ in true }) ?? ""
        let seen = address(ofPeer: peer)
        let address =
            switch (claimed.isEmpty, seen.isEmpty) {
            case (true, _): seen
            case (false, true): claimed
            case (false, false): claimed == seen || isLoopback(seen) ? claimed : "\(claimed) via \(seen)"
            }
        let localUser = metadata[stringValues: localUserKey].first(where: { _ in true }) ?? ""
        return CallOrigin(
            requestID: String(requestID.prefix(128)), clientAddress: String(address.prefix(200)), localUser: String(localUser.prefix(100)))
    }

    /// `10.0.0.2` of `ipv4:10.0.0.2:5000`, `::1` of `ipv6:[::1]:443`; empty for other peers.
    static func address(ofPeer peer: String) -> String {
        if peer.hasPrefix("ipv4:") {
            let rest = peer.dropFirst(5)
            return String(rest.lastIndex(of: ":").map { rest[..<$0] } ?? rest)
        }
        if peer.hasPrefix("ipv6:[") {
            let rest = peer.dropFirst(6)
            return String(rest.firstIndex(of: "]").map { rest[..<$0] } ?? rest)
        }
        return ""
    }

    /// A facade on the same machine (a split deployment on one host): its claim stands alone.
    static func isLoopback(_ address: String) -> Bool { address == "::1" || address.hasPrefix("127.") }
}

extension Metadata {
    /// The current origin's entries, when there is one.
    mutating func addOrigin(_ origin: CallOrigin = .current) {
        if !origin.requestID.isEmpty { addString(origin.requestID, forKey: CallOrigin.requestIDKey) }
        if !origin.clientAddress.isEmpty { addString(origin.clientAddress, forKey: CallOrigin.clientAddressKey) }
        if !origin.localUser.isEmpty { addString(origin.localUser, forKey: CallOrigin.localUserKey) }
    }
}
