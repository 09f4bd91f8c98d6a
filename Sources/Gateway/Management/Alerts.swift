import Foundation
import GRPCCore
import HTTPTypes
import Hummingbird
import LumenAPI
import SharedRules
import WireFormats

/// Budget alerts as the management API and the dashboard's `/api` take and show them: a pool's
/// thresholds, the organisation's webhook endpoints and their deliveries. The rules are the
/// ledger's (`SetPoolAlerts`, `CreateAlertEndpoint`, …); this reads bodies and writes objects.
public enum AlertsAPI {
    /// `{"thresholds_percent": [50, 80, 100]}`: percents of the pool's reference spent; `[]` removes them.
    public static func thresholds(_ body: [String: JSONValue]) throws(APIError) -> [Int32] {
        try RequestRules.refuseUnknown(body, allowed: ["thresholds_percent"])
        guard let list = body["thresholds_percent"]?.arrayValue else {
            throw APIError.invalid(
                "invalid_thresholds", "thresholds_percent is required: a list of whole percents from 1 to 100", param: "thresholds_percent")
        }
        let refusal = APIError.invalid(
            "invalid_thresholds", "thresholds_percent must hold whole percents from 1 to 100", param: "thresholds_percent")
        return try list.map { value throws(APIError) in
            // Null is no percent either; the range is the ledger's to judge.
            guard let percent = try JSONValue.wholeNumber(value, in: Int(Int32.min)...Int(Int32.max), else: refusal) else { throw refusal }
            return Int32(percent)
        }
    }

    /// `{"url", "format": "json" | "slack", "description"}`.
    public static func endpoint(_ body: [String: JSONValue]) throws(APIError) -> Lumen_Ledger_V1_CreateAlertEndpointRequest {
        try RequestRules.refuseUnknown(body, allowed: ["url", "format", "description"])
        var request = Lumen_Ledger_V1_CreateAlertEndpointRequest()
        guard let url = try RequestRules.text(body["url"], field: "url", code: "invalid_url"), !url.isEmpty else {
            throw APIError.invalid("invalid_url", "url is required: where alerts are POSTed (https://…)", param: "url")
        }
        request.url = url
        switch try RequestRules.text(body["format"], field: "format") ?? "json" {
        case "json": request.format = .json
        case "slack": request.format = .slack
        default: throw APIError.invalid("invalid_format", "format is json or slack", param: "format")
        }
        request.description_p = try RequestRules.text(body["description"], field: "description") ?? ""
        return request
    }

    /// A body's most bytes.
    public static let maxBodyBytes = 16 * 1024

    /// The ledger's field names as the bodies name them.
    public static let params = ["thresholds_percent": "thresholds_percent", "endpoint_id": "endpointId"]

    /// `status` (`pending`, `delivered`, `failed`), `page`, `limit`.
    public static let deliveryParameters: Set<String> = ["status", "page", "limit"]

    public static func deliveries(_ values: [String: String]) throws(APIError) -> Lumen_Ledger_V1_ListAlertDeliveriesRequest {
        var request = Lumen_Ledger_V1_ListAlertDeliveriesRequest()
        request.page = try RequestRules.pageRequest(values, maxLimit: 100)
        if let status = values["status"] {
            switch status {
            case "pending": request.status = .pending
            case "delivered": request.status = .delivered
            case "failed": request.status = .failed
            default: throw APIError.invalid("invalid_status", "status is pending, delivered or failed", param: "status")
            }
        }
        return request
    }
}

/// A pool's alerts: the thresholds, those crossed now, and the reference they are shares of
/// (USD; and coins on the dashboard).
public struct PoolAlertsObject: Encodable, Sendable {
    var thresholdsPercent: [Int32]
    var crossedPercent: [Int32]
    var reference: Decimal
    var referenceCoins: Decimal?

    public init(_ alerts: Lumen_Ledger_V1_PoolAlerts, coins: Coins? = nil) {
        thresholdsPercent = alerts.thresholdsPercent
        crossedPercent = alerts.crossedPercent
        reference = USD.amount(alerts.referenceMicros)
        referenceCoins = coins?.amount(micros: alerts.referenceMicros)
    }

    enum CodingKeys: String, CodingKey {
        case reference
        case thresholdsPercent = "thresholds_percent"
        case crossedPercent = "crossed_percent"
        case referenceCoins = "reference_coins"
    }
}

