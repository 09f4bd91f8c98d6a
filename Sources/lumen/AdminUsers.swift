import ArgumentParser
import Foundation
import LumenAPI
import LumenServer

/// `lumen admin user`: the people of an organisation, made over the gRPC port with its
/// management token.
struct UserAdmin: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "user", abstract: "Create the people of an organisation, who sign in with a password.", subcommands: [UserCreate.self])
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
