import Foundation
import GRPCCore
import Gateway
import Hummingbird
import LumenAPI
import RPCSupport
import SharedRules

/// Usage over time for people signed in: `/api/usage` (JSON with coins, or CSV) and the charts
/// of the profile, client, model and organisation pages — the ledger's `GetUsageSeries`, called
/// as the person, which decides what they may see (their own, the clients they manage; the
/// organisation's for administrators).
struct UsageController: Sendable {
    let services: GatewayServices
    let coins: Coins

    func addRoutes(to group: RouterGroup<DashboardContext>) {
        group.get("usage", use: usage)
        group.get("requests", use: requests)
        group.get("requests/{requestId}/capture", use: capture)
        group.get("captures", use: captures)
        group.put("captures/{ownerType}/{ownerId}", use: setCapture)
    }

    /// `/api/captures`: the organisation's capture settings (administrators).
    @Sendable func captures(_ request: Request, context: DashboardContext) async throws -> JSONResponse<CaptureRuleList> {
        let metadata = try context.acting(services)
        return try await APIError.translating {
            JSONResponse(CaptureRuleList(try await services.ledger.listCaptures(.init(), metadata: metadata).rules))
        }
    }

    /// `PUT /api/captures/{organization|client|key}/{id}` `{"enabled", "retention_days", "max_bytes"}` (administrators).
    @Sendable func setCapture(_ request: Request, context: DashboardContext) async throws -> JSONResponse<CaptureRuleObject> {
        let id = try context.path("ownerId")
        let owner: Lumen_Common_V1_PrincipalRef
        switch try context.path("ownerType") {
        case "organization": owner = .with { $0.type = .organization; $0.id = id }
        case "client": owner = .client(id)
        case "key": owner = .with { $0.type = .key; $0.id = id }
        default: throw APIError(.notFound, code: "not_found", message: "capture is set for an organization, a client or a key")
        }
        let rule = try RequestLogAPI.captureRule(try await Body.object(request), owner: owner)
        let metadata = try context.acting(services)
        return try await APIError.translating(params: ["owner": "ownerId"]) {
            JSONResponse(CaptureRuleObject(try await services.ledger.setCapture(.with { $0.rule = rule }, metadata: metadata).rule))
        }
    }

    /// `/api/requests/{requestId}/capture`: the request's captured prompt and answer, for whoever may see the request.
    @Sendable func capture(_ request: Request, context: DashboardContext) async throws -> JSONResponse<CapturedRequestObject> {
        JSONResponse(try await captured(try context.path("requestId"), context: context))
    }

    func captured(_ requestID: String, context: DashboardContext) async throws -> CapturedRequestObject {
        let metadata = try context.acting(services)
        return try await APIError.translating(params: ["request_id": "requestId"]) {
            let response = try await services.ledger.getRequestCapture(.with { $0.requestID = requestID }, metadata: metadata)
            return CapturedRequestObject(requestID: requestID, response.capture)
        }
    }

    /// `/api/requests?keyId=&userId=|clientId=&logicalModel=&backendId=&status=&startDate=&endDate=&page=&limit=`:
    /// the request log as the person may see it, with coins beside USD.
    @Sendable func requests(_ request: Request, context: DashboardContext) async throws -> JSONResponse<RequestLogPage> {
        try RequestRules.checkEncoding(request.uri.query)
        let message = try RequestLogAPI.request(try RequestRules.query(request.uri.queryParameters, known: RequestLogAPI.parameters))
        let response = try await RequestLogAPI.fetch(message, ledger: services.ledger, metadata: try context.acting(services))
        return JSONResponse(RequestLogPage(response.lines.map { RequestLineObject($0, coins: coins) }, response.pageInfo))
    }

    /// The names of the keys and owners of `lines` (each looked up once), by id.
    func names(of lines: [Lumen_Ledger_V1_UsageLine], metadata: Metadata) async -> [String: String] {
        var principals: [String: Lumen_Common_V1_PrincipalRef] = [:]
        for line in lines {
            if !line.keyID.isEmpty { principals[line.keyID] = .with { $0.type = .key; $0.id = line.keyID } }
            principals[line.owner.id] = line.owner
        }
        return await withTaskGroup(of: (String, String).self) { group in
            for (id, principal) in principals {
                group.addTask { (id, await describe(principal, metadata: metadata).0) }
            }
            var names: [String: String] = [:]
            for await (id, name) in group { names[id] = name }
            return names
        }
    }

