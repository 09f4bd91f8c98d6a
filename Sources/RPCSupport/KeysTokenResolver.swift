import GRPCCore
import LumenAPI

/// Resolves management tokens through the keys service's `Authenticate`, wherever that
/// service runs (in this process or another), calling it with the internal token.
public struct KeysTokenResolver: ManagementTokenResolver {
    let keys: any Lumen_Keys_V1_KeysService.ClientProtocol
    let internalToken: String

    public init(keys: any Lumen_Keys_V1_KeysService.ClientProtocol, internalToken: String) {
        self.keys = keys
        self.internalToken = internalToken
    }

    public func resolve(managementToken: String) async throws -> Caller {
        let key: Lumen_Keys_V1_Key
        do {
            key = try await keys.authenticate(.with { $0.secret = managementToken }, metadata: .bearer(internalToken)).key
        } catch let error as RPCError {
            let cause = ServiceError(error)
            switch cause.status {
            case .unauthenticated where cause.code == "invalid_api_key":
                throw ServiceError(.unauthenticated, "invalid_management_token", "the management token is not valid")
            case .unauthenticated:
                throw ServiceError(.unauthenticated, cause.code, cause.message.replacingOccurrences(of: "API key", with: "management token"))
            default:
                throw ServiceError(.unavailable, "keys_unavailable", "cannot check the credential: the keys service is unavailable")
            }
        }
        guard key.kind == .management else {
            throw ServiceError(
                .unauthenticated, "invalid_management_token",
                "sk- keys call the model endpoints; this API takes an mt- management token")
        }
        let userID = key.owner.type == .user ? key.owner.id : key.createdByUserID
        return .management(organizationID: key.organizationID, tokenID: key.id, userID: userID)
    }
}
