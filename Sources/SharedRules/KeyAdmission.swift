import LumenAPI

/// When a key authenticates: it is active and not expired. This is the keys service's rule,
/// kept here so that the gateway's in-memory key cache applies exactly the same one.
public enum KeyAdmission {
    /// nil when the key may be used at `nowMillis`; otherwise the UNAUTHENTICATED error to return.
    public static func refusal(_ key: Lumen_Keys_V1_Key, nowMillis: Int64) -> ServiceError? {
        switch key.status {
        case .active:
            if key.hasExpiresAt && key.expiresAt.millis <= nowMillis {
                return ServiceError(.unauthenticated, "key_expired", "the API key has expired")
            }
            return nil
        case .revoked: return ServiceError(.unauthenticated, "key_revoked", "the API key has been revoked")
        case .suspended: return ServiceError(.unauthenticated, "key_suspended", "the API key is suspended")
        default: return ServiceError(.unauthenticated, "key_inactive", "the API key is inactive")
        }
    }

    /// The answer for a secret that matches no key.
    public static let unknown = ServiceError(.unauthenticated, "invalid_api_key", "the API key is not valid")
}