    /// `/api/usage?days=&userId=|clientId=&logicalModel=&top=&format=json|csv`.
    @Sendable func usage(_ request: Request, context: DashboardContext) async throws -> Response {
        try RequestRules.checkEncoding(request.uri.query)
        let query = try UsageOverTime.Query(try RequestRules.query(request.uri.queryParameters, known: UsageOverTime.parameters))
        let response = try await UsageOverTime.fetch(query, ledger: services.ledger, metadata: try context.acting(services))
        if query.csv { return UsageOverTime.csvResponse(response, coins: coins) }
        return try JSONResponse(UsageSeriesObject(response, coins: coins)).response(from: request, context: context)
    }

    /// A page's chart: `owner`'s usage (nil: the organisation's), of `model` if given, over the
    /// page's `?days=` (30 unless given; 400 `invalid_days` outside 1–366). `page` is the page's
    /// path, which the window's links return to.
    func chart(
        _ request: Request, owner: Lumen_Common_V1_PrincipalRef?, model: String? = nil, heading: String, page: String,
        context: DashboardContext
    ) async throws -> UsageChartView {
        var values = ["days": request.uri.queryParameters["days"].map(String.init) ?? ""]
        var csv: [String] = []
        if let owner {
            let name = owner.type == .client ? "clientId" : "userId"
            values[name] = owner.id
            csv.append("\(name)=\(PathSegment.encode(owner.id))")
        }
        if let model {
            values["logicalModel"] = model
            csv.append("logicalModel=\(PathSegment.encode(model))")
        }
        let query = try UsageOverTime.Query(values)
        let metadata = try context.acting(services)
        let response = try await UsageOverTime.fetch(query, ledger: services.ledger, metadata: metadata)
        async let keys = leaders(response.topKeys, metadata: metadata)
        async let owners = leaders(response.topOwners, metadata: metadata)
        return UsageChartView(
            response, heading: heading, days: Int(query.request.days), coins: coins, page: page, csv: csv.joined(separator: "&"),
            topKeys: await keys, topOwners: await owners)
    }

    /// The keys and owners that spent most, by name (their id when the name cannot be read).
    func leaders(_ leaders: [Lumen_Ledger_V1_UsageSeriesLeader], metadata: Metadata) async -> [UsageChartView.Leader] {
        await withTaskGroup(of: (Int, String, String, String?).self) { group in
            for (index, leader) in leaders.enumerated() {
                group.addTask {
                    let (name, detail, url) = await describe(leader.principal, metadata: metadata)
                    return (index, name, detail, url)
                }
            }
            var named = [(String, String, String?)](repeating: ("", "", nil), count: leaders.count)
            for await (index, name, detail, url) in group { named[index] = (name, detail, url) }
            return zip(leaders, named).map { leader, named in
                UsageChartView.Leader(
                    name: named.0, detail: named.1, url: named.2, requests: "\(leader.sums.requests)", tokens: "\(leader.sums.tokens)",
                    coins: UsageChartView.decimal(coins.amount(micros: leader.sums.costMicros)))
            }
        }
    }

    /// A principal's name, what it is, and its page if it has one.
    func describe(_ principal: Lumen_Common_V1_PrincipalRef, metadata: Metadata) async -> (String, String, String?) {
        do {
            switch principal.type {
            case .key:
                let key = try await services.keys.getKey(.with { $0.keyID = principal.id }, metadata: metadata).key
                return (key.name.isEmpty ? principal.id : key.name, principal.id, nil)
            case .user:
                let user = try await services.accounts.getUser(.with { $0.userID = principal.id }, metadata: metadata).user
                return (user.displayName.isEmpty ? user.email : user.displayName, user.email, nil)
            case .client:
                let client = try await services.accounts.getClient(.with { $0.clientID = principal.id }, metadata: metadata).client
                return (client.name, "Client", "/clients/\(PathSegment.encode(principal.id))")
            default:
                return ("Unknown owner", "its keys' lines were deleted before owners were recorded", nil)
            }
        } catch {
            return (principal.id, principal.type.publicName, nil)
        }
    }
}
