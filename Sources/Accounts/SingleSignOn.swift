import Foundation
import GRPCCore
import LumenAPI
import RPCSupport
import SharedRules
import Storage
import SwiftProtobuf

/// Single sign-on: each organisation's OpenID Connect provider (`single_sign_on`, the setting as
/// protobuf JSON, never a secret) and the rules of a sign-in through it — who may, who is
/// created, which role and groups the provider's claims give. The gateway runs the flow and
/// verifies the ID token; what the verified claims mean for the organisation is decided here.
extension AccountsService {
    static let ssoMigration = SQLMigration(
        "v6: single sign-on",
        sqlite: [
            """
            CREATE TABLE single_sign_on (
                organization_id TEXT PRIMARY KEY NOT NULL REFERENCES organizations(id), config TEXT NOT NULL,
                updated_at INTEGER NOT NULL
            )
            """
        ],
        postgres: [
            #"""
            CREATE TABLE single_sign_on (
                organization_id TEXT COLLATE "C" PRIMARY KEY NOT NULL REFERENCES organizations(id), config TEXT NOT NULL,
                updated_at BIGINT NOT NULL
            )
            """#
        ])

    /// The organisation whose single sign-on the caller may set or read: its administrators
    /// (a management token, a person who is one), Lumen itself and the operator naming it.
    static func ssoOrganization(_ requested: String) throws -> String {
        switch try Caller.require() {
        case .operator, .internal:
            guard !requested.isEmpty else {
                throw ServiceError.invalid("organization_required", "name the organisation (organization_id)", param: "organization_id")
            }
            return requested
        default:
            let organizationID = try Caller.organization(requested)
            try Caller.requireAdmin(to: "set up single sign-on")
            return organizationID
        }
    }

    public func setSingleSignOn(
        request: Lumen_Accounts_V1_SetSingleSignOnRequest, context: ServerContext
    ) async throws -> Lumen_Accounts_V1_SetSingleSignOnResponse {
        let organizationID = try Self.ssoOrganization(request.organizationID)
        let sso = request.remove ? nil : try SingleSignOnRules.checked(request.sso)
        let now = clock.nowMillis
        try await store.write { db in
            guard try await store.organizationExists(organizationID, db) else { throw AccountsError.organizationNotFound(organizationID) }
            let before = try await Self.singleSignOn(organizationID, db)
            guard before != sso else { return }
            if let sso {
                try await db.execute(
                    """
                    INSERT INTO single_sign_on (organization_id, config, updated_at) VALUES (?, ?, ?)
                    ON CONFLICT (organization_id) DO UPDATE SET config = excluded.config, updated_at = excluded.updated_at
                    """, .text(organizationID), .text(try sso.jsonString()), .integer(now))
            } else {
                try await db.execute("DELETE FROM single_sign_on WHERE organization_id = ?", .text(organizationID))
            }
            try await audit(
                sso == nil ? "sso.remove" : "sso.set", "organization", organizationID, organizationID: organizationID,
                before: before.map(AuditedSingleSignOn.init), after: sso.map(AuditedSingleSignOn.init), in: db)
        }
        return .with { if let sso { $0.sso = sso } }
    }

    public func getSingleSignOn(
        request: Lumen_Accounts_V1_GetSingleSignOnRequest, context: ServerContext
    ) async throws -> Lumen_Accounts_V1_GetSingleSignOnResponse {
        let organizationID = try Self.ssoOrganization(request.organizationID)
        let sso = try await store.read { db in try await Self.singleSignOn(organizationID, db) }
        return .with {
            $0.configured = sso != nil
            if let sso { $0.sso = sso }
        }
    }

    public func listSingleSignOns(
        request: Lumen_Accounts_V1_ListSingleSignOnsRequest, context: ServerContext
    ) async throws -> Lumen_Accounts_V1_ListSingleSignOnsResponse {
        try Caller.requireInternal()
        let rows = try await store.read { db in
            try await db.rows(
                """
                SELECT organizations.id, organizations.name, single_sign_on.config FROM single_sign_on
                JOIN organizations ON organizations.id = single_sign_on.organization_id ORDER BY lower(organizations.name), organizations.id
                """
            ).map { (id: try $0[0] as String, name: try $0[1] as String, config: try $0[2] as String) }
        }
        return .with {
            $0.entries = rows.compactMap { row in
                guard let sso = try? Lumen_Accounts_V1_SingleSignOn(jsonString: row.config) else { return nil }
                return .with {
                    $0.organizationID = row.id
                    $0.organizationName = row.name
                    $0.sso = sso
                }
            }
        }
    }

    public func signInWithSingleSignOn(
        request: Lumen_Accounts_V1_SignInWithSingleSignOnRequest, context: ServerContext
    ) async throws -> Lumen_Accounts_V1_SignInResponse {
        try Caller.requireInternal()
        guard SingleSignOnRules.claims(request.claimsJson) != nil else {
            throw ServiceError.invalid("invalid_claims", "claims_json is a JSON object", param: "claims_json")
        }
        let claimsJSON = request.claimsJson
        var origin = CallOrigin.current
        if origin.clientAddress.isEmpty { origin.clientAddress = request.clientAddress }
        let organizationID = request.organizationID
        let outcome = try await CallOrigin.$current.withValue(origin) {
            try await store.write { db -> Result<Lumen_Accounts_V1_User, ServiceError> in
                guard let sso = try await Self.singleSignOn(organizationID, db) else {
                    return .failure(ServiceError(.notFound, "sso_not_configured", "this organisation has no single sign-on"))
                }
                let claims = SingleSignOnRules.claims(claimsJSON) ?? [:]
                let identity: SingleSignOnRules.Identity
                switch SingleSignOnRules.identity(claims, under: sso) {
                case .failure(let refusal):
                    try await audit(
                        "session.sign_in_failed", "email", String((claims["email"] as? String ?? "").prefix(320)),
                        organizationID: organizationID, after: ["method": "sso", "reason": refusal.message],
                        actor: (type: "anonymous", id: ""), in: db)
                    return .failure(refusal)
                case .success(let found): identity = found
                }
                var record = try? await fetchUser(email: identity.email, organizationID: organizationID, db)
                if let existing = record, !existing.active {
                    let refusal = ServiceError(.permissionDenied, "sso_refused", "\(identity.email) is deactivated in Lumen")
                    try await audit(
                        "session.sign_in_failed", "user", existing.id, organizationID: organizationID,
                        after: ["method": "sso", "reason": refusal.message], actor: (type: "anonymous", id: ""), in: db)
                    return .failure(refusal)
                }
                if record == nil {
                    guard sso.createPeople else {
                        let refusal = ServiceError(
                            .permissionDenied, "sso_refused", "\(identity.email) has no account here; an administrator creates it first")
                        try await audit(
                            "session.sign_in_failed", "email", identity.email, organizationID: organizationID,
                            after: ["method": "sso", "reason": refusal.message], actor: (type: "anonymous", id: ""), in: db)
                        return .failure(refusal)
                    }
                    let created = UserRecord(
                        id: Identifier.make("usr"), organizationID: organizationID, email: identity.email,
                        displayName: (try? Self.displayName(identity.name, email: identity.email)) ?? identity.email,
                        isAdmin: identity.isAdmin ?? false, active: true, createdAt: clock.nowMillis)
                    try await created.insert(db)
                    record = created
                    try await audit(
                        "user.provision", "user", created.id, organizationID: organizationID,
                        after: AuditedUser(try await userMessage(created, db)), actor: (type: "person", id: created.id), in: db)
                }
                guard var person = record else { throw AccountsError.userNotFound(identity.email) }
                // The provider's claims set the role and the groups at every sign-in.
                let before = AuditedUser(try await userMessage(person, db))
                if let isAdmin = identity.isAdmin, isAdmin != person.isAdmin {
                    if !isAdmin && person.isAdmin { try await requireAnotherAdmin(besides: person, deactivating: false, db) }
                    person.isAdmin = isAdmin
                    try await person.update(db)
                }
                if let groupNames = identity.groupNames {
                    let ids = try await Self.groupIDs(named: groupNames, organizationID: organizationID, db)
                    try await store.setGroups(userID: person.id, organizationID: organizationID, groupIDs: ids, db)
                }
                let user = try await userMessage(person, db)
                if AuditedUser(user) != before {
                    try await audit(
                        "user.update", "user", person.id, organizationID: organizationID, before: before, after: AuditedUser(user),
                        actor: (type: "person", id: person.id), in: db)
                }
                try await audit(
                    "session.sign_in", "user", person.id, organizationID: organizationID,
                    after: ["email": identity.email, "method": "sso", "subject": identity.subject],
                    actor: (type: "person", id: person.id), in: db)
                publishMembership(user, afterCommit: db)
                return .success(user)
            }
        }
        switch outcome {
        case .success(let user):
            logger.info("signed in through single sign-on", metadata: ["user_id": "\(user.id)", "organization_id": "\(organizationID)"])
            return .with { $0.user = user }
        case .failure(let refusal):
            throw refusal
        }
    }

    /// The organisation's single sign-on, if it has one.
    static func singleSignOn(_ organizationID: String, _ db: any SQLSession) async throws -> Lumen_Accounts_V1_SingleSignOn? {
        guard let text = try await db.value(String.self, "SELECT config FROM single_sign_on WHERE organization_id = ?", .text(organizationID))
        else { return nil }
        return try Lumen_Accounts_V1_SingleSignOn(jsonString: text)
    }

    /// The ids of the organisation's groups of these names (any case); a name no group has is left out.
    static func groupIDs(named names: Set<String>, organizationID: String, _ db: any SQLSession) async throws -> [String] {
        let wanted = Set(names.map { $0.lowercased() })
        return try await db.rows("SELECT id, name FROM groups WHERE organization_id = ? ORDER BY id", [.text(organizationID)])
            .compactMap { row in wanted.contains((try row[1] as String).lowercased()) ? try row[0] as String : nil }
    }
}

/// What an organisation's single sign-on setting may be, and what a verified ID token's claims
/// mean under it.
enum SingleSignOnRules {
    /// The setting, checked and tidied: INVALID_ARGUMENT `invalid_sso` naming the field.
    static func checked(_ sso: Lumen_Accounts_V1_SingleSignOn) throws -> Lumen_Accounts_V1_SingleSignOn {
        func refuse(_ field: String, _ why: String) -> ServiceError {
            ServiceError.invalid("invalid_sso", "\(field): \(why)", param: "sso.\(field)")
        }
        var sso = sso
        sso.issuer = sso.issuer.trimmingCharacters(in: .whitespaces)
        while sso.issuer.hasSuffix("/") { sso.issuer.removeLast() }
        guard let url = URL(string: sso.issuer), let host = url.host, !host.isEmpty,
            url.scheme == "https" || (url.scheme == "http" && ["127.0.0.1", "::1", "localhost"].contains(host)),
            url.query == nil, url.fragment == nil
        else {
            throw refuse("issuer", "an https URL (http only on loopback), without query or fragment")
        }
        sso.clientID = sso.clientID.trimmingCharacters(in: .whitespaces)
        guard !sso.clientID.isEmpty, sso.clientID.utf8.count <= 300 else { throw refuse("client_id", "1–300 characters") }
        guard sso.clientSecretEnv.isEmpty || sso.clientSecretEnv.wholeMatch(of: /[A-Z_][A-Z0-9_]{0,99}/) != nil else {
            throw refuse("client_secret_env", "the name of an environment variable (A-Z, 0-9, _)")
        }
        sso.displayName = sso.displayName.trimmingCharacters(in: .whitespaces)
        if sso.displayName.isEmpty { sso.displayName = host }
        guard sso.displayName.count <= 60 else { throw refuse("display_name", "at most 60 characters") }
        sso.allowedDomains = try sso.allowedDomains.map { domain in
            let domain = domain.trimmingCharacters(in: .whitespaces).lowercased()
            guard domain.wholeMatch(of: /[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+/) != nil else {
                throw refuse("allowed_domains", "\(domain) is not a domain name")
            }
            return domain
        }
        for (field, claim) in [("admin_claim", sso.adminClaim), ("groups_claim", sso.groupsClaim)] where !claim.isEmpty {
            guard claim.utf8.count <= 100, claim.wholeMatch(of: /[A-Za-z0-9_.:\/-]+/) != nil else {
                throw refuse(field, "a claim name (letters, digits, _ . : / -)")
            }
        }
        guard sso.adminClaim.isEmpty == sso.adminValue.isEmpty else { throw refuse("admin_value", "give admin_claim and admin_value together") }
        guard sso.groupMap.isEmpty || !sso.groupsClaim.isEmpty else { throw refuse("group_map", "a group map needs groups_claim") }
        return sso
    }

    /// The claims of an ID token's JSON, if it is an object.
    static func claims(_ json: String) -> [String: Any]? {
        (try? JSONSerialization.jsonObject(with: Data(json.utf8))) as? [String: Any]
    }

    /// Who the claims say the person is, under the organisation's rules.
    struct Identity {
        var subject: String
        var email: String
        var name: String
        /// The role the admin claim gives (nil: no admin claim set up).
        var isAdmin: Bool?
        /// The Lumen groups the groups claim gives (nil: no groups claim set up).
        var groupNames: Set<String>?
    }

    static func identity(_ claims: [String: Any], under sso: Lumen_Accounts_V1_SingleSignOn) -> Result<Identity, ServiceError> {
        func refused(_ why: String) -> Result<Identity, ServiceError> { .failure(ServiceError(.permissionDenied, "sso_refused", why)) }
        guard let email = (claims["email"] as? String)?.trimmingCharacters(in: .whitespaces).lowercased(), !email.isEmpty,
            email.utf8.count <= 320, let at = email.lastIndex(of: "@"), at != email.startIndex
        else {
            return refused("the provider gave no email address (ask for the email scope)")
        }
        if let verified = claims["email_verified"] as? Bool, !verified { return refused("the provider has not verified \(email)") }
        let domain = String(email[email.index(after: at)...])
        if !sso.allowedDomains.isEmpty, !sso.allowedDomains.contains(domain) {
            return refused("\(domain) is not among the organisation's email domains")
        }
        func values(_ claim: String) -> [String] {
            switch claims[claim] {
            case let text as String: [text]
            case let list as [Any]: list.compactMap { $0 as? String }
            default: []
            }
        }
        let name = (claims["name"] as? String) ?? (claims["preferred_username"] as? String) ?? ""
        return .success(
            Identity(
                subject: claims["sub"] as? String ?? "", email: email, name: String(name.prefix(100)),
                isAdmin: sso.adminClaim.isEmpty ? nil : values(sso.adminClaim).contains(sso.adminValue),
                groupNames: sso.groupsClaim.isEmpty ? nil : Set(values(sso.groupsClaim).compactMap { sso.groupMap[$0] })))
    }
}

/// A single sign-on setting as audit entries and `lumen admin sso` show it.
public struct AuditedSingleSignOn: Encodable, Equatable, Sendable {
    var issuer: String
    var clientID: String
    var clientSecretEnv: String
    var displayName: String
    var allowedDomains: [String]
    var adminClaim: String
    var adminValue: String
    var groupsClaim: String
    var groupMap: [String: String]
    var createPeople: Bool
    var passwordsAllowed: Bool

    public init(_ sso: Lumen_Accounts_V1_SingleSignOn) {
        issuer = sso.issuer
        clientID = sso.clientID
        clientSecretEnv = sso.clientSecretEnv
        displayName = sso.displayName
        allowedDomains = sso.allowedDomains
        adminClaim = sso.adminClaim
        adminValue = sso.adminValue
        groupsClaim = sso.groupsClaim
        groupMap = sso.groupMap
        createPeople = sso.createPeople
        passwordsAllowed = sso.passwordsAllowed
    }

    enum CodingKeys: String, CodingKey {
        case issuer
        case clientID = "client_id"
        case clientSecretEnv = "client_secret_env"
        case displayName = "display_name"
        case allowedDomains = "allowed_domains"
        case adminClaim = "admin_claim"
        case adminValue = "admin_value"
        case groupsClaim = "groups_claim"
        case groupMap = "group_map"
        case createPeople = "create_people"
        case passwordsAllowed = "passwords_allowed"
    }
}
