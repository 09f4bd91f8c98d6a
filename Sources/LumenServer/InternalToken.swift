import RPCSupport
import SharedRules

public enum InternalToken {
    /// The secret the processes of a deployment authenticate each other with.
    ///
    /// All-in-one, a fresh random token serves the in-process calls. Split, every process
    /// must share the same LUMEN_INTERNAL_TOKEN, so it is required.
    public static func resolve(_ value: String?, configuration: ServeConfiguration) throws -> String {
        if let value, !value.isEmpty {
            guard value.count >= 16 else { throw ConfigurationError("LUMEN_INTERNAL_TOKEN must be at least 16 characters") }
            guard !value.hasPrefix("mt-"), !value.hasPrefix("sk-") else {
                throw ConfigurationError("LUMEN_INTERNAL_TOKEN must not look like an mt- or sk- key")
            }
            return value
        }
        let split = configuration.components != Set(Component.allCases) || !configuration.addresses.isEmpty
        if split {
            throw ConfigurationError(
                "a split deployment needs LUMEN_INTERNAL_TOKEN, the same secret in every process (for example: openssl rand -hex 32)")
        }
        return "it-" + Identifier.secret(count: 48)
    }
}
