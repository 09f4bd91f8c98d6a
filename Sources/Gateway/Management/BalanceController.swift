import Foundation
import GRPCCore
import Hummingbird
import LumenAPI
import RPCSupport
import SharedRules

/// `GET /v1/management/balance`: the organisation's balance totals (seed 003), from the
/// ledger's organisation pool; money in USD.
struct BalanceController<Context: RequestContext>: Sendable {
    let ledger: any Lumen_Ledger_V1_LedgerService.ClientProtocol

    func addRoutes(to group: RouterGroup<Context>) {
        group.get("balance", use: balance)
    }

    @Sendable func balance(_ request: Request, context: Context) async throws -> JSONResponse<BalanceObject> {
        let metadata = try ManagementAuth.metadata(request)
        _ = try RequestRules.query(request.uri.queryParameters, known: [])
        return try await APIError.translating {
            JSONResponse(BalanceObject(try await ledger.getOrganizationBalance(.init(), metadata: metadata)))
        }
    }
}

/// The organisation's balance: `state` is `balance` (a balance that requests spend; 0 or
/// below blocks them), `unlimited`, or `not_configured` (the dashboard's `—`).
struct BalanceObject: Encodable {
    var object = "balance"
    var currency = "USD"
    var state: String
    var balance: Decimal
    var reserved: Decimal
    var available: Decimal
    var spent: Decimal
    var granted: Decimal
    var limit: Decimal?
    var refillPerHour: Decimal
    var nextRefillAt: String?
    var asOf: String

    enum CodingKeys: String, CodingKey {
        case object, currency, state, balance, reserved, available, spent, granted, limit
        case refillPerHour = "refill_per_hour"
        case nextRefillAt = "next_refill_at"
        case asOf = "as_of"
    }

    init(_ response: Lumen_Ledger_V1_GetOrganizationBalanceResponse) {
        state = response.mode.publicName
        balance = USD.amount(response.balanceMicros)
        reserved = USD.amount(response.reservedMicros)
        available = USD.amount(response.availableMicros)
        spent = USD.amount(response.spentMicros)
        granted = USD.amount(response.grantedMicros)
        limit = response.hasLimitMicros ? USD.amount(response.limitMicros) : nil
        refillPerHour = USD.amount(response.refillPerHourMicros)
        nextRefillAt = response.hasNextRefillAt ? RFC3339.format(millis: response.nextRefillAt.millis) : nil
        asOf = RFC3339.format(millis: response.asOf.millis)
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(object, forKey: .object)
        try container.encode(currency, forKey: .currency)
        try container.encode(state, forKey: .state)
        try container.encode(balance, forKey: .balance)
        try container.encode(reserved, forKey: .reserved)
        try container.encode(available, forKey: .available)
        try container.encode(spent, forKey: .spent)
        try container.encode(granted, forKey: .granted)
        try container.encode(limit, forKey: .limit)  // null when no ceiling
        try container.encode(refillPerHour, forKey: .refillPerHour)
        try container.encode(nextRefillAt, forKey: .nextRefillAt)  // null when no refill is due
        try container.encode(asOf, forKey: .asOf)
    }
}
