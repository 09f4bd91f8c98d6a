import Foundation
import GRPCCore
import Gateway
import Hummingbird
import LumenAPI
import RPCSupport
import SharedRules

/// Seed 000: the clients a person may see, a client's page (usage cards, managers, keys), and
/// what administrators and managers change on it; users found by name or email. Who may do
/// what is the accounts, keys, ledger and registry services' decision.
struct ClientsController: Sendable {
    let services: GatewayServices
    let coins: Coins
    let keys: KeysController

    func addRoutes(to group: RouterGroup<DashboardContext>) {
        group.get("clients", use: list)
        group.post("clients", use: create)
        group.get("clients/{clientId}", use: detail)
        group.patch("clients/{clientId}", use: update)
        group.post("clients/{clientId}/managers/{userId}") { request, context in try await managers(request, context, add: true) }
        group.delete("clients/{clientId}/managers/{userId}") { request, context in try await managers(request, context, add: false) }
        group.get("users", use: users)
    }

    /// `?query=`: administrators see every client, others those they manage, inactive ones too.
    @Sendable func list(_ request: Request, context: DashboardContext) async throws -> JSONResponse<ListOf<ClientObject>> {
        let query = try ListQuery(request, sorts: ["name"], defaultSort: "name", flags: [])
        let clients = try await self.clients(context)
        return JSONResponse(ListOf(data: try query.sorted(clients.filter { query.matches($0.name) }) { client, _ in
            .text(client.name.lowercased())
        }))
    }

    /// The clients the person may see, inactive ones too.
    func clients(_ context: DashboardContext) async throws -> [ClientObject] {
        try await APIError.translating {
            try await services.accounts.listClients(.with { $0.includeInactive = true }, metadata: try context.acting(services)).clients
        }.map(ClientObject.init)
    }

    /// `{"name", "description"?}` (administrators).
    @Sendable func create(_ request: Request, context: DashboardContext) async throws -> JSONResponse<ClientObject> {
        let body = try await Body.object(request)
        try Body.refuseUnknown(body, allowed: ["name", "description"])
        let name = try Body.text(body, "name")
        let description = try Body.optionalText(body, "description")
        let client = try await APIError.translating {
            try await services.accounts.createClient(
                .with {
                    $0.name = name
                    if let description { $0.description_p = description }
                }, metadata: try context.acting(services)
            ).client
        }
        return JSONResponse(ClientObject(client))
    }

    /// The client's page: the four usage cards, managers with name and email, its keys.
    @Sendable func detail(_ request: Request, context: DashboardContext) async throws -> JSONResponse<ClientDetailObject> {
        let clientID = try context.path("clientId")
        async let detail = self.detail(clientID, context: context)
        async let active = keys.page(of: .client(clientID), query: ListQuery(sort: "name"), limit: nil, context: context)
        let (found, listed) = try await (detail, active)
        return JSONResponse(ClientDetailObject(found, keys: listed.keys, coins: coins))
    }

    /// The client's cards and managers (its keys are listed by `KeysController`, the API's
    /// every active key, the page's one page of them).
    struct Detail {
        var client: Lumen_Accounts_V1_Client
        var managers: [PersonObject]
        var pool: Lumen_Ledger_V1_Pool
        /// Every model's usage by the client's keys, revoked ones too (the ledger's owner totals).
        var usage: [Lumen_Ledger_V1_ModelTotals]
    }

    func detail(_ clientID: String, context: DashboardContext) async throws -> Detail {
        let metadata = try context.acting(services)
        let client = try await APIError.translating {
            try await services.accounts.getClient(.with { $0.clientID = clientID }, metadata: metadata).client
        }
        let owner = Lumen_Common_V1_PrincipalRef.client(client.id)
        return try await APIError.translating {
            async let usage = services.ledger.getOwnerUsage(.with { $0.owner = owner }, metadata: metadata).models
            async let pool = services.ledger.getPool(.with { $0.owner = owner }, metadata: metadata).pool
            var managers: [PersonObject] = []
            for userID in client.managerUserIds {
                managers.append(PersonObject(try await services.accounts.getUser(.with { $0.userID = userID }, metadata: metadata).user))
            }
            return Detail(client: client, managers: managers, pool: try await pool, usage: try await usage)
        }
    }

    /// `{"name"?, "description"?, "active"?}`: managers rename and describe, administrators
    /// also activate and deactivate (a deactivated client's keys are refused at once).
    @Sendable func update(_ request: Request, context: DashboardContext) async throws -> JSONResponse<ClientObject> {
        let clientID = try context.path("clientId")
        let body = try await Body.object(request)
        try Body.refuseUnknown(body, allowed: ["name", "description", "active"])
        let name = try Body.optionalText(body, "name")
        let description = try Body.optionalText(body, "description")
        let active = try Body.optionalBool(body, "active")
        guard name != nil || description != nil || active != nil else {
            throw APIError.invalid("empty_update", "give name, description or active")
        }
        let client = try await APIError.translating {
            try await services.accounts.updateClient(
                .with {
                    $0.clientID = clientID
                    if let name { $0.name = name }
                    if let description { $0.description_p = description }
                    if let active { $0.active = active }
                }, metadata: try context.acting(services)
            ).client
        }
        return JSONResponse(ClientObject(client))
    }

