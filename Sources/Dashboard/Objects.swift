import LumenAPI
import SharedRules

/// A user as `/api` and `lumen admin user` show it.
public struct UserObject: Encodable, Sendable {
    var id: String
    var organizationID: String
    var email: String
    var displayName: String
    var isAdmin: Bool
    var active: Bool
    var groupIDs: [String]
    var createdAt: String

    public init(_ user: Lumen_Accounts_V1_User) {
        id = user.id
        organizationID = user.organizationID
        email = user.email
        displayName = user.displayName
        isAdmin = user.isAdmin
        active = user.active
        groupIDs = user.groupIds
        createdAt = RFC3339.format(millis: user.createdAt.millis)
    }

    enum CodingKeys: String, CodingKey {
        case id, email, active
        case organizationID = "organization_id"
        case displayName = "display_name"
        case isAdmin = "is_admin"
        case groupIDs = "group_ids"
        case createdAt = "created_at"
    }
}

/// Who is signed in, and the token their state-changing requests send back.
struct SessionObject: Encodable, Sendable {
    var user: UserObject
    var managedClientIDs: [String]
    var csrfToken: String

    enum CodingKeys: String, CodingKey {
        case user
        case managedClientIDs = "managed_client_ids"
        case csrfToken = "csrf_token"
    }
}

/// A one-time invitation to set a password.
struct InviteObject: Encodable, Sendable {
    var url: String
    var token: String
    var expiresAt: String

    enum CodingKeys: String, CodingKey {
        case url, token
        case expiresAt = "expires_at"
    }
}
