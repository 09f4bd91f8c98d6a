import GRPCCore

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

    @TaskLocal public static var current: Caller?

    /// The caller, or UNAUTHENTICATED when the call did not go through `AuthInterceptor`.
    public static func require() throws -> Caller {
        guard let caller = current else {
            throw ServiceError(.unauthenticated, "missing_credentials", "this call carries no credential")
        }
        return caller
    }

    /// Passes only the internal token; a management token gets PERMISSION_DENIED.
    public static func requireInternal() throws {
        guard case .internal = try require() else {
            throw ServiceError(
                .permissionDenied, "internal_only",
                "this call is reserved for Lumen's own processes")
        }
    }

    /// Passes the deployment's own callers: the internal token (the configuration file) and
    /// operator tokens. An organisation's management token gets PERMISSION_DENIED.
    public static func requireOperator() throws {
        switch try require() {
        case .internal, .operator: return
        case .management:
            throw ServiceError(
                .permissionDenied, "operator_only",
                "models, backends and prices belong to the deployment: use an operator token (op-…, `lumen admin operator-token create` on the machine) or the configuration file"
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
        case .operator:
            throw ServiceError(
                .permissionDenied, "organization_token_required",
                "an operator token acts for no organisation: use the organisation's management token (mt-…)")
        }
    }

    /// The user behind a management token, if any.
    public var userID: String? {
        if case .management(_, _, let userID) = self, !userID.isEmpty { return userID }
        return nil
    }
}
