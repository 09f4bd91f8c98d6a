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
        return JSONResponse(ListOf(data: try await page(of: owner, query: query, limit: nil, context: context).keys))
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
        let totals = try await self.totals(of: [revoked.id], owner: owner, metadata: metadata)
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
        let totals = try await self.totals(of: [renamed.id], owner: owner, metadata: metadata)
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

    /// One page of a key table: the rows, and how many keys match in all.
    struct Page {
        var keys: [KeyObject]
        var total: Int
        /// Where the page starts in the whole list (0 for the first).
        var offset: Int
    }

    /// The inference keys of `owner` that match `query` (name contains, revoked ones only with
    /// `showDeleted`), in its order, page `query.page` of `limit` rows (nil: every match). The
    /// keys service filters, and sorts by name or creation and pages itself. For a usage column
    /// (the ledger's figures) the matching ids are read in name order with their totals, sorted
    /// here (ties in name order), and only the page's keys are then read in full.
    func page(of owner: Lumen_Common_V1_PrincipalRef, query: ListQuery, limit: Int?, context: DashboardContext) async throws -> Page {
        let metadata = try context.acting(services)
        let byService: Lumen_Keys_V1_KeySort? =
            switch query.sort {
            case "name": .name
            case "created": .created
            default: nil
            }
        let offset = limit.map { (query.page - 1) * $0 } ?? 0
        var list = Lumen_Keys_V1_ListKeysRequest.with {
            $0.owner = owner
            $0.kind = .inference
            $0.includeDeleted = query.showDeleted
            if let text = query.text { $0.nameContains = text }
            $0.sort = byService ?? .name
            $0.reverse = byService != nil && query.descending
        }
        if byService != nil, let limit {
            list.page = .with {
                $0.page = Int32(query.page)
                $0.limit = Int32(limit)
            }
            let response = try await listKeys(list, metadata: metadata)
            let totals = try await self.totals(of: response.keys.map(\.id), owner: owner, metadata: metadata)
            return Page(
                keys: response.keys.map { KeyObject($0, totals: totals[$0.id], coins: coins) }, total: Int(response.pageInfo.total),
                offset: offset)
        }
        // Every match: in full for the whole list, ids alone when a page of it is shown.
        list.idsOnly = limit != nil
        var keys: [Lumen_Keys_V1_Key] = []
        var allIDs: [String] = []
        list.page.limit = 1000
        for page in Int32(1)... {
            list.page.page = page
            let response = try await listKeys(list, metadata: metadata)
            keys += response.keys
            allIDs += list.idsOnly ? response.keyIds : response.keys.map(\.id)
            guard response.pageInfo.hasMore_p else { break }
        }
        let totals = try await self.totals(of: allIDs, owner: owner, metadata: metadata)
        if byService == nil {
            // Each key's figure once (not a dictionary lookup per comparison); ties keep name order.
            let values = allIDs.map { KeyObject.usage(totals[$0], query.sort) }
            let order = allIDs.indices.sorted { a, b in
                if values[a] == values[b] { return a < b }
                return query.descending ? values[b] < values[a] : values[a] < values[b]
            }
            allIDs = order.map { allIDs[$0] }
            if !list.idsOnly { keys = order.map { keys[$0] } }
        }
        guard let limit else {
            return Page(keys: keys.map { KeyObject($0, totals: totals[$0.id], coins: coins) }, total: keys.count, offset: 0)
        }
        let ids = Array(allIDs.dropFirst(offset).prefix(limit))
        var full: [String: Lumen_Keys_V1_Key] = [:]
        if !ids.isEmpty {
            var these = list
            these.idsOnly = false
            these.keyIds = ids
            these.page = .with {
                $0.page = 1
                $0.limit = Int32(ids.count)
            }
            for key in try await listKeys(these, metadata: metadata).keys { full[key.id] = key }
        }
        // A key revoked between the two reads (deleted keys not shown) is left out of the page.
        return Page(
            keys: ids.compactMap { id in full[id].map { KeyObject($0, totals: totals[id], coins: coins) } }, total: allIDs.count,
            offset: offset)
    }

    /// How many inference keys `owner` has, revoked ones included (what an empty table says).
    func count(of owner: Lumen_Common_V1_PrincipalRef, context: DashboardContext) async throws -> Int {
        let response = try await listKeys(
            .with {
                $0.owner = owner
                $0.kind = .inference
                $0.includeDeleted = true
                $0.idsOnly = true
                $0.page = .with {
                    $0.page = 1
                    $0.limit = 1
                }
            }, metadata: try context.acting(services))
        return Int(response.pageInfo.total)
    }

    private func listKeys(_ request: Lumen_Keys_V1_ListKeysRequest, metadata: Metadata) async throws -> Lumen_Keys_V1_ListKeysResponse {
        try await APIError.translating { try await services.keys.listKeys(request, metadata: metadata) }
    }

    /// The ledger's totals of `keyIDs`, by key id, 1,000 at a time.
    func totals(of keyIDs: [String], owner: Lumen_Common_V1_PrincipalRef, metadata: Metadata) async throws
        -> [String: Lumen_Ledger_V1_KeyTotals]
    {
        var totals: [String: Lumen_Ledger_V1_KeyTotals] = [:]
        totals.reserveCapacity(keyIDs.count)
        for start in stride(from: 0, to: keyIDs.count, by: 1000) {
            let ids = Array(keyIDs[start..<min(start + 1000, keyIDs.count)])
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
        tokens = Self.usage(totals, "tokens")
        costMicros = totals?.costMicros ?? 0
        self.coins = coins.amount(micros: costMicros)
        lastUsedMillis = Self.usage(totals, "last_used")
        lastUsedAt = lastUsedMillis > 0 ? RFC3339.format(millis: lastUsedMillis) : nil
        createdAt = RFC3339.format(millis: key.createdAt.millis)
        revokedAt = key.hasRevokedAt ? RFC3339.format(millis: key.revokedAt.millis) : nil
    }

    static let sorts = ["name", "requests", "tokens", "cost", "last_used", "created"]

    /// A usage column's figure (`requests`, `tokens`, `cost`, `last_used`) of a key's totals.
    static func usage(_ totals: Lumen_Ledger_V1_KeyTotals?, _ sort: String) -> Int64 {
        guard let totals else { return 0 }
        return switch sort {
        case "requests": totals.requests
        case "tokens": totals.tokens
        case "cost": totals.costMicros
        case "last_used": totals.hasLastUsedAt ? totals.lastUsedAt.millis : 0
        default: 0
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
