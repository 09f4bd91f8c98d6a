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
        group.post("users", use: create)
        group.patch("users/{userId}", use: update)
        group.get("groups", use: groups)
        group.post("groups", use: createGroup)
    }

    /// `{"email", "display_name"?, "is_admin"?, "group_ids"?}` (administrators): a person
    /// without a password yet; an invitation link (`POST /api/users/{id}/invite`) sets it.
    @Sendable func create(_ request: Request, context: DashboardContext) async throws -> JSONResponse<UserObject> {
        let body = try await Body.object(request)
        try Body.refuseUnknown(body, allowed: ["email", "display_name", "is_admin", "group_ids"])
        let email = try Body.text(body, "email")
        let name = try Body.optionalText(body, "display_name")
        let isAdmin = try Body.optionalBool(body, "is_admin") ?? false
        let groups = try Self.groupIDs(body) ?? []
        let user = try await APIError.translating {
            try await services.accounts.createUser(
                .with {
                    $0.email = email
                    if let name { $0.displayName = name }
                    $0.isAdmin = isAdmin
                    $0.groupIds = groups
                }, metadata: try context.acting(services)
            ).user
        }
        return JSONResponse(UserObject(user))
    }

    /// The organisation's groups (model access policies allow or block them).
    @Sendable func groups(_ request: Request, context: DashboardContext) async throws -> JSONResponse<ListOf<GroupObject>> {
        JSONResponse(ListOf(data: try await groups(context)))
    }

    func groups(_ context: DashboardContext) async throws -> [GroupObject] {
        try await APIError.translating {
            try await services.accounts.listGroups(.init(), metadata: try context.acting(services)).groups
        }.map(GroupObject.init)
    }

    /// `{"name", "description"?}` (administrators).
    @Sendable func createGroup(_ request: Request, context: DashboardContext) async throws -> JSONResponse<GroupObject> {
        let body = try await Body.object(request)
        try Body.refuseUnknown(body, allowed: ["name", "description"])
        let name = try Body.text(body, "name")
        let description = try Body.optionalText(body, "description")
        let group = try await APIError.translating {
            try await services.accounts.createGroup(
                .with {
                    $0.name = name
                    if let description { $0.description_p = description }
                }, metadata: try context.acting(services)
            ).group
        }
        return JSONResponse(GroupObject(group))
    }

    /// `group_ids`: a list of group ids, or nil when absent.
    static func groupIDs(_ body: [String: JSONValue]) throws -> [String]? {
        switch body["group_ids"] {
        case nil, .null?: return nil
        case .array(let items)?:
            return try items.map { item in
                guard case .string(let id) = item else {
                    throw APIError.invalid("invalid_group_ids", "group_ids is a list of group ids", param: "group_ids")
                }
                return id
            }
        default: throw APIError.invalid("invalid_group_ids", "group_ids is a list of group ids", param: "group_ids")
        }
    }

    /// `{"display_name"?, "is_admin"?, "active"?, "group_ids"?}` (administrators).
    @Sendable func update(_ request: Request, context: DashboardContext) async throws -> JSONResponse<UserObject> {
        let userID = try context.path("userId")
        let body = try await Body.object(request)
        try Body.refuseUnknown(body, allowed: ["display_name", "is_admin", "active", "group_ids"])
        let name = try Body.optionalText(body, "display_name")
        let isAdmin = try Body.optionalBool(body, "is_admin")
        let active = try Body.optionalBool(body, "active")
        let groups = try Self.groupIDs(body)
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

/// A group of the organisation.
struct GroupObject: Encodable, Sendable {
    var id: String
    var name: String
    var description: String

    init(_ group: Lumen_Accounts_V1_Group) {
        id = group.id
        name = group.name
        description = group.description_p
    }
}
