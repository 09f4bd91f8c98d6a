import Foundation
import GRPCCore
import Hummingbird
import LumenAPI
import SharedRules
import WireFormats

/// The request log (the ledger's `ListRequests`) as the management API and the dashboard ask
/// for it: the query parameters and the lines as objects. The ledger decides who sees what.
public enum RequestLogAPI {
    /// The query parameters a listing takes.
    public static let parameters: Set<String> = [
        "keyId", "userId", "clientId", "logicalModel", "backendId", "status", "startDate", "endDate", "page", "limit",
    ]

    /// The ledger's field names as the query names them.
    static func params(_ request: Lumen_Ledger_V1_ListRequestsRequest) -> [String: String] {
        [
            "key_id": "keyId", "owner": request.owner.type == .client ? "clientId" : "userId", "logical_model": "logicalModel",
            "backend_id": "backendId", "start_time": "startDate", "end_time": "endDate", "page": "page", "limit": "limit",
        ]
    }

    /// A listing read from query `values` (400 naming the parameter at fault); an empty value is
    /// no filter (a form's blank field).
    public static func request(_ values: [String: String]) throws(APIError) -> Lumen_Ledger_V1_ListRequestsRequest {
        let values = values.filter { !$0.value.isEmpty }
        var request = Lumen_Ledger_V1_ListRequestsRequest()
        request.page = try RequestRules.pageRequest(values, maxLimit: 100)
        if let key = values["keyId"] { request.keyID = key }
        if let owner = try RequestRules.owner(values) { request.owner = owner }
        if let model = values["logicalModel"] { request.logicalModel = model }
        if let backend = values["backendId"] { request.backendID = backend }
        if let status = values["status"] {
            switch status {
            case "pending": request.status = .pending
            case "settled": request.status = .settled
            case "failed": request.status = .failed
            default: throw APIError.invalid("invalid_status", "status is pending, settled or failed", param: "status")
            }
        }
        let (start, end) = try RequestRules.dateRange(values)
        if let start { request.startTime = .init(millis: start) }
        if let end { request.endTime = .init(millis: end) }
        return request
    }

    /// The ledger's answer, its refusals translated.
    public static func fetch(
        _ request: Lumen_Ledger_V1_ListRequestsRequest, ledger: any Lumen_Ledger_V1_LedgerService.ClientProtocol, metadata: Metadata
    ) async throws -> Lumen_Ledger_V1_ListRequestsResponse {
        try await APIError.translating(params: params(request)) { try await ledger.listRequests(request, metadata: metadata) }
    }
}

/// One request as the log shows it: money in USD (and coins on the dashboard).
public struct RequestLineObject: Encodable, Sendable {
    var requestID: String
    var createdAt: String
    var keyID: String?
    var ownerType: String
    var ownerID: String
    var origin: String
    var logicalModel: String
    var backendID: String?
    var status: String
    var httpStatus: Int32?
    var errorCode: String?
    var inputTokens: Int64
    var cachedInputTokens: Int64
    var cacheWriteTokens: Int64
    var outputTokens: Int64
    var cost: Decimal
    var coins: Decimal?
    var estimated: Bool
    var latencyMs: Int64?
    var ttftMs: Int64?
    var captured: Bool

    public init(_ line: Lumen_Ledger_V1_UsageLine, coins: Coins? = nil) {
        requestID = line.requestID
        createdAt = RFC3339.format(millis: line.createdAt.millis)
        keyID = line.keyID.isEmpty ? nil : line.keyID
        ownerType = line.owner.type.publicName
        ownerID = line.owner.id
        origin = line.origin == .web ? "web" : "api"
        logicalModel = line.logicalModel
        backendID = line.backendID.isEmpty ? nil : line.backendID
        status =
            switch line.status {
            case .settled: "settled"
            case .failed: "failed"
            default: "pending"
            }
        httpStatus = line.httpStatus == 0 ? nil : line.httpStatus
        errorCode = line.errorCode.isEmpty ? nil : line.errorCode
        inputTokens = line.inputTokens
        cachedInputTokens = line.cachedInputTokens
        cacheWriteTokens = line.cacheWriteTokens
        outputTokens = line.outputTokens
        cost = USD.amount(line.costMicros)
        self.coins = coins?.amount(micros: line.costMicros)
        estimated = line.estimated
        latencyMs = line.status == .pending ? nil : line.latencyMs
        ttftMs = line.ttftMs == 0 ? nil : line.ttftMs
        captured = line.captured
    }

