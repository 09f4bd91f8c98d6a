import GRPCCore
import LumenAPI
import SharedRules

/// Whether a principal exists in an organisation, asked of the services that own them: users
/// and clients of accounts, keys of the keys service. The ledger asks before it creates or
/// shows a pool, or a key's usage, so that a typo answers NOT_FOUND instead of a phantom pool,
/// and another organisation's id is answered as not found.
public protocol PrincipalDirectory: Sendable {
    /// Returns when the principal exists in `organizationID`; throws the owning service's
    /// NOT_FOUND (`user_not_found`, `client_not_found`, `key_not_found`), naming `param`, when
    /// it does not.
    func requireExists(_ principal: Lumen_Common_V1_PrincipalRef, organizationID: String, param: String) async throws

    /// The owner of a key of `organizationID` (NOT_FOUND `key_not_found`, naming `param`, when
    /// there is none).
    func owner(ofKey keyID: String, organizationID: String, param: String) async throws -> Lumen_Common_V1_PrincipalRef

    /// The ids of every key `owner` has in `organizationID`, revoked ones too.
    func keyIDs(ownedBy owner: Lumen_Common_V1_PrincipalRef, organizationID: String) async throws -> Set<String>
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
            throw Self.translated(error, param: param, subject: principal.id)
        }
    }

    public func owner(ofKey keyID: String, organizationID: String, param: String) async throws -> Lumen_Common_V1_PrincipalRef {
        do {
            return try await keys.getKey(
                .with {
                    $0.organizationID = organizationID
                    $0.keyID = keyID
                }, metadata: .bearer(internalToken)
            ).key.owner
        } catch let error as RPCError {
            throw Self.translated(error, param: param, subject: keyID)
        }
    }

    public func keyIDs(ownedBy owner: Lumen_Common_V1_PrincipalRef, organizationID: String) async throws -> Set<String> {
        var ids = Set<String>()
        var page: Int32 = 1
        do {
            while true {
                let response = try await keys.listKeys(
                    .with {
                        $0.organizationID = organizationID
                        $0.owner = owner
                        $0.includeDeleted = true
                        $0.page = .with {
                            $0.page = page
                            $0.limit = 1000
                        }
                    }, metadata: .bearer(internalToken))
                ids.formUnion(response.keys.map(\.id))
                guard response.pageInfo.hasMore_p else { return ids }
                page += 1
            }
        } catch let error as RPCError {
            throw Self.translated(error, param: "owner", subject: owner.id)
        }
    }

    /// NOT_FOUND as the owning service said it, naming `param`; anything else: the directory
    /// could not answer.
    static func translated(_ error: RPCError, param: String, subject: String) -> ServiceError {
        let cause = ServiceError(error)
        if cause.status == .notFound { return ServiceError(.notFound, cause.code, cause.message, param: param) }
        return ServiceError(.unavailable, "directory_unavailable", "cannot check \(subject) right now; try again")
    }
}

extension Caller {
    /// Throws NOT_FOUND unless `principal` exists in the organisation, when `directory` is set
    /// and the caller is a person or a management token — people, who mistype and must not
    /// reach another organisation's ids; Lumen's own processes (the internal token) name
    /// principals from their records. The organisation itself always exists.
    public static func requireExists(
        _ principal: Lumen_Common_V1_PrincipalRef, organizationID: String, param: String, in directory: (any PrincipalDirectory)?
    ) async throws {
        guard let directory, principal.type != .organization else { return }
        switch current {
        case .management, .person: try await directory.requireExists(principal, organizationID: organizationID, param: param)
        default: return
        }
    }
}
