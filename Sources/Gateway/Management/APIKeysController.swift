import Foundation
import GRPCCore
import Hummingbird
import LumenAPI
import RPCSupport
import SharedRules
import WireFormats

/// `/v1/management/api-keys`: list, create, read and update the organisation's inference keys
/// (seed 003). Authorised by the management token, which the services check. What a key has
/// used (`used_amount`, `last_used_at`) comes from the ledger, the record of money, at each read.
struct APIKeysController<Context: RequestContext>: Sendable {
    let keys: any Lumen_Keys_V1_KeysService.ClientProtocol
    let ledger: any Lumen_Ledger_V1_LedgerService.ClientProtocol
    /// This gateway's key cache, told of every change made here (read your own writes).
    var cache: KeyCache?
    static var maxBodyBytes: Int { 64 * 1024 }

    func addRoutes(to group: RouterGroup<Context>) {
        group.get("api-keys", use: list)
        group.post("api-keys", use: create)
        group.get("api-keys/{keyId}", use: get)
        group.patch("api-keys/{keyId}", use: update)
    }

    /// Every inference key, newest first (seed 003's plain list), or with `page` and/or `limit`
    /// (1–1,000, 100 by default) one page of them with `page`, `limit`, `total` and `has_more`.
    @Sendable func list(_ request: Request, context: Context) async throws -> JSONResponse<ListObject<APIKeyObject>> {
        let metadata = try ManagementAuth.metadata(request)
        let values = try RequestRules.query(request.uri.queryParameters, known: ["page", "limit"])
        var list = Lumen_Keys_V1_ListKeysRequest.with {
            $0.kind = .inference
            $0.includeDeleted = true
        }
        if !values.isEmpty {
            list.page = try RequestRules.pageRequest(values, maxLimit: 1000)
            let (keys, info, _) = try await page(list, metadata: metadata)
            return JSONResponse(ListObject(data: keys, page: info))
        }
        // Pages of 1,000, each going on from where the last ended (no count, no offset).
        var keys: [APIKeyObject] = []
        list.page.limit = 1000
        while true {
            let (more, info, next) = try await self.page(list, metadata: metadata)
            keys += more
            guard info.hasMore_p, !next.isEmpty else { break }
            list.pageToken = next
        }
        return JSONResponse(ListObject(data: keys))
    }

    /// One page of keys with the ledger's totals, where it stands in the list and the token of
    /// the next.
    private func page(
        _ list: Lumen_Keys_V1_ListKeysRequest, metadata: Metadata
    ) async throws -> ([APIKeyObject], Lumen_Common_V1_PageInfo, String) {
        let response = try await call { try await self.keys.listKeys(list, metadata: metadata) }
        let totals = try await self.totals(of: response.keys, metadata: metadata)
        return (response.keys.map { APIKeyObject($0, totals: totals[$0.id]) }, response.pageInfo, response.nextPageToken)
    }

    @Sendable func create(_ request: Request, context: Context) async throws -> JSONResponse<APIKeyObject> {
        let metadata = try ManagementAuth.metadata(request)
        let body = try await Self.body(request, context: context)
        let message = try APIKeyBody.create(body)
        let response = try await call { try await keys.createKey(message, metadata: metadata) }
        cache?.apply(response.key, secret: response.secret)
        return JSONResponse(APIKeyObject(response.key, totals: nil, secret: response.secret))
    }

    @Sendable func get(_ request: Request, context: Context) async throws -> JSONResponse<APIKeyObject> {
        let metadata = try ManagementAuth.metadata(request)
        let keyID = try context.parameters.require("keyId")
        let response = try await call { try await keys.getKey(.with { $0.keyID = keyID }, metadata: metadata) }
        return JSONResponse(APIKeyObject(response.key, totals: try await totals(of: [response.key], metadata: metadata)[response.key.id]))
    }

    @Sendable func update(_ request: Request, context: Context) async throws -> JSONResponse<APIKeyObject> {
        let metadata = try ManagementAuth.metadata(request)
        let keyID = try context.parameters.require("keyId")
        let body = try await Self.body(request, context: context)
        let message = try APIKeyBody.update(body, keyID: keyID)
        let response = try await call { try await keys.updateKey(message, metadata: metadata) }
        cache?.apply(response.key)
        return JSONResponse(APIKeyObject(response.key, totals: try await totals(of: [response.key], metadata: metadata)[response.key.id]))
    }

    /// The ledger's totals of `keys`, by key id.
    private func totals(of keys: [Lumen_Keys_V1_Key], metadata: Metadata) async throws -> [String: Lumen_Ledger_V1_KeyTotals] {
        guard !keys.isEmpty else { return [:] }
        let totals = try await APIError.translating {
            try await ledger.getKeyTotals(.with { $0.keyIds = keys.map(\.id) }, metadata: metadata).totals
        }
        return Dictionary(totals.map { ($0.keyID, $0) }, uniquingKeysWith: { first, _ in first })
    }

    /// Runs a keys-service call, naming the fields of its errors as this API's body does.
    private func call<T>(_ body: () async throws -> T) async throws -> T {
        try await APIError.translating(params: APIKeyBody.params, body)
    }

    static func body(_ request: Request, context: Context) async throws -> [String: JSONValue] {
        // The body is read as JSON whatever its Content-Type says: `curl -d` sends
        // form-urlencoded by default, and rejecting that helps nobody.
        let buffer = try await request.body.collect(upTo: maxBodyBytes)
        // Every field is range-checked into the RPC and the text is never relayed: a number too
        // large for a Decimal gets its field's own error (`invalid_limit_amount`), not `invalid_json`.
        return try JSONValue.object(from: buffer.readableBytesView, numbers: .clampingHugeNumbers)
    }
}
