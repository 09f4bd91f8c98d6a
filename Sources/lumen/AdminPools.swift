import ArgumentParser
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import LumenAPI
import LumenServer
import RPCSupport
import SharedRules

/// Where the running server's gRPC port is, and the management token to act with. Pool
/// changes go through the ledger service (never the database file): the running ledger keeps
/// its pools in memory and is their only writer.
struct ServerOptions: ParsableArguments {
    @Option(help: "host:port of the gRPC port of `lumen serve` (the process running the ledger). (LUMEN_GRPC_ADDRESS, default 127.0.0.1:9090)")
    var server: String?

    @Option(help: "A management token (mt-…) of the organisation. (LUMEN_MANAGEMENT_TOKEN)")
    var token: String?

    /// Runs `body` with a ledger client on the server; an RPC error is printed as
    /// `error: message (code)` and exits 1.
    func withLedger<Result: Sendable>(
        _ body: (Lumen_Ledger_V1_LedgerService.Client<HTTP2ClientTransport.Posix>, Metadata) async throws -> Result
    ) async throws -> Result {
        let target = try GRPCTarget(
            server: server, token: token, tokenVariable: "LUMEN_MANAGEMENT_TOKEN", prefix: "mt-", noun: "a management token")
        return try await target.call(service: "the ledger") { client, metadata in
            try await body(Lumen_Ledger_V1_LedgerService.Client(wrapping: client), metadata)
        }
    }
}

/// A running server's gRPC port and the token to call it with, as the admin commands take them.
struct GRPCTarget {
    var host: String
    var port: Int
    var token: String

    /// Reads `--server` (or LUMEN_GRPC_ADDRESS) and `--token` (or `tokenVariable`), which must start with `prefix`.
    init(server: String?, token: String?, tokenVariable: String, prefix: String, noun: String) throws {
        let environment = ProcessInfo.processInfo.environment
        func value(_ flag: String?, _ name: String) -> String? {
            flag ?? environment.nonEmpty(name)
        }
        let address = value(server, "LUMEN_GRPC_ADDRESS") ?? "127.0.0.1:9090"
        let (host, port) = ServeConfiguration.split(address)
        guard !host.isEmpty, (1...65_535).contains(port) else {
            throw ValidationError("--server must be host:port, not \(address)")
        }
        guard let token = value(token, tokenVariable) else {
            throw ValidationError("\(noun) is required: --token \(prefix)… or \(tokenVariable)")
        }
        guard token.hasPrefix(prefix) else {
            throw ValidationError("--token must be \(noun) (\(prefix)…)")
        }
        (self.host, self.port, self.token) = (host, port, token)
    }

