import GRPCCore
import LumenAPI
import SharedRules

/// Who is making the current RPC, as established by `AuthInterceptor`.
///
/// Service handlers read it through `Caller.current`; it is bound for the duration of each
/// call (including the body of a server stream).
public enum Caller: Sendable, Equatable {
    /// Another Lumen process, or the gateway in the same process, holding the deployment's
    /// internal token: trusted to act for any organisation.
    case `internal`
    /// A management token (`mt-…`): an administrator of one organisation.
    case management(organizationID: String, tokenID: String, userID: String)
    /// An operator token (`op-…`): the deployment's operator, who owns what every organisation
    /// shares (models, backends, prices) and acts for no organisation.
    case `operator`(tokenID: String)
    /// A person of an organisation, acting through a Lumen facade: an administrator of it or
    /// a member (who acts for themselves and the clients they manage).
    case person(Person)

    @TaskLocal public static var current: Caller?

    /// The caller, or UNAUTHENTICATED when the call did not go through `AuthInterceptor`.
    public static func require() throws -> Caller {
        guard let caller = current else {
            throw ServiceError(.unauthenticated, "missing_credentials", "this call carries no credential")
        }
        return caller
    }

    /// Passes only the internal token; a management token or a person gets PERMISSION_DENIED.
    public static func requireInternal() throws {
        guard case .internal = try require() else {
            throw ServiceError(
                .permissionDenied, "internal_only",
                "this call is reserved for Lumen's own processes")
        }
    }

    /// Passes the deployment's own callers: the internal token (the configuration file) and
    /// operator tokens. An organisation's management token gets PERMISSION_DENIED, saying
    /// `whose` the thing is.
    public static func requireOperator(
        _ whose: String = "models, backends and prices belong to the deployment"
    ) throws {
        switch try require() {
        case .internal, .operator: return
        case .management, .person:
            throw ServiceError(
                .permissionDenied, "operator_only",
                "\(whose): use an operator token (op-…, `lumen admin operator-token create` on the machine) or the configuration file"
            )
        }
    }

    /// The organisation a request acts on: `requested`, or the management token's own
    /// organisation when `requested` is empty.
    ///
    /// - Throws: PERMISSION_DENIED when a management token names another organisation;
    ///   INVALID_ARGUMENT when the internal caller names none.
    public static func organization(_ requested: String) throws -> String {
        switch try require() {
        case .internal:
            guard !requested.isEmpty else {
                throw ServiceError(
                    .invalidArgument, "organization_required", "organization_id is required",
                    param: "organization_id")
            }
            return requested
        case .management(let organizationID, _, _):
            if requested.isEmpty || requested == organizationID { return organizationID }
            throw ServiceError(
                .permissionDenied, "organization_mismatch",
                "this management token belongs to another organisation")
        case .person(let person):
            if requested.isEmpty || requested == person.organizationID { return person.organizationID }
            throw ServiceError(.permissionDenied, "organization_mismatch", "you belong to another organisation")
        case .operator:
            throw ServiceError(
                .permissionDenied, "organization_token_required",
                "an operator token acts for no organisation: use the organisation's management token (mt-…)")
        }
    }

    /// The user behind a management token or the person acting, if any.
    public var userID: String? {
        switch self {
        case .management(_, _, let userID) where !userID.isEmpty: userID
        case .person(let person): person.userID
        default: nil
        }
    }

    /// The person acting, if the caller is one.
    public var person: Person? {
        if case .person(let person) = self { return person }
        return nil
    }

    /// Passes the organisation's administrators: management tokens, admin persons, and the
    /// internal caller. A member gets PERMISSION_DENIED `admin_required`, saying what needs it.
    /// Call after `organization(_:)`, which refuses operators and other organisations.
    public static func requireAdmin(to action: String) throws {
        if case .person(let person) = try require(), !person.isAdmin {
            throw ServiceError(.permissionDenied, "admin_required", "only an organisation's administrators may \(action)")
        }
    }

    /// Passes callers who may act for `principal`'s own things (keys, consents, usage, pool):
    /// administrators and the internal caller for anyone of the organisation; a member for
    /// themselves and the clients they manage (PERMISSION_DENIED `not_permitted` otherwise).
    /// The organisation itself is an administrator's. A key is judged by its owner.
    public static func requireActing(for principal: Lumen_Common_V1_PrincipalRef, to action: String) throws {
        guard case .person(let person) = try require(), !person.mayActFor(principal) else { return }
        let whose =
            switch principal.type {
            case .client: "for clients you manage"
            case .user: "for yourself"
            default: "for yourself or clients you manage"
            }
        throw ServiceError(.permissionDenied, "not_permitted", "you may \(action) only \(whose)")
    }
}

extension Caller {
    /// Who the audit log names for this caller: its kind (`internal`, `management_token`,
    /// `operator`, `person`) and id (a token's `key_…`, a person's `usr_…`; none for `internal`).
    public var auditActor: (type: String, id: String) {
        switch self {
        case .internal: ("internal", "")
        case .management(_, let tokenID, _): ("management_token", tokenID)
        case .operator(let tokenID): ("operator", tokenID)
        case .person(let person): ("person", person.userID)
        }
    }
}
