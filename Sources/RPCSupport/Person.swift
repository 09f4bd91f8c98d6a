import GRPCCore
import LumenAPI
import SharedRules

/// A person of an organisation acting through a Lumen facade (the dashboard's `/api`): who they
/// are, whether they administer the organisation and which clients they manage, as the facade
/// established it for this request from the accounts service.
///
/// A person reaches a service only through a Lumen process: the call carries the deployment's
/// internal token and these facts in `lumen-acting-*` metadata (`Metadata.acting(as:internalToken:)`).
/// The services decide what the person may do from them (seed 000's table).
public struct Person: Sendable, Equatable {
    public var organizationID: String
    public var userID: String
    public var isAdmin: Bool
    /// The clients (`cli_…`) the person manages.
    public var managedClientIDs: Set<String>

    public init(organizationID: String, userID: String, isAdmin: Bool, managedClientIDs: Set<String> = []) {
        self.organizationID = organizationID
        self.userID = userID
        self.isAdmin = isAdmin
        self.managedClientIDs = managedClientIDs
    }

    /// Whether the person may act for `principal`'s own things (its keys, consents, usage):
    /// admins for anyone of the organisation, everyone for themselves, managers for their
    /// clients. A key is judged by its owner, which the caller resolves first.
    public func mayActFor(_ principal: Lumen_Common_V1_PrincipalRef) -> Bool {
        if isAdmin { return true }
        switch principal.type {
        case .user: return principal.id == userID
        case .client: return managedClientIDs.contains(principal.id)
        default: return false
        }
    }

    static let userKey = "lumen-acting-user"
    static let organizationKey = "lumen-acting-organization"
    static let roleKey = "lumen-acting-role"
    static let managesKey = "lumen-acting-manages"

    /// The person `metadata` names, nil when it names none; a malformed one is refused.
    static func from(_ metadata: Metadata) throws -> Person? {
        func value(_ key: String) -> String? { metadata[stringValues: key].first(where: { _ in true }) }
        guard let userID = value(userKey) else { return nil }
        guard let organizationID = value(organizationKey), !organizationID.isEmpty, !userID.isEmpty,
            let role = value(roleKey), role == "admin" || role == "member"
        else {
            throw ServiceError(
                .invalidArgument, "invalid_acting_person",
                "\(userKey) needs \(organizationKey) and \(roleKey) (admin or member)")
        }
        let manages = value(managesKey).map { $0.split(separator: ",").map(String.init) } ?? []
        return Person(organizationID: organizationID, userID: userID, isAdmin: role == "admin", managedClientIDs: Set(manages))
    }
}

extension Metadata {
    /// Metadata with which a Lumen process acts for `person`: the internal token and the
    /// person's facts.
    public static func acting(as person: Person, internalToken: String) -> Metadata {
        var metadata = Metadata.bearer(internalToken)
        metadata.addString(person.userID, forKey: Person.userKey)
        metadata.addString(person.organizationID, forKey: Person.organizationKey)
        metadata.addString(person.isAdmin ? "admin" : "member", forKey: Person.roleKey)
        metadata.addString(person.managedClientIDs.sorted().joined(separator: ","), forKey: Person.managesKey)
        return metadata
    }
}

extension Lumen_Common_V1_PrincipalRef {
    /// A user as a principal.
    public static func user(_ id: String) -> Self {
        .with {
            $0.type = .user
            $0.id = id
        }
    }

    /// A client as a principal.
    public static func client(_ id: String) -> Self {
        .with {
            $0.type = .client
            $0.id = id
        }
    }
}