    /// Runs `body` with a client of the server; a server that cannot be reached is named (other
    /// RPC errors are reported by `Lumen.main`).
    func call<Result: Sendable>(
        service: String, _ body: (GRPCClient<HTTP2ClientTransport.Posix>, Metadata) async throws -> Result
    ) async throws -> Result {
        do {
            return try await withGRPCClient(
                transport: try HTTP2ClientTransport.Posix(target: .dns(host: host, port: port), transportSecurity: .plaintext)
            ) { client in
                try await body(client, .bearer(token))
            }
        } catch let error as RPCError where error.code == .unavailable && ServiceError(error).code == "service_unavailable" {
            var standardError = FileHandleOutputStream.standardError
            print("error: cannot reach \(service) at \(host):\(port) (is `lumen serve` running? --server)", to: &standardError)
            throw ExitCode.failure
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
        get throws {
            let given = [(Lumen_Common_V1_PrincipalType.user, user), (.client, client), (.key, key)].filter { $0.1 != nil }
            guard given.count <= 1 else { throw ValidationError("give at most one of --user, --client, --key") }
            guard let (type, id) = given.first, let id else { return .with { $0.type = .organization } }
            return .with {
                $0.type = type
                $0.id = id
            }
        }
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
        let pool = try await server.withLedger { ledger, metadata in
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
        let limitMicros = try limit.map { try usd($0, option: "--limit") }
        let refillMicros = try refillPerHour.map { try usd($0, option: "--refill-per-hour") } ?? 0
        let pool = try await server.withLedger { ledger, metadata in
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
        let micros = try usd(amount, option: "--amount")
        let response = try await server.withLedger { ledger, metadata in
            try await ledger.grant(
                .with {
                    $0.owner = owner
                    $0.amountMicros = micros
                    $0.reason = reason
                    $0.idempotencyKey = idempotencyKey ?? ""
                }, metadata: metadata)
        }
        try printJSON(GrantOutput(grant: .init(response.grant), pool: .init(response.pool)))
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
        let response = try await server.withLedger { ledger, metadata in
            try await ledger.listGrants(
                .with {
                    if filtered { $0.owner = owner }
                    $0.page = .with {
                        $0.page = page
                        $0.limit = limit
                    }
                }, metadata: metadata)
        }
        try printJSON(GrantList(
            grants: response.grants.map(GrantOutput.Grant.init), page: Int(response.pageInfo.page),
            limit: Int(response.pageInfo.limit), total: response.pageInfo.total, hasMore: response.pageInfo.hasMore_p))
    }
}

struct GrantList: Encodable {
    var grants: [GrantOutput.Grant]
    var page: Int
    var limit: Int
    var total: Int64
    var hasMore: Bool

    enum CodingKeys: String, CodingKey {
        case grants, page, limit, total
        case hasMore = "has_more"
    }
}

/// Micro-USD of a USD amount typed on the command line, exactly.
private func usd(_ text: String, option: String) throws -> Int64 {
    guard let micros = USD.micros(parsing: text) else {
        throw ValidationError("\(option) must be a USD amount such as 12.50 (at most 6 decimal places), not \(text)")
    }
    return micros
}

func printJSON(_ value: some Encodable) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys]
    print(String(decoding: try encoder.encode(value), as: UTF8.self))
}

struct PoolOutput: Encodable {
    var organizationID: String
    var owner: String
    var state: String
    var balance: Decimal
    var reserved: Decimal
    var spent: Decimal
    var limit: Decimal?
    var refillPerHour: Decimal
    var nextRefillAt: String?
    var asOf: String

    enum CodingKeys: String, CodingKey {
        case organizationID = "organization_id"
        case owner, state, balance, reserved, spent, limit
        case refillPerHour = "refill_per_hour"
        case nextRefillAt = "next_refill_at"
        case asOf = "as_of"
    }

    init(_ pool: Lumen_Ledger_V1_Pool) {
        organizationID = pool.organizationID
        owner = pool.owner.publicName
        state = pool.mode.publicName
        balance = USD.amount(pool.balanceMicros)
        reserved = USD.amount(pool.reservedMicros)
        spent = USD.amount(pool.spentMicros)
        limit = pool.hasLimitMicros ? USD.amount(pool.limitMicros) : nil
        refillPerHour = USD.amount(pool.refillPerHourMicros)
        nextRefillAt = pool.hasNextRefillAt ? RFC3339.format(millis: pool.nextRefillAt.millis) : nil
        asOf = RFC3339.format(millis: pool.asOf.millis)
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(organizationID, forKey: .organizationID)
        try container.encode(owner, forKey: .owner)
        try container.encode(state, forKey: .state)
        try container.encode(balance, forKey: .balance)
        try container.encode(reserved, forKey: .reserved)
        try container.encode(spent, forKey: .spent)
        try container.encode(limit, forKey: .limit)
        try container.encode(refillPerHour, forKey: .refillPerHour)
        try container.encode(nextRefillAt, forKey: .nextRefillAt)
        try container.encode(asOf, forKey: .asOf)
    }
}

struct GrantOutput: Encodable {
    struct Grant: Encodable {
        var id: String
        var owner: String
        var amount: Decimal
        var reason: String
        var grantedByUserID: String
        var createdAt: String

        enum CodingKeys: String, CodingKey {
            case id, owner, amount, reason
            case grantedByUserID = "granted_by_user_id"
            case createdAt = "created_at"
        }

        init(_ grant: Lumen_Ledger_V1_GrantRecord) {
            id = grant.id
            owner = grant.owner.publicName
            amount = USD.amount(grant.amountMicros)
            reason = grant.reason
            grantedByUserID = grant.grantedByUserID
            createdAt = RFC3339.format(millis: grant.createdAt.millis)
        }
    }

    var grant: Grant
    var pool: PoolOutput
}