    /// Adds or removes a manager (administrators).
    func managers(_ request: Request, _ context: DashboardContext, add: Bool) async throws -> JSONResponse<ClientObject> {
        let clientID = try context.path("clientId")
        let userID = try context.path("userId")
        let metadata = try context.acting(services)
        let client = try await APIError.translating(params: ["user_id": "userId", "client_id": "clientId"]) {
            if add {
                return try await services.accounts.addClientManager(
                    .with {
                        $0.clientID = clientID
                        $0.userID = userID
                    }, metadata: metadata
                ).client
            }
            return try await services.accounts.removeClientManager(
                .with {
                    $0.clientID = clientID
                    $0.userID = userID
                }, metadata: metadata
            ).client
        }
        return JSONResponse(ClientObject(client))
    }

    /// `?query=`: up to 10 users whose email, name or a word of their name starts with it
    /// (administrators and managers, who pick managers).
    @Sendable func users(_ request: Request, context: DashboardContext) async throws -> JSONResponse<ListOf<PersonObject>> {
        let search = try RequestRules.query(request.uri.queryParameters, known: ["query"])["query"] ?? ""
        let users = try await APIError.translating {
            try await services.accounts.listUsers(
                .with {
                    $0.search = search
                    $0.page = .with {
                        $0.page = 1
                        $0.limit = 10
                    }
                }, metadata: try context.acting(services)
            ).users
        }
        return JSONResponse(ListOf(data: users.map(PersonObject.init)))
    }

}

/// A client as lists show it.
struct ClientObject: Encodable, Sendable {
    var id: String
    var name: String
    var description: String
    var active: Bool
    var managerIDs: [String]
    var createdAt: String

    init(_ client: Lumen_Accounts_V1_Client) {
        id = client.id
        name = client.name
        description = client.description_p
        active = client.active
        managerIDs = client.managerUserIds
        createdAt = RFC3339.format(millis: client.createdAt.millis)
    }

    enum CodingKeys: String, CodingKey {
        case id, name, description, active
        case managerIDs = "manager_ids"
        case createdAt = "created_at"
    }
}

/// A person as a manager list or a user search shows them.
struct PersonObject: Encodable, Sendable {
    var id: String
    var displayName: String
    var email: String

    init(_ user: Lumen_Accounts_V1_User) {
        id = user.id
        displayName = user.displayName
        email = user.email
    }

    enum CodingKeys: String, CodingKey {
        case id, email
        case displayName = "display_name"
    }
}

/// Tokens (input + output) and coins spent.
struct UsageObject: Encodable, Sendable {
    var tokens: Int64
    var coinsSpent: Decimal

    init(tokens: Int64, costMicros: Int64, coins: Coins) {
        self.tokens = tokens
        self.coinsSpent = coins.amount(micros: costMicros)
    }

    enum CodingKeys: String, CodingKey {
        case tokens
        case coinsSpent = "coins_spent"
    }
}

/// A coin pool as the seeds show it: `balance` (a number of coins; exhausted at 0 or below),
/// `unlimited`, or `not_configured` (—); with its ceiling, hourly refill and next refill.
struct PoolObject: Encodable, Sendable {
    var state: String
    var balance: Decimal?
    var exhausted: Bool
    var limit: Decimal?
    var refillPerHour: Decimal
    var nextRefillAt: String?

    init(_ pool: Lumen_Ledger_V1_Pool, coins: Coins) {
        state = pool.mode.publicName
        balance = pool.mode == .balance ? coins.amount(micros: pool.balanceMicros) : nil
        exhausted = pool.mode == .balance && pool.balanceMicros <= 0
        limit = pool.hasLimitMicros ? coins.amount(micros: pool.limitMicros) : nil
        refillPerHour = coins.amount(micros: pool.refillPerHourMicros)
        nextRefillAt = pool.hasNextRefillAt ? RFC3339.format(millis: pool.nextRefillAt.millis) : nil
    }

    enum CodingKeys: String, CodingKey {
        case state, balance, exhausted, limit
        case refillPerHour = "refill_per_hour"
        case nextRefillAt = "next_refill_at"
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(state, forKey: .state)
        try container.encode(balance, forKey: .balance)
        try container.encode(exhausted, forKey: .exhausted)
        try container.encode(limit, forKey: .limit)
        try container.encode(refillPerHour, forKey: .refillPerHour)
        try container.encode(nextRefillAt, forKey: .nextRefillAt)
    }
}

/// A client's page.
struct ClientDetailObject: Encodable, Sendable {
    var client: ClientObject
    var managers: [PersonObject]
    var usage: UsageObject
    var pool: PoolObject
    var keys: [KeyObject]

    /// The cards count every key's usage, revoked ones too; `keys` are the active keys.
    init(_ detail: ClientsController.Detail, keys: [KeyObject], coins: Coins) {
        client = ClientObject(detail.client)
        managers = detail.managers
        usage = UsageObject(
            tokens: detail.usage.reduce(0) { $0 + $1.tokens },
            costMicros: detail.usage.reduce(0) { $0 + $1.costMicros }, coins: coins)
        pool = PoolObject(detail.pool, coins: coins)
        self.keys = keys
    }
}
