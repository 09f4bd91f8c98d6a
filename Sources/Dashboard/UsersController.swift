import Foundation
import GRPCCore
import Gateway
import Hummingbird
import LumenAPI
import RPCSupport
import SharedRules
import WireFormats

/// What an administrator changes on a person: name, administrator flag, groups, and whether
/// they may sign in and use their keys (a deactivated user's sessions end and their keys are
/// refused at once). The accounts service decides who may.
struct UsersController: Sendable {
    let services: GatewayServices

    func addRoutes(to group: RouterGroup<DashboardContext>) {
        group.patch("users/{userId}", use: update)
    }

    /// `{"display_name"?, "is_admin"?, "active"?, "group_ids"?}` (administrators).
    @Sendable func update(_ request: Request, context: DashboardContext) async throws -> JSONResponse<UserObject> {
        let userID = try context.path("userId")
        let body = try await Body.object(request)
        try Body.refuseUnknown(body, allowed: ["display_name", "is_admin", "active", "group_ids"])
        let name = try Body.optionalText(body, "display_name")
        let isAdmin = try Body.optionalBool(body, "is_admin")
        let active = try Body.optionalBool(body, "active")
        var groups: [String]?
        switch body["group_ids"] {
        case nil, .null?: groups = nil
        case .array(let items)?:
            groups = try items.map { item in
                guard case .string(let id) = item else {
                    throw APIError.invalid("invalid_group_ids", "group_ids is a list of group ids", param: "group_ids")
                }
                return id
            }
        default: throw APIError.invalid("invalid_group_ids", "group_ids is a list of group ids", param: "group_ids")
        }
        guard name != nil || isAdmin != nil || active != nil || groups != nil else {
            throw APIError.invalid("empty_update", "give display_name, is_admin, active or group_ids")
        }
        let user = try await APIError.translating(params: ["user_id": "userId"]) {
            try await services.accounts.updateUser(
                .with {
                    $0.userID = userID
                    if let name { $0.displayName = name }
                    if let isAdmin { $0.isAdmin = isAdmin }
                    if let active { $0.active = active }
                    if let groups { $0.groups = .with { $0.ids = groups } }
                }, metadata: try context.acting(services)
            ).user
        }
        return JSONResponse(UserObject(user))
    }
}
