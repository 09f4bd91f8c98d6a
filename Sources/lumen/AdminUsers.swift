import ArgumentParser
import Foundation
import GRPCCore
import LumenAPI
import LumenServer

/// `lumen admin user`: the people of an organisation, made over the gRPC port with its
/// management token.
struct UserAdmin: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "user", abstract: "Create, (re)activate or promote an organisation's people.",
        subcommands: [UserCreate.self, UserSet.self])
}

struct UserCreate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "create",
        abstract: "Create a user of the token's organisation.",
        usage: "lumen admin user create --email <email> --name <name> [<options>]",
        discussion: """
            Prints the user as JSON {"id", "email", "display_name", "is_admin", "group_ids", …}. \
            With --password-stdin the first line of standard input is the user's password (8 to \
            72 bytes; stored as a bcrypt hash): `printf '%s\\n' "$PASSWORD" | lumen admin user \
            create …`. Without it the user signs in once an administrator's invitation \
            (POST /api/users/{id}/invite) has set one. The password is never an argument, so \
            that it stays out of the shell's history and the process list.
            """)

    @Option(help: "The user's email (unique in the organisation).")
    var email: String

    @Option(help: "The name shown to people (display name).")
    var name: String

    @Flag(help: "Make the user an administrator of the organisation.")
    var admin = false

    @Option(help: "A group to put the user in, by id (grp_…) or name; repeat for several.")
    var group: [String] = []

    @Flag(help: "Read the password from the first line of standard input.")
    var passwordStdin = false

    @OptionGroup var server: ServerOptions

    func run() async throws {
        let password = passwordStdin ? try AdminOutput.secretLine(FileHandle.standardInput.readDataToEndOfFile(), option: "--password-stdin") : ""
        let (email, name, admin, groups) = (self.email, self.name, self.admin, self.group)
        let user = try await server.connection.withAccounts { accounts, metadata in
            var groupIDs: [String] = []
            if !groups.isEmpty {
                let known = try await accounts.listGroups(.init(), metadata: metadata).groups
                for group in groups {
                    guard let found = known.first(where: { $0.id == group || $0.name.lowercased() == group.lowercased() }) else {
                        throw ConfigurationError("--group \(group): no such group in the organisation")
                    }
                    groupIDs.append(found.id)
                }
            }
            return try await accounts.createUser(
                .with {
                    $0.email = email
                    $0.displayName = name
                    $0.isAdmin = admin
                    $0.groupIds = groupIDs
                    $0.password = password
                }, metadata: metadata
            ).user
        }
        try printJSON(UserOutput(user))
    }
}

/// `--active` or `--inactive`.
enum UserActivity: String, EnumerableFlag {
    case active, inactive

    static func help(for value: Self) -> ArgumentHelp? {
        value == .active ? "Let the user sign in again." : "Sign the user out everywhere and keep them out."
    }
}

struct UserSet: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "set",
        abstract: "Reactivate or deactivate a user; make them an administrator or not.",
        usage: "lumen admin user set <user> [--[in]active] [--[no-]admin] [<options>]",
        discussion: """
            The way back when nobody can administer an organisation any more. With the \
            organisation's management token (mt-…) any of the four changes; with the \
            deployment's operator token (op-…, `lumen admin operator-token create` on the \
            machine) and --org, only --active and --admin. Nobody deactivates themselves, and \
            the last active administrator is neither deactivated nor demoted. Prints the user \
            as JSON.
            """)

    @Argument(help: "The user, by id (usr_…) or email.")
    var user: String

    @Flag(help: .hidden)
    var activity: UserActivity?

    @Flag(inversion: .prefixedNo, help: "Make the user an administrator of the organisation (or not).")
    var admin: Bool?

    @Option(help: "With an operator token: the organisation, by id (org_…) or name.")
    var org: String?

    @Option(help: "host:port of the gRPC port of `lumen serve`. (LUMEN_GRPC_ADDRESS, default 127.0.0.1:9090)")
    var server: String?

    @Option(help: "A management token (mt-…) or an operator token (op-…). (LUMEN_MANAGEMENT_TOKEN, else LUMEN_OPERATOR_TOKEN)")
    var token: String?

    func validate() throws {
        if activity == nil && admin == nil {
            throw ValidationError("say what to change: --active, --inactive, --admin or --no-admin")
        }
    }

    func run() async throws {
        let connection = try AdminConnection(
            server: server, token: token, credential: .managementOrOperatorToken, environment: ProcessInfo.processInfo.environment)
        if connection.isOperator && org == nil {
            throw ValidationError("an operator token acts for no organisation: name it with --org <org_… or name>")
        }
        let (user, org, activity, admin) = (self.user, self.org, self.activity, self.admin)
        let changed = try await connection.withAccounts { accounts, metadata in
            let organizationID = try await organization(org, accounts, metadata)
            return try await accounts.updateUser(
                .with {
                    $0.organizationID = organizationID
                    if user.contains("@") { $0.email = user } else { $0.userID = user }
                    if let activity { $0.active = activity == .active }
                    if let admin { $0.isAdmin = admin }
                }, metadata: metadata
            ).user
        }
        try printJSON(UserOutput(changed))
    }
}

/// The organisation `--org` names, by id (org_…) or name (empty: the token's own).
func organization(
    _ org: String?, _ accounts: Lumen_Accounts_V1_AccountsService.Client<AdminConnection.Transport>, _ metadata: Metadata
) async throws -> String {
    guard let org else { return "" }
    if org.hasPrefix("org_") { return org }
    let known = try await accounts.listOrganizations(.init(), metadata: metadata).organizations
    guard let found = known.first(where: { $0.name.lowercased() == org.lowercased() }) else {
        throw ConfigurationError("--org \(org): no such organisation")
    }
    return found.id
}
