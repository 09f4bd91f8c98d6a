import RPCSupport
import SharedRules

/// The errors of the accounts service.
enum AccountsError {
    static func organizationExists(_ name: String) -> ServiceError {
        ServiceError(.alreadyExists, "organization_exists", "an organisation named \(name) already exists", param: "organization_name")
    }

    static func organizationNotFound(_ id: String) -> ServiceError {
        ServiceError(.notFound, "organization_not_found", "no organisation \(id)", param: "organization_id")
    }

    static func userExists(_ email: String) -> ServiceError {
        ServiceError(.alreadyExists, "user_exists", "a user with email \(email) already exists", param: "email")
    }

    static func userNotFound(_ id: String) -> ServiceError {
        ServiceError(.notFound, "user_not_found", "no user \(id) in this organisation", param: "user_id")
    }

    static func groupExists(_ name: String) -> ServiceError {
        ServiceError(.alreadyExists, "group_exists", "a group named \(name) already exists", param: "name")
    }

    static func groupNotFound(_ id: String) -> ServiceError {
        ServiceError(.notFound, "group_not_found", "no group \(id) in this organisation", param: "group_ids")
    }

    static func clientExists(_ name: String) -> ServiceError {
        ServiceError(.alreadyExists, "client_exists", "a client named \(name) already exists", param: "name")
    }

    static func clientNotFound(_ id: String) -> ServiceError {
        ServiceError(.notFound, "client_not_found", "no client \(id) in this organisation", param: "client_id")
    }

    static func invalidEmail(_ email: String) -> ServiceError {
        .invalid("invalid_email", "\"\(email)\" is not an email address", param: "email")
    }

    static func invalidName(_ param: String, _ message: String) -> ServiceError {
        .invalid("invalid_name", message, param: param)
    }
}
