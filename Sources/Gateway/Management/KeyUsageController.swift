import Foundation
import GRPCCore
import Hummingbird
import LumenAPI
import RPCSupport
import SharedRules

/// `GET /v1/management/api-keys/{keyId}/usage`: one key's usage lines, newest first, with the
/// usage filter contract of seed 003 translated into the ledger's `ListUsage`; and
/// `GET /v1/management/api-keys/{keyId}/billing`: the same filters, aggregated (`GetBilling`),
/// without pagination. The key must belong to the management token's organisation (the keys
/// service says so, 404 otherwise).
struct KeyUsageController<Context: RequestContext>: Sendable {
    let keys: any Lumen_Keys_V1_KeysService.ClientProtocol
    let ledger: any Lumen_Ledger_V1_LedgerService.ClientProtocol

    func addRoutes(to group: RouterGroup<Context>) {
        group.get("api-keys/{keyId}/usage", use: usage)
        group.get("api-keys/{keyId}/billing", use: billing)
    }

    @Sendable func billing(_ request: Request, context: Context) async throws -> JSONResponse<BillingObject> {
        let metadata = try ManagementAuth.metadata(request)
        let keyID = try context.parameters.require("keyId")
        try RequestRules.checkEncoding(request.uri.query)
        let filter = try KeyUsageQuery.filter(request.uri.queryParameters, keyID: keyID, paged: false)
        return try await APIError.translating(params: KeyUsageQuery.params) {
            _ = try await keys.getKey(.with { $0.keyID = keyID }, metadata: metadata)
            let response = try await ledger.getBilling(.with { $0.filter = filter.filter }, metadata: metadata)
            return JSONResponse(BillingObject(keyID: keyID, response))
        }
    }

    @Sendable func usage(_ request: Request, context: Context) async throws -> JSONResponse<UsagePage> {
        let metadata = try ManagementAuth.metadata(request)
        let keyID = try context.parameters.require("keyId")
        try RequestRules.checkEncoding(request.uri.query)
        let query = try KeyUsageQuery.request(request.uri.queryParameters, keyID: keyID)
        return try await APIError.translating(params: KeyUsageQuery.params) {
            _ = try await keys.getKey(.with { $0.keyID = keyID }, metadata: metadata)
            let response = try await ledger.listUsage(query, metadata: metadata)
            return JSONResponse(UsagePage(response.lines.map(UsageLineObject.init), response.pageInfo))
        }
    }
}

/// The usage filter contract of seed 003: query parameters to a `ListUsage` request.
enum KeyUsageQuery {
    /// The ledger's field names as the query parameters name them.
    static let params = [
        "key_id": "keyId", "logical_model": "logicalModel", "model_vendor": "modelVendor", "scene": "scene",
        "access_channel": "accessChannel", "start_time": "startDate", "end_time": "endDate", "page": "page", "limit": "limit",
    ]

    static let filterParameters: Set<String> = [
        "logicalModel", "modelVendor", "scene", "accessChannel", "startDate", "endDate",
    ]

    /// The `ListUsage` request of a query string, or 400 naming the parameter at fault.
    static func request(_ parameters: Parameters, keyID: String) throws(APIError) -> Lumen_Ledger_V1_ListUsageRequest {
        try filter(parameters, keyID: keyID, paged: true)
    }

    /// The filter (and, when `paged`, the page) of a query string, or 400 naming the
    /// parameter at fault. `/billing` is not paged: `page` and `limit` are unknown there.
    static func filter(_ parameters: Parameters, keyID: String, paged: Bool) throws(APIError) -> Lumen_Ledger_V1_ListUsageRequest {
        let known = paged ? filterParameters.union(["page", "limit"]) : filterParameters
        let values = try RequestRules.query(parameters, known: known)
        var request = Lumen_Ledger_V1_ListUsageRequest()
        request.filter.keyID = keyID
        request.page = try RequestRules.pageRequest(values, maxLimit: 100)
        if let model = values["logicalModel"] { request.filter.logicalModel = model }
        if let vendor = values["modelVendor"] { request.filter.modelVendor = vendor }
        if let text = values["scene"] {
            guard let scene = Lumen_Common_V1_Scene.byPublicName[text] else {
                throw APIError.invalid(
                    "invalid_scene", "scene must be one of \(Lumen_Common_V1_Scene.byPublicName.keys.sorted().joined(separator: ", "))", param: "scene")
            }
            request.filter.scene = scene
        }
        if let text = values["accessChannel"] {
            switch text {
            case "platform": request.filter.accessChannel = .platform
            case "byok": request.filter.accessChannel = .byok
            default: throw APIError.invalid("invalid_access_channel", "accessChannel must be platform or byok", param: "accessChannel")
            }
        }
        let (start, end) = try RequestRules.dateRange(values)
        if let start { request.filter.startTime = .init(millis: start) }
        if let end { request.filter.endTime = .init(millis: end) }
        return request
    }
}

/// A page of usage lines, newest first.
typealias UsagePage = ListPage<UsageLineObject>

/// One usage line as the management API shows it: public fields only, money in USD.
struct UsageLineObject: Encodable, Sendable {
    var requestID: String
    var billingTransactionID: String?
    var createdAt: String
    var logicalModel: String
    var modelVendor: String
    var scene: String
    var accessChannel: String
    var inputTokens: Int64
    var cachedInputTokens: Int64
    var cacheWriteTokens: Int64
    var outputTokens: Int64
    var cost: Decimal
    var status: String
    var estimated: Bool

    enum CodingKeys: String, CodingKey {
        case requestID = "request_id"
        case billingTransactionID = "billing_transaction_id"
        case createdAt = "created_at"
        case logicalModel = "logical_model"
        case modelVendor = "model_vendor"
        case scene
        case accessChannel = "access_channel"
        case inputTokens = "input_tokens"
        case cachedInputTokens = "cached_input_tokens"
        case cacheWriteTokens = "cache_write_tokens"
        case outputTokens = "output_tokens"
        case cost, status, estimated
    }

    init(_ line: Lumen_Ledger_V1_UsageLine) {
        requestID = line.requestID
        billingTransactionID = line.billingTransactionID.isEmpty ? nil : line.billingTransactionID
        createdAt = RFC3339.format(millis: line.createdAt.millis)
        logicalModel = line.logicalModel
        modelVendor = line.modelVendor
        scene = line.scene.publicName
        accessChannel = line.accessChannel.publicName
        inputTokens = line.inputTokens
        cachedInputTokens = line.cachedInputTokens
        cacheWriteTokens = line.cacheWriteTokens
        outputTokens = line.outputTokens
        cost = USD.amount(line.costMicros)
        status = line.status == .settled ? "settled" : "pending"
        estimated = line.estimated
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(requestID, forKey: .requestID)
        try container.encode(billingTransactionID, forKey: .billingTransactionID)  // null until settled
        try container.encode(createdAt, forKey: .createdAt)
        try container.encode(logicalModel, forKey: .logicalModel)
        try container.encode(modelVendor, forKey: .modelVendor)
        try container.encode(scene, forKey: .scene)
        try container.encode(accessChannel, forKey: .accessChannel)
        try container.encode(inputTokens, forKey: .inputTokens)
        try container.encode(cachedInputTokens, forKey: .cachedInputTokens)
        try container.encode(cacheWriteTokens, forKey: .cacheWriteTokens)
        try container.encode(outputTokens, forKey: .outputTokens)
        try container.encode(cost, forKey: .cost)
        try container.encode(status, forKey: .status)
        try container.encode(estimated, forKey: .estimated)
    }
}
