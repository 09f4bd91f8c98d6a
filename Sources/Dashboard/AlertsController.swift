import Foundation
import GRPCCore
import Gateway
import Hummingbird
import LumenAPI
import RPCSupport
import SharedRules
import WireFormats

/// Budget alerts for people signed in: a user's or client's pool thresholds (the Coins
/// dialog), and the organisation's webhooks and deliveries (the Usage page) — the ledger's
/// RPCs as the person, who must be an administrator to change anything.
struct AlertsController: Sendable {
    let services: GatewayServices
    let coins: Coins

    func addRoutes(to group: RouterGroup<DashboardContext>) {
        for (path, type) in [("users/{userId}", Lumen_Common_V1_PrincipalType.user), ("clients/{clientId}", .client)] {
            group.get("\(path)/pool/alerts") { request, context in try await show(context, owner: try owner(type, context)) }
            group.put("\(path)/pool/alerts") { request, context in try await set(request, context, owner: try owner(type, context)) }
        }
        group.get("alerts/endpoints") { _, context in try await endpoints(context) }
        group.post("alerts/endpoints") { request, context in try await create(request, context) }
        group.delete("alerts/endpoints/{endpointId}") { _, context in try await delete(context) }
        group.get("alerts/deliveries") { request, context in try await deliveries(request, context) }
    }

    func owner(_ type: Lumen_Common_V1_PrincipalType, _ context: DashboardContext) throws -> Lumen_Common_V1_PrincipalRef {
        type == .user ? .user(try context.path("userId")) : .client(try context.path("clientId"))
    }

    func show(_ context: DashboardContext, owner: Lumen_Common_V1_PrincipalRef) async throws -> JSONResponse<PoolAlertsObject> {
        let metadata = try context.acting(services)
        return try await APIError.translating {
            JSONResponse(PoolAlertsObject(try await services.ledger.getPoolAlerts(.with { $0.owner = owner }, metadata: metadata).alerts, coins: coins))
        }
    }

    /// `{"thresholds_percent": [50, 80, 100]}` (administrators).
    func set(_ request: Request, _ context: DashboardContext, owner: Lumen_Common_V1_PrincipalRef) async throws -> JSONResponse<PoolAlertsObject> {
        let thresholds = try AlertsAPI.thresholds(try await Body.object(request))
        let metadata = try context.acting(services)
        return try await APIError.translating(params: AlertsAPI.params) {
            let response = try await services.ledger.setPoolAlerts(
                .with {
                    $0.owner = owner
                    $0.thresholdsPercent = thresholds
                }, metadata: metadata)
            return JSONResponse(PoolAlertsObject(response.alerts, coins: coins))
        }
    }

    func endpoints(_ context: DashboardContext) async throws -> JSONResponse<AlertEndpointList> {
        let metadata = try context.acting(services)
        return try await APIError.translating {
            JSONResponse(AlertEndpointList(try await services.ledger.listAlertEndpoints(.init(), metadata: metadata)))
        }
    }

    /// `{"url", "format", "description"}` (administrators): the endpoint with its secret, shown once.
    func create(_ request: Request, _ context: DashboardContext) async throws -> JSONResponse<AlertEndpointObject> {
        let message = try AlertsAPI.endpoint(try await Body.object(request))
        let metadata = try context.acting(services)
        return try await APIError.translating {
            let response = try await services.ledger.createAlertEndpoint(message, metadata: metadata)
            return JSONResponse(AlertEndpointObject(response.endpoint, secret: response.secret), status: .created)
        }
    }

    func delete(_ context: DashboardContext) async throws -> Response {
        let id = try context.path("endpointId")
        let metadata = try context.acting(services)
        return try await APIError.translating(params: AlertsAPI.params) {
            _ = try await services.ledger.deleteAlertEndpoint(.with { $0.endpointID = id }, metadata: metadata)
            return Response(status: .noContent)
        }
    }

    func deliveries(_ request: Request, _ context: DashboardContext) async throws -> JSONResponse<AlertDeliveryPage> {
        try RequestRules.checkEncoding(request.uri.query)
        let message = try AlertsAPI.deliveries(try RequestRules.query(request.uri.queryParameters, known: AlertsAPI.deliveryParameters))
        let metadata = try context.acting(services)
        return try await APIError.translating {
            let response = try await services.ledger.listAlertDeliveries(message, metadata: metadata)
            return JSONResponse(AlertDeliveryPage(response.deliveries.map(AlertDeliveryObject.init), response.pageInfo))
        }
    }

    /// The Usage page's alerts section: the endpoints and the latest deliveries (administrators).
    func section(_ context: DashboardContext) async throws -> AlertsView {
        let metadata = try context.acting(services)
        return try await APIError.translating {
            async let endpoints = services.ledger.listAlertEndpoints(.init(), metadata: metadata)
            async let deliveries = services.ledger.listAlertDeliveries(
                .with { $0.page = .with { $0.limit = 20 } }, metadata: metadata)
            return AlertsView(endpoints: try await endpoints.endpoints, deliveries: try await deliveries, coins: coins)
        }
    }
}
