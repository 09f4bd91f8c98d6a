import Foundation
import GRPCCore
import Gateway
import Hummingbird
import LumenAPI
import RPCSupport
import SharedRules

/// Seed 001's model access table (a person's, `/api/me/models`; a client's,
/// `/api/clients/{clientId}/models`): every model with the principal's usage of it, its access
/// badge and its status; consent; and a model's page. The registry decides access (the
/// model's policy, the principal's groups, recorded consents), the ledger counts usage.
struct ModelsController: Sendable {
    let services: GatewayServices
    let coins: Coins

    func addRoutes(to group: RouterGroup<DashboardContext>) {
        group.get("me/models") { request, context in
            try await table(request, context, principal: .user(try context.person.userID))
        }
        group.post("me/models/{model}/consent") { request, context in
            try await consent(request, context, principal: .user(try context.person.userID))
        }
        group.get("clients/{clientId}/models") { request, context in
            try await table(request, context, principal: .client(try context.path("clientId")))
        }
        group.post("clients/{clientId}/models/{model}/consent") { request, context in
            try await consent(request, context, principal: .client(try context.path("clientId")))
        }
        group.get("models/{model}", use: detail)
    }

    /// `?sort=model|requests|tokens|cost|last_used|access|status&order=&query=&show_disabled=`.
    func table(_ request: Request, _ context: DashboardContext, principal: Lumen_Common_V1_PrincipalRef) async throws
        -> JSONResponse<ListOf<ModelRow>>
    {
        let query = try ListQuery(request, sorts: ModelRow.sorts, defaultSort: "model", flags: ["show_disabled"])
        let rows = try await self.rows(for: principal, context: context, includeDisabled: query.showDisabled)
        return JSONResponse(ListOf(data: try query.sorted(rows.filter { query.matches($0.model) }, by: ModelRow.sortKey)))
    }

    /// Every model the registry lists for `principal`, with its access and what it used.
    func rows(for principal: Lumen_Common_V1_PrincipalRef, context: DashboardContext, includeDisabled: Bool) async throws -> [ModelRow] {
        let metadata = try context.acting(services)
        return try await APIError.translating(params: ["principal": principal.type == .client ? "clientId" : "userId"]) {
            // A person's access follows their groups; a client belongs to none.
            let groups =
                principal.type == .user
                ? try await services.accounts.getUser(.with { $0.userID = principal.id }, metadata: metadata).user.groupIds : []
            let access = try await services.registry.getModelAccess(
                .with {
                    $0.principal = principal
                    $0.groupIds = groups
                    $0.includeDisabled = includeDisabled
                }, metadata: metadata
            ).access
            let used = try await services.ledger.getOwnerUsage(.with { $0.owner = principal }, metadata: metadata).models
            let byModel = Dictionary(used.map { ($0.logicalModel, $0) }, uniquingKeysWith: { first, _ in first })
            return access.map { ModelRow($0, usage: byModel[$0.model], coins: coins) }
        }
    }

    /// Records the principal's one-time acknowledgement of a model that needs it; every key of
    /// the principal may use the model once the gateways hear of it (within a second).
    func consent(_ request: Request, _ context: DashboardContext, principal: Lumen_Common_V1_PrincipalRef) async throws
        -> JSONResponse<ConsentObject>
    {
        let model = try context.path("model")
        let metadata = try context.acting(services)
        let consent = try await APIError.translating(params: ["principal": principal.type == .client ? "clientId" : "userId"]) {
            try await services.registry.grantConsent(
                .with {
                    $0.principal = principal
                    $0.model = model
                }, metadata: metadata
            ).consent
        }
        return JSONResponse(
            ConsentObject(
                model: consent.model, access: "consented", grantedByUserID: consent.grantedByUserID,
                createdAt: RFC3339.format(millis: consent.createdAt.millis)))
    }

    /// A model's page: description, scenes, prices per million tokens in coins and USD, status
    /// per backend (never a credential), and the person's access.
    @Sendable func detail(_ request: Request, context: DashboardContext) async throws -> JSONResponse<ModelDetail> {
        JSONResponse(try await detail(try context.path("model"), context: context))
    }

