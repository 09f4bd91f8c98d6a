import GRPCCore
import LumenAPI

/// Whether a principal exists in an organisation, asked of the services that own them: users
/// and clients of accounts, keys of the keys service. The ledger asks before it creates or
/// shows a pool, or a key's usage, so that a typo answers NOT_FOUND instead of a phantom pool,
/// and another organisation's id is answered as not found.
public protocol PrincipalDirectory: Sendable {
    /// Returns when the principal exists in `organizationID`; throws the owning service's
    /// NOT_FOUND (`user_not_found`, `client_not_found`, `key_not_found`), naming `param`, when
    /// it does not.
    func requireExists(_ principal: Lumen_Common_V1_PrincipalRef, organizationID: String, param: String) async throws
}

/// A `PrincipalDirectory` over the accounts and keys services (in this process or another),
/// called with the internal token.
public struct ServiceDirectory: PrincipalDirectory {
    let accounts: any Lumen_Accounts_V1_AccountsService.ClientProtocol
    let keys: any Lumen_Keys_V1_KeysService.ClientProtocol
    let internalToken: String

    public init(
        accounts: any Lumen_Accounts_V1_AccountsService.ClientProtocol, keys: any Lumen_Keys_V1_KeysService.ClientProtocol,
        internalToken: String
    ) {
        self.accounts = accounts
        self.keys = keys
        self.internalToken = internalToken
    }

    public func requireExists(_ principal: Lumen_Common_V1_PrincipalRef, organizationID: String, param: String) async throws {
        let metadata = Metadata.bearer(internalToken)
        do {
            switch principal.type {
            case .user:
                _ = try await accounts.getUser(
                    .with {
                        $0.organizationID = organizationID
                        $0.userID = principal.id
                    }, metadata: metadata)
            case .client:
                _ = try await accounts.getClient(
                    .with {
                        $0.organizationID = organizationID
                        $0.clientID = principal.id
                    }, metadata: metadata)
            case .key:
                _ = try await keys.getKey(
                    .with {
                        $0.organizationID = organizationID
                        $0.keyID = principal.id
                    }, metadata: metadata)
            default:
                return  // the organisation: the caller's own, checked by `Caller.organization`
            }
        } catch let error as RPCError {
            let cause = ServiceError(error)
            if cause.status == .notFound { throw ServiceError(.notFound, cause.code, cause.message, param: param) }
            throw ServiceError(
                .unavailable, "directory_unavailable", "cannot check that \(principal.id) exists right now; try again")
        }
    }
}