/// A webhook endpoint; `secret` only when it was just made.
public struct AlertEndpointObject: Encodable, Sendable {
    var id: String
    var url: String
    var format: String
    var description: String
    var createdAt: String
    var secret: String?

    public init(_ endpoint: Lumen_Ledger_V1_AlertEndpoint, secret: String? = nil) {
        id = endpoint.id
        url = endpoint.url
        format = endpoint.format == .slack ? "slack" : "json"
        description = endpoint.description_p
        createdAt = RFC3339.format(millis: endpoint.createdAt.millis)
        self.secret = secret
    }

    enum CodingKeys: String, CodingKey {
        case id, url, format, description, secret
        case createdAt = "created_at"
    }
}

/// `{"object": "list", "data": [endpoint]}`.
public struct AlertEndpointList: Encodable, Sendable {
    var object = "list"
    var data: [AlertEndpointObject]

    public init(_ response: Lumen_Ledger_V1_ListAlertEndpointsResponse) {
        data = response.endpoints.map { AlertEndpointObject($0) }
    }
}

/// One alert's delivery to one endpoint.
public struct AlertDeliveryObject: Encodable, Sendable {
    var alertID: String
    var endpointID: String
    var ownerType: String
    var ownerID: String
    var thresholdPercent: Int32
    var balance: Decimal
    var reference: Decimal
    var createdAt: String
    var status: String
    var attempts: Int32
    var nextAttemptAt: String?
    var lastStatusCode: Int32?
    var lastError: String?
    var deliveredAt: String?

    public init(_ delivery: Lumen_Ledger_V1_AlertDelivery) {
        alertID = delivery.alertID
        endpointID = delivery.endpointID
        ownerType = delivery.owner.type.publicName
        ownerID = delivery.owner.id
        thresholdPercent = delivery.thresholdPercent
        balance = USD.amount(delivery.balanceMicros)
        reference = USD.amount(delivery.referenceMicros)
        createdAt = RFC3339.format(millis: delivery.createdAt.millis)
        status =
            switch delivery.status {
            case .delivered: "delivered"
            case .failed: "failed"
            default: "pending"
            }
        attempts = delivery.attempts
        nextAttemptAt = delivery.hasNextAttemptAt ? RFC3339.format(millis: delivery.nextAttemptAt.millis) : nil
        lastStatusCode = delivery.lastStatusCode == 0 ? nil : delivery.lastStatusCode
        lastError = delivery.lastError.isEmpty ? nil : delivery.lastError
        deliveredAt = delivery.hasDeliveredAt ? RFC3339.format(millis: delivery.deliveredAt.millis) : nil
    }

    enum CodingKeys: String, CodingKey {
        case balance, reference, status, attempts
        case alertID = "alert_id"
        case endpointID = "endpoint_id"
        case ownerType = "owner_type"
        case ownerID = "owner_id"
        case thresholdPercent = "threshold_percent"
        case createdAt = "created_at"
        case nextAttemptAt = "next_attempt_at"
        case lastStatusCode = "last_status_code"
        case lastError = "last_error"
        case deliveredAt = "delivered_at"
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(alertID, forKey: .alertID)
        try container.encode(endpointID, forKey: .endpointID)
        try container.encode(ownerType, forKey: .ownerType)
        try container.encode(ownerID, forKey: .ownerID)
        try container.encode(thresholdPercent, forKey: .thresholdPercent)
        try container.encode(balance, forKey: .balance)
        try container.encode(reference, forKey: .reference)
        try container.encode(createdAt, forKey: .createdAt)
        try container.encode(status, forKey: .status)
        try container.encode(attempts, forKey: .attempts)
        try container.encode(nextAttemptAt, forKey: .nextAttemptAt)
        try container.encode(lastStatusCode, forKey: .lastStatusCode)
        try container.encode(lastError, forKey: .lastError)
        try container.encode(deliveredAt, forKey: .deliveredAt)
    }
}

/// A page of deliveries, newest first, paged as the usage endpoint.
public typealias AlertDeliveryPage = ListPage<AlertDeliveryObject>

/// The management API's budget alerts: `GET|PUT /v1/management/pools/{ownerType}/{ownerId}/alerts`,
/// `GET|POST /v1/management/alerts/endpoints`, `DELETE /v1/management/alerts/endpoints/{endpointId}`,
/// `GET /v1/management/alerts/deliveries`.
struct AlertsController<Context: RequestContext>: Sendable {
    let ledger: any Lumen_Ledger_V1_LedgerService.ClientProtocol

