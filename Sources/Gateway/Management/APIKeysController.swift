import Foundation
import GRPCCore
import Hummingbird
import LumenAPI
import RPCSupport

/// `/v1/management/api-keys`: list, create, read and update the organisation's inference keys
/// (seed 003). Authorised by the management token, which the keys service checks.
struct APIKeysController<Context: RequestContext>: Sendable {
    let keys: any Lumen_Keys_V1_KeysService.ClientProtocol
    static var maxBodyBytes: Int { 64 * 1024 }

    func addRoutes(to group: RouterGroup<Context>) {
        group.get("api-keys", use: list)
        group.post("api-keys", use: create)
        group.get("api-keys/{keyId}", use: get)
        group.patch("api-keys/{keyId}", use: update)
    }

    @Sendable func list(_ request: Request, context: Context) async throws -> JSONResponse<ListObject<APIKeyObject>> {
        let metadata = try ManagementAuth.metadata(request)
        var keys: [APIKeyObject] = []
        var page: Int32 = 1
        while true {
            let response = try await call {
                try await self.keys.listKeys(
                    .with {
                        $0.kind = .inference
                        $0.includeDeleted = true
                        $0.page = .with {
                            $0.page = page
                            $0.limit = 1000
                        }
                    }, metadata: metadata)
            }
            keys += response.keys.map { APIKeyObject($0) }
            guard response.pageInfo.hasMore_p else { break }
            page += 1
        }
        return JSONResponse(ListObject(data: keys))
    }

    @Sendable func create(_ request: Request, context: Context) async throws -> JSONResponse<APIKeyObject> {
        let metadata = try ManagementAuth.metadata(request)
        let body = try await Self.body(request, context: context)
        let message = try APIKeyBody.create(body)
        let response = try await call { try await keys.createKey(message, metadata: metadata) }
        return JSONResponse(APIKeyObject(response.key, secret: response.secret))
    }

    @Sendable func get(_ request: Request, context: Context) async throws -> JSONResponse<APIKeyObject> {
        let metadata = try ManagementAuth.metadata(request)
        let keyID = try context.parameters.require("keyId")
        let response = try await call { try await keys.getKey(.with { $0.keyID = keyID }, metadata: metadata) }
        return JSONResponse(APIKeyObject(response.key))
    }

    @Sendable func update(_ request: Request, context: Context) async throws -> JSONResponse<APIKeyObject> {
        let metadata = try ManagementAuth.metadata(request)
        let keyID = try context.parameters.require("keyId")
        let body = try await Self.body(request, context: context)
        let message = try APIKeyBody.update(body, keyID: keyID)
        let response = try await call { try await keys.updateKey(message, metadata: metadata) }
        return JSONResponse(APIKeyObject(response.key))
    }

    /// Runs a keys-service call, naming the fields of its errors as this API's body does.
    private func call<T>(_ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch let error as RPCError {
            throw APIError(ServiceError(error), params: APIKeyBody.params)
        }
    }

    static func body(_ request: Request, context: Context) async throws -> [String: JSONValue] {
        // The body is read as JSON whatever its Content-Type says: `curl -d` sends
        // form-urlencoded by default, and rejecting that helps nobody.
        let buffer = try await request.body.collect(upTo: maxBodyBytes)
        return try JSONValue.object(from: buffer.readableBytesView)
    }
}