    enum CodingKeys: String, CodingKey {
        case origin, status, cost, coins, estimated, captured
        case requestID = "request_id"
        case createdAt = "created_at"
        case keyID = "key_id"
        case ownerType = "owner_type"
        case ownerID = "owner_id"
        case logicalModel = "logical_model"
        case backendID = "backend_id"
        case httpStatus = "http_status"
        case errorCode = "error_code"
        case inputTokens = "input_tokens"
        case cachedInputTokens = "cached_input_tokens"
        case cacheWriteTokens = "cache_write_tokens"
        case outputTokens = "output_tokens"
        case latencyMs = "latency_ms"
        case ttftMs = "ttft_ms"
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(requestID, forKey: .requestID)
        try container.encode(createdAt, forKey: .createdAt)
        try container.encode(keyID, forKey: .keyID)
        try container.encode(ownerType, forKey: .ownerType)
        try container.encode(ownerID, forKey: .ownerID)
        try container.encode(origin, forKey: .origin)
        try container.encode(logicalModel, forKey: .logicalModel)
        try container.encode(backendID, forKey: .backendID)
        try container.encode(status, forKey: .status)
        try container.encode(httpStatus, forKey: .httpStatus)
        try container.encode(errorCode, forKey: .errorCode)
        try container.encode(inputTokens, forKey: .inputTokens)
        try container.encode(cachedInputTokens, forKey: .cachedInputTokens)
        try container.encode(cacheWriteTokens, forKey: .cacheWriteTokens)
        try container.encode(outputTokens, forKey: .outputTokens)
        try container.encode(cost, forKey: .cost)
        try container.encodeIfPresent(coins, forKey: .coins)
        try container.encode(estimated, forKey: .estimated)
        try container.encode(latencyMs, forKey: .latencyMs)
        try container.encode(ttftMs, forKey: .ttftMs)
        try container.encode(captured, forKey: .captured)
    }
}

/// A request's captured prompt and answer.
public struct CapturedRequestObject: Encodable, Sendable {
    public let requestID: String
    public let prompt: String
    public let answer: String
    public let truncated: Bool
    public let expiresAt: String

    public init(requestID: String, _ capture: Lumen_Ledger_V1_CapturedRequest) {
        self.requestID = requestID
        prompt = capture.prompt
        answer = capture.answer
        truncated = capture.truncated
        expiresAt = RFC3339.format(millis: capture.expiresAt.millis)
    }

    enum CodingKeys: String, CodingKey {
        case prompt, answer, truncated
        case requestID = "request_id"
        case expiresAt = "expires_at"
    }
}

/// A capture setting: `{"owner_type", "owner_id", "enabled", "retention_days", "max_bytes"}`.
public struct CaptureRuleObject: Encodable, Sendable {
    var ownerType: String
    var ownerID: String
    var enabled: Bool
    var retentionDays: Int32
    var maxBytes: Int64

    public init(_ rule: Lumen_Ledger_V1_CaptureRule) {
        ownerType = rule.owner.type.publicName
        ownerID = rule.owner.id
        enabled = rule.enabled
        retentionDays = rule.retentionDays
        maxBytes = rule.maxBytes
    }

    enum CodingKeys: String, CodingKey {
        case enabled
        case ownerType = "owner_type"
        case ownerID = "owner_id"
        case retentionDays = "retention_days"
        case maxBytes = "max_bytes"
    }
}

/// `{"object": "list", "data": [rule]}`.
public struct CaptureRuleList: Encodable, Sendable {
    var object = "list"
    var data: [CaptureRuleObject]

    public init(_ rules: [Lumen_Ledger_V1_CaptureRule]) {
        data = rules.map(CaptureRuleObject.init)
    }
}