    /// A model as its page shows it, with the signed-in person's access.
    func detail(_ name: String, context: DashboardContext) async throws -> ModelDetail {
        let person = try context.person
        let metadata = try context.acting(services)
        let (model, access) = try await APIError.translating {
            let model = try await services.registry.getModel(.with { $0.name = name }, metadata: metadata).model
            let groups = try await services.accounts.getUser(.with { $0.userID = person.userID }, metadata: metadata).user.groupIds
            let access = try await services.registry.getModelAccess(
                .with {
                    $0.principal = .user(person.userID)
                    $0.groupIds = groups
                    $0.includeDisabled = true
                }, metadata: metadata
            ).access.first { $0.model == name }
            return (model, access)
        }
        return ModelDetail(model, access: access?.level ?? .blocked, coins: coins)
    }
}

/// A row of the model access table.
struct ModelRow: Encodable, Sendable {
    var model: String
    var access: String
    var status: String
    var requests: Int64
    var tokens: Int64
    var coins: Decimal
    var lastUsedAt: String?
    let costMicros: Int64
    let lastUsedMillis: Int64

    init(_ access: Lumen_Registry_V1_ModelAccess, usage: Lumen_Ledger_V1_ModelTotals?, coins: Coins) {
        model = access.model
        self.access = access.level.publicName
        status = access.status.publicName
        requests = usage?.requests ?? 0
        tokens = usage?.tokens ?? 0
        costMicros = usage?.costMicros ?? 0
        self.coins = coins.amount(micros: costMicros)
        lastUsedMillis = usage?.lastUsedAt.millis ?? 0
        lastUsedAt = lastUsedMillis > 0 ? RFC3339.format(millis: lastUsedMillis) : nil
    }

    static let sorts = ["model", "requests", "tokens", "cost", "last_used", "access", "status"]

    static func sortKey(_ row: ModelRow, _ sort: String) -> SortValue {
        switch sort {
        case "requests": .number(row.requests)
        case "tokens": .number(row.tokens)
        case "cost": .number(row.costMicros)
        case "last_used": .number(row.lastUsedMillis)
        case "access": .text(row.access)
        case "status": .text(row.status)
        default: .text(row.model.lowercased())
        }
    }

    enum CodingKeys: String, CodingKey {
        case model, access, status, requests, tokens, coins
        case lastUsedAt = "last_used_at"
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(model, forKey: .model)
        try container.encode(access, forKey: .access)
        try container.encode(status, forKey: .status)
        try container.encode(requests, forKey: .requests)
        try container.encode(tokens, forKey: .tokens)
        try container.encode(coins, forKey: .coins)
        try container.encode(lastUsedAt, forKey: .lastUsedAt)
    }
}

struct ConsentObject: Encodable, Sendable {
    var model: String
    var access: String
    var grantedByUserID: String
    var createdAt: String

    enum CodingKeys: String, CodingKey {
        case model, access
        case grantedByUserID = "granted_by_user_id"
        case createdAt = "created_at"
    }
}

/// A model's page.
struct ModelDetail: Encodable, Sendable {
    struct Price: Encodable, Sendable {
        var coins: Decimal
        var usd: Decimal
    }

    struct Backend: Encodable, Sendable {
        var id: String
        var provider: String
        var health: String
    }

    var name: String
    var vendor: String
    var description: String
    var scenes: [String]
    var status: String
    var access: String
    var consentRequired: Bool
    /// Per million tokens: `input`, `cached_input`, `cache_write`, `output`; and `request`, per request, for a
    /// model billed by the request.
    var prices: [String: Price]
    var backends: [Backend]

    init(_ model: Lumen_Registry_V1_Model, access: Lumen_Registry_V1_AccessLevel, coins: Coins) {
        name = model.name
        vendor = model.vendor
        description = model.description_p
        scenes = model.scenes.map(\.publicName)
        status = model.status.publicName
        self.access = access.publicName
        consentRequired = model.consentRequired
        var prices: [String: Price] = [:]
        func price(_ name: String, _ micros: Int64) {
            prices[name] = Price(coins: coins.amount(micros: micros), usd: USD.amount(micros))
        }
        price("input", model.prices.inputPerMillionMicros)
        price("cached_input", model.prices.cachedInputPerMillionMicros)
        price("cache_write", Pricing.cacheWritePrice(model.prices))
        price("output", model.prices.outputPerMillionMicros)
        if model.prices.perRequestMicros > 0 {
            prices["request"] = Price(coins: coins.amount(micros: model.prices.perRequestMicros), usd: USD.amount(model.prices.perRequestMicros))
        }
        self.prices = prices
        backends = model.backends.map { Backend(id: $0.id, provider: $0.provider.publicName, health: $0.health.publicName) }
    }

    enum CodingKeys: String, CodingKey {
        case name, vendor, description, scenes, status, access, prices, backends
        case consentRequired = "consent_required"
    }
}
