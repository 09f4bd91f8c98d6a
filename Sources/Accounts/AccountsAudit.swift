import Audit
import GRPCCore
import LumenAPI
import RPCSupport
import Storage

/// The accounts service's audit log (`Storage.AuditTrail` in its own tables): each change is
/// recorded in the transaction that makes it, with the values before and after as the entries
/// show them (below: never a password's hash nor an invitation's token); the security events
/// (sign-ins, failed ones, lockouts) in a transaction of their own.
extension AccountsService {
    /// Records `action` on `target` by the current caller (or `actor`), with `before` and
    /// `after`, in `db`'s transaction.
    func audit(
        _ action: String, _ targetType: String, _ targetID: String, organizationID: String,
        before: (any Encodable)? = nil, after: (any Encodable)? = nil, actor: (type: String, id: String)? = nil,
        in db: any SQLSession
    ) async throws {
        var entry = ServiceAudit.entry(
            action, targetType, targetID, organizationID: organizationID, actor: actor, at: clock.nowMillis)
        entry.before = before.map { AuditTrail.json($0) } ?? ""
        entry.after = after.map { AuditTrail.json($0) } ?? ""
        try await AuditTrail.append(entry, in: db)
    }

    /// Walks the accounts service's audit log in `store` (`lumen admin audit verify`).
    public static func verifyAudit(_ store: Store, signer: AuditSigner?) async throws -> AuditVerification {
        try await store.store.verifyAudit(signer: signer)
    }

    /// Prunes the audit entries older than `retentionDays` behind a signed checkpoint; how many
    /// went (none without a signer or a retention).
    public func pruneAudit(retentionDays: Int) async throws -> Int64 {
        try await store.pruneAudit(olderThan: retentionDays, signer: auditSigner, now: clock.nowMillis)
    }


    public func listAuditLog(
        request: Lumen_Common_V1_ListAuditLogRequest, context: ServerContext
    ) async throws -> Lumen_Common_V1_ListAuditLogResponse {
        try await ServiceAudit.list(request, from: store)
    }

    public func verifyAuditLog(
        request: Lumen_Common_V1_VerifyAuditLogRequest, context: ServerContext
    ) async throws -> Lumen_Common_V1_VerifyAuditLogResponse {
        try await ServiceAudit.verify(store, signer: auditSigner)
    }
}

extension AccountsStore: AuditLogged {}

/// A user as audit entries show them.
struct AuditedUser: Encodable, Equatable {
    var email: String
    var displayName: String
    var isAdmin: Bool
    var active: Bool
    var groupIDs: [String]

    init(_ user: Lumen_Accounts_V1_User) {
        email = user.email
        displayName = user.displayName
        isAdmin = user.isAdmin
        active = user.active
        groupIDs = user.groupIds
    }

    enum CodingKeys: String, CodingKey {
        case email
        case displayName = "display_name"
        case isAdmin = "is_admin"
        case active
        case groupIDs = "group_ids"
    }
}

/// A client as audit entries show them.
struct AuditedClient: Encodable, Equatable {
    var name: String
    var description: String
    var active: Bool
    var managerUserIDs: [String]

    init(_ client: Lumen_Accounts_V1_Client) {
        name = client.name
        description = client.description_p
        active = client.active
        managerUserIDs = client.managerUserIds
    }

    enum CodingKeys: String, CodingKey {
        case name, description, active
        case managerUserIDs = "manager_user_ids"
    }
}

/// A named thing (an organisation, a group) as audit entries show it.
struct AuditedName: Encodable {
    var name: String
    var description: String?
}

/// What a sign-in event records about the attempt.
struct AuditedSignIn: Encodable {
    var email: String
    /// Which limit of failures the attempt reached (a lockout).
    var lockedOut: String?

    enum CodingKeys: String, CodingKey {
        case email
        case lockedOut = "locked_out"
    }
}