extension RequestLogAPI {
    /// `{"enabled", "retention_days", "max_bytes"}` for `owner`.
    public static func captureRule(_ body: [String: JSONValue], owner: Lumen_Common_V1_PrincipalRef) throws(APIError) -> Lumen_Ledger_V1_CaptureRule {
        try RequestRules.refuseUnknown(body, allowed: ["enabled", "retention_days", "max_bytes"])
        guard let enabled = try RequestRules.bool(body["enabled"], field: "enabled") else {
            throw APIError.invalid("invalid_enabled", "enabled is required: true or false", param: "enabled")
        }
        // Whole numbers; their ranges are the ledger's to judge (and to name).
        let days = try JSONValue.wholeNumber(
            body["retention_days"], in: Int(Int32.min)...Int(Int32.max),
            else: APIError.invalid("invalid_retention_days", "retention_days must be a whole number from 1 to 90", param: "retention_days"))
        let bytes = try JSONValue.wholeNumber(
            body["max_bytes"], in: Int.min...Int.max,
            else: APIError.invalid("invalid_max_bytes", "max_bytes must be a whole number from 1,024 to 1,048,576", param: "max_bytes"))
        return .with {
            $0.owner = owner
            $0.enabled = enabled
            $0.retentionDays = Int32(days ?? 7)
            $0.maxBytes = Int64(bytes ?? 65_536)
        }
    }
}

/// A page of the log, newest first.
public typealias RequestLogPage = ListPage<RequestLineObject>

/// `GET /v1/management/requests`: the organisation's request log.
struct RequestLogController<Context: RequestContext>: Sendable {
    let ledger: any Lumen_Ledger_V1_LedgerService.ClientProtocol

    func addRoutes(to group: RouterGroup<Context>) {
        group.get("requests", use: list)
        group.get("requests/{requestId}/capture", use: capture)
        group.get("captures", use: captures)
        group.put("captures/{ownerType}/{ownerId}", use: setCapture)
    }

    @Sendable func capture(_ request: Request, context: Context) async throws -> JSONResponse<CapturedRequestObject> {
        let metadata = try ManagementAuth.metadata(request)
        let id = try context.parameters.require("requestId")
        return try await APIError.translating(params: ["request_id": "requestId"]) {
            let response = try await ledger.getRequestCapture(.with { $0.requestID = id }, metadata: metadata)
            return JSONResponse(CapturedRequestObject(requestID: id, response.capture))
        }
    }

    @Sendable func captures(_ request: Request, context: Context) async throws -> JSONResponse<CaptureRuleList> {
        let metadata = try ManagementAuth.metadata(request)
        return try await APIError.translating {
            JSONResponse(CaptureRuleList(try await ledger.listCaptures(.init(), metadata: metadata).rules))
        }
    }

    @Sendable func setCapture(_ request: Request, context: Context) async throws -> JSONResponse<CaptureRuleObject> {
        let metadata = try ManagementAuth.metadata(request)
        let owner = try AlertsController<Context>.owner(context)
        let body = try JSONValue.object(from: try await request.body.collect(upTo: AlertsAPI.maxBodyBytes).readableBytesView)
        let rule = try RequestLogAPI.captureRule(body, owner: owner)
        return try await APIError.translating(params: ["owner": "ownerId"]) {
            JSONResponse(CaptureRuleObject(try await ledger.setCapture(.with { $0.rule = rule }, metadata: metadata).rule))
        }
    }

    @Sendable func list(_ request: Request, context: Context) async throws -> JSONResponse<RequestLogPage> {
        let metadata = try ManagementAuth.metadata(request)
        try RequestRules.checkEncoding(request.uri.query)
        let message = try RequestLogAPI.request(try RequestRules.query(request.uri.queryParameters, known: RequestLogAPI.parameters))
        let response = try await RequestLogAPI.fetch(message, ledger: ledger, metadata: metadata)
        return JSONResponse(RequestLogPage(response.lines.map { RequestLineObject($0) }, response.pageInfo))
    }
}
