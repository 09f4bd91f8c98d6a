import Foundation
import GRPCCore
import Gateway
import Hummingbird
import LumenAPI
import RPCSupport
import SharedRules
import WireFormats

/// A user's or client's coin pool: who may see it is the ledger's decision (themselves,
/// the client's managers, administrators); administrators set it up and grant coins.
struct PoolsController: Sendable {
    let services: GatewayServices
    let coins: Coins

    func addRoutes(to group: RouterGroup<DashboardContext>) {
        for (path, type) in [("users/{userId}", Lumen_Common_V1_PrincipalType.user), ("clients/{clientId}", .client)] {
            group.get("\(path)/pool") { request, context in try await show(request, context, owner: try owner(type, context)) }
            group.put("\(path)/pool") { request, context in try await configure(request, context, owner: try owner(type, context)) }
            group.post("\(path)/grants") { request, context in try await grant(request, context, owner: try owner(type, context)) }
        }
    }

    func owner(_ type: Lumen_Common_V1_PrincipalType, _ context: DashboardContext) throws -> Lumen_Common_V1_PrincipalRef {
        return type == .user ? .user(try context.path("userId")) : .client(try context.path("clientId"))
    }

    func show(_ request: Request, _ context: DashboardContext, owner: Lumen_Common_V1_PrincipalRef) async throws -> JSONResponse<PoolObject> {
        let pool = try await APIError.translating {
            try await services.ledger.getPool(.with { $0.owner = owner }, metadata: try context.acting(services)).pool
        }
        return JSONResponse(PoolObject(pool, coins: coins))
    }

    /// `{"mode": "balance" | "unlimited" | "not_configured", "limit": coins | null,
    /// "refill_per_hour": coins}` (administrators).
    func configure(_ request: Request, _ context: DashboardContext, owner: Lumen_Common_V1_PrincipalRef) async throws
        -> JSONResponse<PoolObject>
    {
        let body = try await Body.object(request)
        try Body.refuseUnknown(body, allowed: ["mode", "limit", "refill_per_hour"])
        let mode: Lumen_Ledger_V1_PoolMode
        switch try Body.text(body, "mode") {
        case "balance": mode = .balance
        case "unlimited": mode = .unlimited
        case "not_configured": mode = .unspecified
        default: throw APIError.invalid("invalid_mode", "mode is balance, unlimited or not_configured", param: "mode")
        }
        let limit = try micros(body, "limit")
        let refill = try micros(body, "refill_per_hour") ?? 0
        let pool = try await APIError.translating(params: ["limit_micros": "limit", "refill_per_hour_micros": "refill_per_hour"]) {
            try await services.ledger.configurePool(
                .with {
                    $0.owner = owner
                    $0.mode = mode
                    if let limit { $0.limitMicros = limit }
                    $0.refillPerHourMicros = refill
                }, metadata: try context.acting(services)
            ).pool
        }
        return JSONResponse(PoolObject(pool, coins: coins))
    }

    /// `{"coins", "reason", "idempotency_key"}` (administrators): adds coins (or removes them,
    /// negative); a retry with the same key answers the first grant.
    func grant(_ request: Request, _ context: DashboardContext, owner: Lumen_Common_V1_PrincipalRef) async throws
        -> JSONResponse<GrantObject>
    {
        let body = try await Body.object(request)
        try Body.refuseUnknown(body, allowed: ["coins", "reason", "idempotency_key"])
        guard let amount = try micros(body, "coins") else {
            throw APIError.invalid("invalid_coins", "coins is required (a number)", param: "coins")
        }
        let reason = try Body.text(body, "reason")
        let idempotencyKey = try Body.text(body, "idempotency_key")
        let response = try await APIError.translating(params: ["amount_micros": "coins"]) {
            try await services.ledger.grant(
                .with {
                    $0.owner = owner
                    $0.amountMicros = amount
                    $0.reason = reason
                    $0.idempotencyKey = idempotencyKey
                }, metadata: try context.acting(services))
        }
        return JSONResponse(
            GrantObject(
                id: response.grant.id, coins: coins.amount(micros: response.grant.amountMicros), reason: response.grant.reason,
                grantedByUserID: response.grant.grantedByUserID, createdAt: RFC3339.format(millis: response.grant.createdAt.millis),
                pool: PoolObject(response.pool, coins: coins)))
    }

    /// Micro-USD of a coins field, exactly (400 when it is no whole number of micro-dollars).
    func micros(_ body: [String: JSONValue], _ name: String) throws -> Int64? {
        guard let amount = try Body.optionalDecimal(body, name) else { return nil }
        guard let micros = coins.micros(amount) else {
            throw APIError.invalid(
                "invalid_\(name)", "\(name) must be an amount of coins that is a whole number of micro-dollars (\(coins.perUSD) coins to the dollar)",
                param: name)
        }
        return micros
    }

}

/// A grant, with the pool after it.
struct GrantObject: Encodable, Sendable {
    var id: String
    var coins: Decimal
    var reason: String
    var grantedByUserID: String
    var createdAt: String
    var pool: PoolObject

    enum CodingKeys: String, CodingKey {
        case id, coins, reason, pool
        case grantedByUserID = "granted_by_user_id"
        case createdAt = "created_at"
    }
}
