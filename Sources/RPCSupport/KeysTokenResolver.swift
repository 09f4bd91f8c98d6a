import GRPCCore
import LumenAPI

/// Resolves management and operator tokens through the keys service's `Authenticate`, wherever that
/// service runs (in this process or another), calling it with the internal token.
///
/// A management token made by or for a user acts as that user, an organisation admin: with the
/// accounts service at hand, every call checks that the user is still active (401
/// `token_owner_inactive`) and still an admin (403 `admin_required`), so deactivating or demoting
/// a person stops their tokens at once, as it stops their sessions and keys.
public struct KeysTokenResolver: CredentialResolver {
    let keys: any Lumen_Keys_V1_KeysService.ClientProtocol
    let accounts: (any Lumen_Accounts_V1_AccountsService.ClientProtocol)?
    let internalToken: String

    public init(
        keys: any Lumen_Keys_V1_KeysService.ClientProtocol, accounts: (any Lumen_Accounts_V1_AccountsService.ClientProtocol)?,
        internalToken: String
    ) {
        self.keys = keys
        self.accounts = accounts
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
        if !userID.isEmpty { try await requireActiveAdmin(userID, organizationID: key.organizationID) }
        return .management(organizationID: key.organizationID, tokenID: key.id, userID: userID)
    }

    private func requireActiveAdmin(_ userID: String, organizationID: String) async throws {
        guard let accounts else { return }
        let user: Lumen_Accounts_V1_User
        do {
            user = try await accounts.getUser(
                .with {
                    $0.organizationID = organizationID
                    $0.userID = userID
                }, metadata: .bearer(internalToken)
            ).user
        } catch let error as RPCError where error.code == .notFound {
            user = .init()
        } catch is RPCError {
            throw ServiceError(.unavailable, "accounts_unavailable", "cannot check the credential: the accounts service is unavailable")
        }
        guard user.active else {
            throw ServiceError(
                .unauthenticated, "token_owner_inactive", "the user this management token acts for is deactivated")
        }
        guard user.isAdmin else {
            throw ServiceError(
                .permissionDenied, "admin_required",
                "the user this management token acts for is no longer an organisation administrator")
        }
    }
}
