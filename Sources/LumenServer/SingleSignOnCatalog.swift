import Accounts
import Foundation
import GRPCCore
import Logging
import LumenAPI
import RPCSupport
import SharedRules
import Yams

/// The `sso:` section of the configuration file: single sign-on per organisation, set by the
/// process that runs the accounts service at each start (as `lumen admin sso set` would).
///
/// ```yaml
/// sso:
///   - organization: Acme            # its name or org_… id
///     issuer: https://idp.example.com/realms/acme
///     client_id: lumen
///     client_secret_env: ACME_OIDC_SECRET
///     allowed_domains: [acme.com]
///     create_people: true
/// ```
public struct SingleSignOnCatalog: Sendable, Equatable {
    public var entries: [(organization: String, sso: Lumen_Accounts_V1_SingleSignOn)] = []

    public init() {}

    public static func == (left: Self, right: Self) -> Bool {
        left.entries.map(\.organization) == right.entries.map(\.organization) && left.entries.map(\.sso) == right.entries.map(\.sso)
    }

    static let keys: Set<String> = [
        "organization", "issuer", "client_id", "client_secret_env", "display_name", "allowed_domains", "admin_claim",
        "admin_value", "groups_claim", "group_map", "create_people", "passwords",
    ]

    static func parse(yaml text: String, path: String) throws -> SingleSignOnCatalog {
        guard let root = try YAMLFile.parse(text, path: path, { try Yams.compose(yaml: $0) }), let list = root["sso"] else {
            return SingleSignOnCatalog()
        }
        guard case .sequence(let items) = list else { throw ConfigurationError("\(path): sso must be a list") }
        var catalog = SingleSignOnCatalog()
        for (index, item) in items.enumerated() {
            let place = "\(path): sso[\(index)]"
            let fields = try ModelCatalog.mapping(item, place, allowed: keys)
            guard let organization = try ModelCatalog.string(fields["organization"], "\(place).organization"), !organization.isEmpty else {
                throw ConfigurationError("\(place).organization is required (its name or org_… id)")
            }
            var groupMap: [String: String] = [:]
            if let node = fields["group_map"] {
                guard case .mapping(let mapping) = node else { throw ConfigurationError("\(place).group_map must be a mapping") }
                for (key, value) in mapping {
                    guard let claim = key.string, let group = value.string else {
                        throw ConfigurationError("\(place).group_map maps a claim's value to a group's name")
                    }
                    groupMap[claim] = group
                }
            }
            var checked = Lumen_Accounts_V1_SingleSignOn()
            checked.issuer = try ModelCatalog.string(fields["issuer"], "\(place).issuer") ?? ""
            checked.clientID = try ModelCatalog.string(fields["client_id"], "\(place).client_id") ?? ""
            checked.groupMap = groupMap
            checked.clientSecretEnv = try ModelCatalog.string(fields["client_secret_env"], "\(place).client_secret_env") ?? ""
            checked.displayName = try ModelCatalog.string(fields["display_name"], "\(place).display_name") ?? ""
            checked.allowedDomains = try ModelCatalog.strings(fields["allowed_domains"], "\(place).allowed_domains")
            checked.adminClaim = try ModelCatalog.string(fields["admin_claim"], "\(place).admin_claim") ?? ""
            checked.adminValue = try ModelCatalog.string(fields["admin_value"], "\(place).admin_value") ?? ""
            checked.groupsClaim = try ModelCatalog.string(fields["groups_claim"], "\(place).groups_claim") ?? ""
            checked.createPeople = try ModelCatalog.bool(fields["create_people"], "\(place).create_people") ?? false
            checked.passwordsAllowed = try ModelCatalog.bool(fields["passwords"], "\(place).passwords") ?? true
            guard !checked.issuer.isEmpty, !checked.clientID.isEmpty else {
                throw ConfigurationError("\(place): issuer and client_id are required")
            }
            catalog.entries.append((organization, checked))
        }
        return catalog
    }
}

extension Deployment {
    /// Sets each organisation's single sign-on of the configuration file (as Lumen itself).
    /// An organisation that does not exist yet is skipped with a warning: its setting applies
    /// at the first start after it is made.
    func applySingleSignOn(to accounts: AccountsService) async throws {
        let catalog = configuration.singleSignOn
        guard !catalog.entries.isEmpty else { return }
        let token = internalToken
        try await withLocalServices([accounts], internalToken: token) { client in
            let accounts = Lumen_Accounts_V1_AccountsService.Client(wrapping: client)
            let organizations = try await accounts.listOrganizations(.init(), metadata: .bearer(token)).organizations
            for (organization, sso) in catalog.entries {
                guard let found = organizations.first(where: { $0.id == organization || $0.name.lowercased() == organization.lowercased() })
                else {
                    logger.warning(
                        "the configuration's single sign-on names an organisation that does not exist (yet); it applies at the first start after it is made",
                        metadata: ["organization": "\(organization)"])
                    continue
                }
                do {
                    _ = try await accounts.setSingleSignOn(
                        .with {
                            $0.organizationID = found.id
                            $0.sso = sso
                        }, metadata: .bearer(token))
                } catch let error as RPCError {
                    let cause = ServiceError(error)
                    throw ConfigurationError("sso of \(organization): \(cause.message)")
                }
            }
        }
    }
}
