import Foundation
import GRPCCore
import Gateway
import Hummingbird
import LumenAPI
import RPCSupport
import SharedRules
import WireFormats

/// The API-key tables of seed 001 (a person's own keys, `/api/me/keys`) and seed 000 (a
/// client's, `/api/clients/{clientId}/keys`): list with what each key used, create (the secret
/// shown once, as `key`), revoke (usage kept). The keys and ledger services decide who may.
struct KeysController: Sendable {
    let services: GatewayServices
    let coins: Coins
    /// This gateway's key cache, told of every change made here (read your own writes).
    let cache: KeyCache?

    func addRoutes(to group: RouterGroup<DashboardContext>) {
        group.get("me/keys") { request, context in
            try await list(request, context, owner: .user(try context.person.userID))
        }
        group.post("me/keys") { request, context in
            try await create(request, context, owner: .user(try context.person.userID))
        }
        group.delete("me/keys/{keyId}") { request, context in
            try await revoke(request, context, owner: .user(try context.person.userID))
        }
        group.patch("me/keys/{keyId}") { request, context in
            try await rename(request, context, owner: .user(try context.person.userID))
        }
        group.get("clients/{clientId}/keys") { request, context in
            try await list(request, context, owner: .client(try context.path("clientId")))
        }
        group.post("clients/{clientId}/keys") { request, context in
            try await create(request, context, owner: .client(try context.path("clientId")))
        }
        group.delete("clients/{clientId}/keys/{keyId}") { request, context in
            try await revoke(request, context, owner: .client(try context.path("clientId")))
        }
        group.patch("clients/{clientId}/keys/{keyId}") { request, context in
            try await rename(request, context, owner: .client(try context.path("clientId")))
        }
    }

    /// `?sort=name|requests|tokens|cost|last_used&order=asc|desc&query=…&show_deleted=true`:
    /// `{"object": "list", "data": [key…]}`, active keys only unless `show_deleted`.
    func list(_ request: Request, _ context: DashboardContext, owner: Lumen_Common_V1_PrincipalRef) async throws
        -> JSONResponse<ListOf<KeyObject>>
    {
        let query = try ListQuery(request, sorts: KeyObject.sorts, defaultSort: "name")
        let keys = try await self.keys(of: owner, context: context, includeRevoked: query.showDeleted)
        let filtered = keys.filter { query.matches($0.name) }
        return JSONResponse(ListOf(data: try query.sorted(filtered, by: KeyObject.sortKey)))
    }

    /// `{"name"}` → the key, with its secret in `key` (shown this once).
    func create(_ request: Request, _ context: DashboardContext, owner: Lumen_Common_V1_PrincipalRef) async throws
        -> JSONResponse<KeyObject>
    {
        let body = try await Body.object(request)
        try Body.refuseUnknown(body, allowed: ["name"])
        let name = try Body.optionalText(body, "name")
        let response = try await APIError.translating {
            try await services.keys.createKey(
                .with {
                    $0.owner = owner
                    if let name { $0.name = name }
                }, metadata: try context.acting(services))
        }
        cache?.apply(response.key, secret: response.secret)
        var object = KeyObject(response.key, totals: nil, coins: coins)
        object.key = response.secret
        return JSONResponse(object)
    }

    /// Revokes a key of `owner` at once (404 for a key that is not theirs); its usage stays.
    func revoke(_ request: Request, _ context: DashboardContext, owner: Lumen_Common_V1_PrincipalRef) async throws
        -> JSONResponse<KeyObject>
    {
        let keyID = try context.path("keyId")
        let metadata = try context.acting(services)
        try await requireOwned(keyID, by: owner, metadata: metadata)
        let revoked = try await APIError.translating {
            try await services.keys.revokeKey(.with { $0.keyID = keyID }, metadata: metadata).key
        }
        cache?.apply(revoked)
        let totals = try await self.totals(of: [revoked], owner: owner, metadata: metadata)
        return JSONResponse(KeyObject(revoked, totals: totals[revoked.id], coins: coins))
    }

    /// `{"name"}`: renames a key of `owner` (the dialog that shows a new key names it last).
    func rename(_ request: Request, _ context: DashboardContext, owner: Lumen_Common_V1_PrincipalRef) async throws
        -> JSONResponse<KeyObject>
    {
        let keyID = try context.path("keyId")
        let body = try await Body.object(request)
        try Body.refuseUnknown(body, allowed: ["name"])
        let name = try Body.text(body, "name")
        let metadata = try context.acting(services)
        try await requireOwned(keyID, by: owner, metadata: metadata)
        let renamed = try await APIError.translating {
            try await services.keys.updateKey(
                .with {
                    $0.keyID = keyID
                    $0.name = name
                }, metadata: metadata
            ).key
        }
        cache?.apply(renamed)
        let totals = try await self.totals(of: [renamed], owner: owner, metadata: metadata)
        return JSONResponse(KeyObject(renamed, totals: totals[renamed.id], coins: coins))
    }