    func addRoutes(to group: RouterGroup<Context>) {
        group.get("pools/{ownerType}/{ownerId}/alerts", use: poolAlerts)
        group.put("pools/{ownerType}/{ownerId}/alerts", use: setPoolAlerts)
        group.get("alerts/endpoints", use: endpoints)
        group.post("alerts/endpoints", use: createEndpoint)
        group.delete("alerts/endpoints/{endpointId}", use: deleteEndpoint)
        group.get("alerts/deliveries", use: deliveries)
    }

    /// The pool a path names: `organization` (its id: the token's organisation's), `user`, `client` or `key`.
    static func owner(_ context: Context) throws -> Lumen_Common_V1_PrincipalRef {
        let id = try context.parameters.require("ownerId")
        switch try context.parameters.require("ownerType") {
        case "organization": return .with { $0.type = .organization; $0.id = id }
        case "user": return .user(id)
        case "client": return .client(id)
        case "key": return .with { $0.type = .key; $0.id = id }
        default: throw APIError(.notFound, code: "not_found", message: "a pool's owner type is organization, user, client or key")
        }
    }

    static func body(_ request: Request) async throws -> [String: JSONValue] {
        try JSONValue.object(from: try await request.body.collect(upTo: AlertsAPI.maxBodyBytes).readableBytesView)
    }

    @Sendable func poolAlerts(_ request: Request, context: Context) async throws -> JSONResponse<PoolAlertsObject> {
        let metadata = try ManagementAuth.metadata(request)
        let owner = try Self.owner(context)
        return try await APIError.translating(params: ["owner": "ownerId"]) {
            JSONResponse(PoolAlertsObject(try await ledger.getPoolAlerts(.with { $0.owner = owner }, metadata: metadata).alerts))
        }
    }

    @Sendable func setPoolAlerts(_ request: Request, context: Context) async throws -> JSONResponse<PoolAlertsObject> {
        let metadata = try ManagementAuth.metadata(request)
        let owner = try Self.owner(context)
        let thresholds = try AlertsAPI.thresholds(try await Self.body(request))
        return try await APIError.translating(params: ["owner": "ownerId"]) {
            let response = try await ledger.setPoolAlerts(
                .with {
                    $0.owner = owner
                    $0.thresholdsPercent = thresholds
                }, metadata: metadata)
            return JSONResponse(PoolAlertsObject(response.alerts))
        }
    }

    @Sendable func endpoints(_ request: Request, context: Context) async throws -> JSONResponse<AlertEndpointList> {
        let metadata = try ManagementAuth.metadata(request)
        return try await APIError.translating {
            JSONResponse(AlertEndpointList(try await ledger.listAlertEndpoints(.init(), metadata: metadata)))
        }
    }

    @Sendable func createEndpoint(_ request: Request, context: Context) async throws -> JSONResponse<AlertEndpointObject> {
        let metadata = try ManagementAuth.metadata(request)
        let message = try AlertsAPI.endpoint(try await Self.body(request))
        return try await APIError.translating {
            let response = try await ledger.createAlertEndpoint(message, metadata: metadata)
            return JSONResponse(AlertEndpointObject(response.endpoint, secret: response.secret), status: .created)
        }
    }

    @Sendable func deleteEndpoint(_ request: Request, context: Context) async throws -> Response {
        let metadata = try ManagementAuth.metadata(request)
        let id = try context.parameters.require("endpointId")
        return try await APIError.translating(params: AlertsAPI.params) {
            _ = try await ledger.deleteAlertEndpoint(.with { $0.endpointID = id }, metadata: metadata)
            return Response(status: .noContent)
        }
    }

    @Sendable func deliveries(_ request: Request, context: Context) async throws -> JSONResponse<AlertDeliveryPage> {
        let metadata = try ManagementAuth.metadata(request)
        try RequestRules.checkEncoding(request.uri.query)
        let message = try AlertsAPI.deliveries(try RequestRules.query(request.uri.queryParameters, known: AlertsAPI.deliveryParameters))
        return try await APIError.translating {
            let response = try await ledger.listAlertDeliveries(message, metadata: metadata)
            return JSONResponse(AlertDeliveryPage(response.deliveries.map(AlertDeliveryObject.init), response.pageInfo))
        }
    }
}
