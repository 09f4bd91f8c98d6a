import ArgumentParser
import Foundation
import GRPCCore
import LumenAPI
import LumenServer

/// `lumen admin sso`: an organisation's single sign-on through an OpenID Connect provider,
/// set over the gRPC port with its management token (or the operator's, naming it).
struct SSOAdmin: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sso", abstract: "Set up, show or remove an organisation's single sign-on.",
        subcommands: [SSOSet.self, SSOShow.self, SSORemove.self])
}

/// Where the server is, which token acts, and for which organisation.
struct SSOTarget: ParsableArguments {
    @Option(help: "With an operator token: the organisation, by id (org_…) or name.")
    var org: String?

    @Option(help: "host:port of the gRPC port of `lumen serve`. (LUMEN_GRPC_ADDRESS, default 127.0.0.1:9090)")
    var server: String?

    @Option(help: "A management token (mt-…) or an operator token (op-…). (LUMEN_MANAGEMENT_TOKEN, else LUMEN_OPERATOR_TOKEN)")
    var token: String?

    /// Runs `body` with the accounts service and the organisation's id.
    func withAccounts<Result: Sendable>(
        _ body: @Sendable (Lumen_Accounts_V1_AccountsService.Client<AdminConnection.Transport>, String, Metadata) async throws -> Result
    ) async throws -> Result {
        let connection = try AdminConnection(
            server: server, token: token, credential: .managementOrOperatorToken, environment: ProcessInfo.processInfo.environment)
        if connection.isOperator && org == nil {
            throw ValidationError("an operator token acts for no organisation: name it with --org <org_… or name>")
        }
        return try await connection.withAccounts { accounts, metadata in
            try await body(accounts, try await organization(org, accounts, metadata), metadata)
        }
    }
}

struct SSOSet: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "set",
        abstract: "Sign an organisation's people in through an OpenID Connect provider.",
        usage: "lumen admin sso set --issuer <url> --client-id <id> [<options>]",
        discussion: """
            Register Lumen at the provider with the redirect URI {public URL}/login/sso/callback \
            (--public-url of `lumen serve`). The client secret stays in the gateway's \
            environment: --client-secret-env names its variable. People sign in with the \
            provider's `email` claim: those of --allowed-domain only, created on first sign-in \
            with --create-people. --admin-claim/--admin-value make a person an administrator; \
            --groups-claim with --group-map value=Group sets their groups at each sign-in. \
            --no-passwords turns password sign-in off for the organisation. Replaces the whole \
            setting; prints it as JSON.
            """)

    @OptionGroup var target: SSOTarget

    @Option(help: "The provider's issuer URL (https; its /.well-known/openid-configuration is read).")
    var issuer: String

    @Option(help: "The client id Lumen is registered with at the provider.")
    var clientID: String

    @Option(help: "The environment variable of `lumen serve` holding the client secret (none: a public client).")
    var clientSecretEnv: String?

    @Option(help: "The button's name: \"Sign in with <name>\" (default: the issuer's host).")
    var displayName: String?

    @Option(name: .customLong("allowed-domain"), help: "An email domain people may sign in from; repeat for more (default: any).")
    var allowedDomains: [String] = []

    @Option(help: "A claim that makes a person an administrator when it holds --admin-value.")
    var adminClaim: String?

    @Option(help: "The value of --admin-claim that means an administrator.")
    var adminValue: String?

    @Option(help: "A claim listing the person's groups at the provider.")
    var groupsClaim: String?

    @Option(name: .customLong("group-map"), help: "value=Group: a value of --groups-claim and the Lumen group it means; repeat for more.")
    var groupMap: [String] = []

    @Flag(help: "Create people on their first sign-in (else only people created in Lumen may sign in).")
    var createPeople = false

    @Flag(inversion: .prefixedNo, help: "Let the organisation's people sign in with a password too.")
    var passwords = true

    func run() async throws {
        var sso = Lumen_Accounts_V1_SingleSignOn.with {
            $0.issuer = issuer
            $0.clientID = clientID
            $0.clientSecretEnv = clientSecretEnv ?? ""
            $0.displayName = displayName ?? ""
            $0.allowedDomains = allowedDomains
            $0.adminClaim = adminClaim ?? ""
            $0.adminValue = adminValue ?? ""
            $0.groupsClaim = groupsClaim ?? ""
            $0.createPeople = createPeople
            $0.passwordsAllowed = passwords
        }
        for pair in groupMap {
            let parts = pair.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty else {
                throw ValidationError("--group-map takes value=Group, not \(pair)")
            }
            sso.groupMap[parts[0]] = parts[1]
        }
        let set = try await target.withAccounts { [sso] accounts, organizationID, metadata in
            try await accounts.setSingleSignOn(
                .with {
                    $0.organizationID = organizationID
                    $0.sso = sso
                }, metadata: metadata
            ).sso
        }
        try printJSON(SingleSignOnOutput(set))
    }
}

struct SSOShow: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "show", abstract: "Print an organisation's single sign-on as JSON (null when it has none).",
        usage: "lumen admin sso show [<options>]")

    @OptionGroup var target: SSOTarget

    func run() async throws {
        let found = try await target.withAccounts { accounts, organizationID, metadata in
            try await accounts.getSingleSignOn(.with { $0.organizationID = organizationID }, metadata: metadata)
        }
        try printJSON(found.configured ? SingleSignOnOutput(found.sso) : nil)
    }
}

struct SSORemove: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "remove", abstract: "Stop an organisation's single sign-on; passwords work again.",
        usage: "lumen admin sso remove [<options>]")

    @OptionGroup var target: SSOTarget

    func run() async throws {
        _ = try await target.withAccounts { accounts, organizationID, metadata in
            try await accounts.setSingleSignOn(
                .with {
                    $0.organizationID = organizationID
                    $0.remove = true
                }, metadata: metadata)
        }
        try printJSON(SingleSignOnOutput?.none)
    }
}
