/// What a caller is told when `Authorization` carries no bearer token: a bare key (the scheme
/// missing), another scheme, or nothing.
enum AuthorizationHeader {
    /// The message for `header` (nil: none sent); `prefix` is the token the route takes
    /// (`sk-`, `mt-`).
    static func problem(_ header: String?, prefix: String) -> String {
        let wanted = "`Authorization: Bearer \(prefix)…`"
        guard let header, !header.allSatisfy({ $0 == " " || $0 == "\t" }) else { return "send \(wanted)" }
        let sent = header.drop { $0 == " " || $0 == "\t" }
        if sent.hasPrefix("sk-") || sent.hasPrefix("mt-") || sent.hasPrefix("op-") {
            return "the Authorization header has no scheme: send \(wanted), with `Bearer ` before the token"
        }
        let scheme = sent.prefix { $0 != " " && $0 != "\t" }.prefix(20)
        return "the Authorization header's scheme is \(scheme), not Bearer: send \(wanted)"
    }
}
