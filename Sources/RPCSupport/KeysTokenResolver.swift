import GRPCCore
import LumenAPI

/// Resolves management and operator tokens through the keys service's `Authenticate`, wherever that
/// service runs (in this process or another), calling it with the internal token.
public struct KeysTokenResolver: CredentialResolver {
    let keys: any Lumen_Keys_V1_KeysService.ClientProtocol
    let internalToken: String

    public init(keys: any Lumen_Keys_V1_KeysService.ClientProtocol, internalToken: String) {
        self.keys = keys
        self.internalToken = internalToken
    }

    public func resolve(token: String) async throws -> Caller {
        let noun = token.hasPrefix("op-") ? "operator token" : "management token"
        let key: Lumen_Keys_V1_Key
        do {
            key = try await keys.authenticate(.with { $0.secret = token }, metadata: .bearer(internalToken)).key
        } catch let error as RPCError {
            let cause = ServiceError(error)
            switch cause.status {
            case .unauthenticated where cause.code == "invalid_api_key":
                throw ServiceError(.unauthenticated, "invalid_\(noun.replacingOccurrences(of: " ", with: "_"))", "the \(noun) is not valid")
            case .unauthenticated:
                throw ServiceError(.unauthenticated, cause.code, cause.message.replacingOccurrences(of: "API key", with: noun))
            default:
                throw ServiceError(.unavailable, "keys_unavailable", "cannot check the credential: the keys service is unavailable")
            }
        }
        if key.kind == .operator, token.hasPrefix("op-") {
            return .operator(tokenID: key.id)
        }
        guard key.kind == .management, token.hasPrefix("mt-") else {
            throw ServiceError(
                .unauthenticated, "invalid_management_token",
                "sk- keys call the model endpoints; this API takes an mt- management token")
        }
        let userID = key.owner.type == .user ? key.owner.id : key.createdByUserID
        return .management(organizationID: key.organizationID, tokenID: key.id, userID: userID)
    }
}
