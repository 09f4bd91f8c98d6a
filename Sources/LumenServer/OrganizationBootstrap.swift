import GRPCCore
import LumenAPI

/// The use case `lumen admin bootstrap`, `--demo` and the tests share: an organisation, its
/// first administrator and a management token, across the accounts and keys services. The
/// value is what it produced.
public struct OrganizationBootstrap: Sendable {
    public var organizationID: String
    public var adminUserID: String
    /// The first management token's secret, shown once.
    public var managementToken: String

    /// Creates an organisation and its administrator (accounts), then a management token
    /// owned by that administrator (keys), calling both services as the internal caller.
    public static func run(
        organization: String, adminEmail: String, adminName: String = "",
        accounts: any Lumen_Accounts_V1_AccountsService.ClientProtocol,
        keys: any Lumen_Keys_V1_KeysService.ClientProtocol,
        internalToken: String
    ) async throws -> OrganizationBootstrap {
        let created = try await accounts.bootstrapOrganization(
            .with {
                $0.organizationName = organization
                $0.adminEmail = adminEmail
                $0.adminDisplayName = adminName
            }, metadata: .bearer(internalToken))
        let token = try await keys.createKey(
            .with {
                $0.organizationID = created.organization.id
                $0.kind = .management
                $0.owner = .with {
                    $0.type = .user
                    $0.id = created.admin.id
                }
                $0.name = "Bootstrap token"
                $0.createdByUserID = created.admin.id
            }, metadata: .bearer(internalToken))
        return OrganizationBootstrap(
            organizationID: created.organization.id, adminUserID: created.admin.id, managementToken: token.secret)
    }
}
