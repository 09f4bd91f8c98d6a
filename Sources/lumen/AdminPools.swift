import ArgumentParser
import Foundation
import LumenAPI
import LumenServer

/// Where the running server's gRPC port is, and the management token to act with. Pool
/// changes go through the ledger service (never the database file): the running ledger keeps
/// its pools in memory and is their only writer.
struct ServerOptions: ParsableArguments {
    @Option(help: "host:port of the gRPC port of `lumen serve` (the process running the service the command calls). (LUMEN_GRPC_ADDRESS, default 127.0.0.1:9090)")
    var server: String?

    @Option(help: "A management token (mt-…) of the organisation. (LUMEN_MANAGEMENT_TOKEN)")
    var token: String?

    var connection: AdminConnection {
        get throws {
            try AdminConnection(server: server, token: token, credential: .managementToken, environment: ProcessInfo.processInfo.environment)
        }
    }
}

/// Whose pool: `--user`, `--client`, `--key`, or the organisation's when none is given.
struct PoolOwnerOptions: ParsableArguments {
    @Option(help: "A user's pool (usr_…). Without --user, --client or --key: the organisation's pool.")
    var user: String?

    @Option(help: "A client's pool (cli_…).")
    var client: String?

    @Option(help: "An API key's pool (key_…).")
    var key: String?

    var owner: Lumen_Common_V1_PrincipalRef {
        get throws { try AdminOutput.poolOwner(user: user, client: client, key: key) }
    }
}

struct PoolAdmin: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pool", abstract: "Show or configure a budget pool.", subcommands: [PoolShow.self, PoolSet.self])
}

struct PoolShow: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "show",
        abstract: "Print a pool as JSON, refills applied up to now.",
        usage: "lumen admin pool show [<pool>] [<options>]",
        discussion: "The organisation's pool unless --user, --client or --key names another. Amounts in USD.")

    @OptionGroup var server: ServerOptions
    @OptionGroup var owner: PoolOwnerOptions

    func run() async throws {
        let owner = try owner.owner
        let pool = try await server.connection.withLedger { ledger, metadata in
            try await ledger.getPool(.with { $0.owner = owner }, metadata: metadata).pool
        }
        try printJSON(PoolOutput(pool))
    }
}

struct PoolSet: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "set",
        abstract: "Set a pool's mode, refill ceiling and hourly refill.",
        usage: "lumen admin pool set --mode <mode> [<pool>] [<options>]",
        discussion: """
            --mode balance: requests spend the pool's balance and are refused at 0 or below until a \
            refill or a grant; unlimited: never refused by this pool; none: no budget set up (not \
            limited; shown as —). --refill-per-hour adds that many USD each hour, never \
            above --limit. Prints the pool as JSON.
            """)

    @OptionGroup var server: ServerOptions
    @OptionGroup var owner: PoolOwnerOptions

    @Option(help: "balance, unlimited or none.")
    var mode: String

    @Option(help: "Refill ceiling in USD (balance pools only); omitted: no ceiling.")
    var limit: String?

    @Option(help: "USD added every hour, up to the limit (balance pools only). Default 0.")
    var refillPerHour: String?

    func run() async throws {
        let owner = try owner.owner
        let poolMode: Lumen_Ledger_V1_PoolMode
        switch mode {
        case "balance": poolMode = .balance
        case "unlimited": poolMode = .unlimited
        case "none": poolMode = .unspecified
        default: throw ValidationError("--mode must be balance, unlimited or none")
        }
        let limitMicros = try limit.map { try AdminOutput.usd($0, option: "--limit") }
        let refillMicros = try refillPerHour.map { try AdminOutput.usd($0, option: "--refill-per-hour") } ?? 0
        let pool = try await server.connection.withLedger { ledger, metadata in
            try await ledger.configurePool(
                .with {
                    $0.owner = owner
                    $0.mode = poolMode
                    if let limitMicros { $0.limitMicros = limitMicros }
                    $0.refillPerHourMicros = refillMicros
                }, metadata: metadata
            ).pool
        }
        try printJSON(PoolOutput(pool))
    }
}

struct GrantCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "grant",
        abstract: "Add money to a pool (or remove it, with a negative amount).",
        usage: "lumen admin grant --amount <usd> --reason <text> [<pool>] [<options>]",
        discussion: """
            Records the grant with its reason and the token's user. A pool with no budget set up \
            becomes a balance pool; an unlimited pool refuses grants. --idempotency-key makes a \
            retry safe: a second grant with the same key answers the first. Prints JSON \
            {"grant", "pool"} with amounts in USD. Example: \
            lumen admin grant --user usr_… --amount 25.50 --reason "November budget"
            """)

    @OptionGroup var server: ServerOptions
    @OptionGroup var owner: PoolOwnerOptions

    @Option(parsing: .unconditional, help: "USD to add, up to 6 decimal places; negative removes (e.g. --amount -5).")
    var amount: String

    @Option(help: "Why (required, at most 500 characters).")
    var reason: String

    @Option(help: "A key that makes retries safe (at most 100 characters).")
    var idempotencyKey: String?

    func run() async throws {
        let owner = try owner.owner
        let micros = try AdminOutput.usd(amount, option: "--amount")
        let response = try await server.connection.withLedger { ledger, metadata in
            try await ledger.grant(
                .with {
                    $0.owner = owner
                    $0.amountMicros = micros
                    $0.reason = reason
                    $0.idempotencyKey = idempotencyKey ?? ""
                }, metadata: metadata)
        }
        try printJSON(GrantOutput(response))
    }
}

struct GrantsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "grants",
        abstract: "List grants, newest first.",
        usage: "lumen admin grants [<pool> | --organization] [<options>]",
        discussion: """
            Every pool's grants of the organisation, or one pool's with --user, --client, --key or \
            --organization. Prints JSON {"grants": [...], "page", "limit", "total", "has_more"}, amounts in USD.
            """)

    @OptionGroup var server: ServerOptions
    @OptionGroup var owner: PoolOwnerOptions

    @Flag(help: "Only the organisation pool's grants.")
    var organization = false

    @Option(help: "Page, from 1.")
    var page = 1

    @Option(help: "Grants per page, 1–100.")
    var limit = 50

    func run() async throws {
        let owner = try owner.owner
        guard !(organization && owner.type != .organization) else {
            throw ValidationError("give --organization or one of --user, --client, --key, not both")
        }
        let filtered = organization || owner.type != .organization
        guard page >= 1, (1...100).contains(limit) else { throw ValidationError("--page must be at least 1 and --limit 1–100") }
        let (page, limit) = (Int32(page), Int32(limit))
        let response = try await server.connection.withLedger { ledger, metadata in
            try await ledger.listGrants(
                .with {
                    if filtered { $0.owner = owner }
                    $0.page = .with {
                        $0.page = page
                        $0.limit = limit
                    }
                }, metadata: metadata)
        }
        try printJSON(GrantListOutput(response))
    }
}