    /// 404 `key_not_found` unless `keyID` is an API key of `owner` (the services decide whether
    /// the person may see it at all).
    func requireOwned(_ keyID: String, by owner: Lumen_Common_V1_PrincipalRef, metadata: Metadata) async throws {
        let key = try await APIError.translating {
            try await services.keys.getKey(.with { $0.keyID = keyID }, metadata: metadata).key
        }
        guard key.owner.type == owner.type, key.owner.id == owner.id, key.kind == .inference else {
            throw APIError(.notFound, code: "key_not_found", message: "no API key \(keyID) here", param: "keyId")
        }
    }

    /// Every inference key of `owner` with its totals, as the person may see them.
    func keys(of owner: Lumen_Common_V1_PrincipalRef, context: DashboardContext, includeRevoked: Bool) async throws -> [KeyObject] {
        let metadata = try context.acting(services)
        var keys: [Lumen_Keys_V1_Key] = []
        var page: Int32 = 1
        while true {
            let response = try await APIError.translating {
                try await services.keys.listKeys(
                    .with {
                        $0.owner = owner
                        $0.kind = .inference
                        $0.includeDeleted = includeRevoked
                        $0.page = .with {
                            $0.page = page
                            $0.limit = 1000
                        }
                    }, metadata: metadata)
            }
            keys += response.keys
            guard response.pageInfo.hasMore_p else { break }
            page += 1
        }
        let totals = try await self.totals(of: keys, owner: owner, metadata: metadata)
        return keys.map { KeyObject($0, totals: totals[$0.id], coins: coins) }
    }

    /// The ledger's totals of `keys`, by key id, 1,000 at a time.
    func totals(of keys: [Lumen_Keys_V1_Key], owner: Lumen_Common_V1_PrincipalRef, metadata: Metadata) async throws
        -> [String: Lumen_Ledger_V1_KeyTotals]
    {
        var totals: [String: Lumen_Ledger_V1_KeyTotals] = [:]
        for start in stride(from: 0, to: keys.count, by: 1000) {
            let ids = keys[start..<min(start + 1000, keys.count)].map(\.id)
            let response = try await APIError.translating {
                try await services.ledger.getKeyTotals(
                    .with {
                        $0.owner = owner
                        $0.keyIds = ids
                    }, metadata: metadata)
            }
            for total in response.totals { totals[total.keyID] = total }
        }
        return totals
    }
}

/// An API key as the dashboard shows it.
struct KeyObject: Encodable, Sendable {
    var id: String
    var name: String
    /// The first 4 and last 4 characters of the secret.
    var hint: String
    var status: String
    var requests: Int64
    /// Input (cached included) + output tokens.
    var tokens: Int64
    var coins: Decimal
    var lastUsedAt: String?
    var createdAt: String
    var revokedAt: String?
    /// The secret, in the response that created the key only.
    var key: String?
    let costMicros: Int64
    let lastUsedMillis: Int64

    init(_ key: Lumen_Keys_V1_Key, totals: Lumen_Ledger_V1_KeyTotals?, coins: Coins) {
        id = key.id
        name = key.name
        hint = key.hint
        status = key.status.publicName
        requests = totals?.requests ?? 0
        tokens = (totals?.inputTokens ?? 0) + (totals?.cachedInputTokens ?? 0) + (totals?.outputTokens ?? 0)
        costMicros = totals?.costMicros ?? 0
        self.coins = coins.amount(micros: costMicros)
        lastUsedMillis = totals?.hasLastUsedAt == true ? totals!.lastUsedAt.millis : 0
        lastUsedAt = lastUsedMillis > 0 ? RFC3339.format(millis: lastUsedMillis) : nil
        createdAt = RFC3339.format(millis: key.createdAt.millis)
        revokedAt = key.hasRevokedAt ? RFC3339.format(millis: key.revokedAt.millis) : nil
    }

    static let sorts = ["name", "requests", "tokens", "cost", "last_used", "created"]

    static func sortKey(_ key: KeyObject, _ sort: String) -> SortValue {
        switch sort {
        case "requests": .number(key.requests)
        case "tokens": .number(key.tokens)
        case "cost": .number(key.costMicros)
        case "last_used": .number(key.lastUsedMillis)
        case "created": .text(key.createdAt)
        default: .text(key.name.lowercased())
        }
    }

    enum CodingKeys: String, CodingKey {
        case id, name, hint, status, requests, tokens, coins, key
        case lastUsedAt = "last_used_at"
        case createdAt = "created_at"
        case revokedAt = "revoked_at"
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(id, forKey: .id)
        try container.encode(name, forKey: .name)
        try container.encode(hint, forKey: .hint)
        try container.encode(status, forKey: .status)
        try container.encode(requests, forKey: .requests)
        try container.encode(tokens, forKey: .tokens)
        try container.encode(coins, forKey: .coins)
        try container.encode(lastUsedAt, forKey: .lastUsedAt)
        try container.encode(createdAt, forKey: .createdAt)
        try container.encode(revokedAt, forKey: .revokedAt)
        try container.encodeIfPresent(key, forKey: .key)
    }
}
