import Crypto
import Foundation
import GRPCCore
import LumenAPI
import SharedRules
import Synchronization

/// Resolves management and operator tokens through the keys service's `Authenticate`, wherever that
/// service runs (in this process or another), calling it with the internal token.
///
/// A management token made by or for a user acts as that user, an organisation admin: with the
/// accounts service at hand, every call checks that the user is still active (401
/// `token_owner_inactive`) and still an admin (403 `admin_required`), so deactivating or demoting
/// a person stops their tokens at once, as it stops their sessions and keys.
///
/// With the keys and accounts services in this process (`local`: they count their committed
/// changes, and the keys service judges whether a key may still be used now), a management
/// token's resolution is kept and reused for as long as neither service has committed a change
/// of a key or a user since it was made: a call then costs a SHA-256 and a lookup instead of
/// two RPCs and two reads, and a revocation,
/// deactivation or demotion still applies to the very next call. Operator tokens (which
/// `lumen admin operator-token revoke` may revoke from another process) are never kept.
public final class KeysTokenResolver: CredentialResolver {
    let keys: any Lumen_Keys_V1_KeysService.ClientProtocol
    let accounts: (any Lumen_Accounts_V1_AccountsService.ClientProtocol)?
    let internalToken: String
    let local: [any CredentialChangeSource]
    private let kept = Mutex<[Data: Kept]>([:])

    /// A resolution, the token's key (checked again at each use: it may have expired since)
    /// and the changes counted when it was made.
    struct Kept {
        var caller: Caller
        var key: Lumen_Keys_V1_Key
        var changes: UInt64
    }

    /// Resolutions kept at most; past it they are dropped and made again.
    static let keptLimit = 10_000

    public init(
        keys: any Lumen_Keys_V1_KeysService.ClientProtocol, accounts: (any Lumen_Accounts_V1_AccountsService.ClientProtocol)?,
        internalToken: String, local: [any CredentialChangeSource] = []
    ) {
        self.keys = keys
        self.accounts = accounts
        self.internalToken = internalToken
        self.local = local
    }

    /// Whether every source with a say still admits `key`.
    private func admits(_ key: Lumen_Keys_V1_Key) -> Bool {
        var said = false
        for source in local {
            guard let admits = source.stillAdmits(key) else { continue }
            if !admits { return false }
            said = true
        }
        return said
    }

    public func resolve(token: String) async throws -> Caller {
        guard !local.isEmpty, token.hasPrefix("mt-") else { return try await resolveByCalling(token: token).caller }
        // Counted before resolving: a change committed meanwhile leaves this resolution stale at once.
        let changes = local.reduce(0) { $0 &+ $1.credentialChanges.value }
        let digest = Data(SHA256.hash(data: Array(token.utf8)))
        if let kept = kept.withLock({ $0[digest] }), kept.changes == changes, admits(kept.key) {
            return kept.caller
        }
        let (caller, key) = try await resolveByCalling(token: token)
        kept.withLock { kept in
            if kept.count >= Self.keptLimit { kept.removeAll(keepingCapacity: true) }
            kept[digest] = Kept(caller: caller, key: key, changes: changes)
        }
        return caller
    }

    /// Resolves through the keys service's `Authenticate` (and the accounts service for the user).
    private func resolveByCalling(token: String) async throws -> (caller: Caller, key: Lumen_Keys_V1_Key) {
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
            return (.operator(tokenID: key.id), key)
        }
        guard key.kind == .management, token.hasPrefix("mt-") else {
            throw ServiceError(
                .unauthenticated, "invalid_management_token",
                "sk- keys call the model endpoints; this API takes an mt- management token")
        }
        let userID = key.owner.type == .user ? key.owner.id : key.createdByUserID
        if !userID.isEmpty { try await requireActiveAdmin(userID, organizationID: key.organizationID) }
        return (.management(organizationID: key.organizationID, tokenID: key.id, userID: userID), key)
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
