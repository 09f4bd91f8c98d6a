import Foundation
import GRPCCore
import HTTPTypes
import Hummingbird
import LumenAPI
import NIOCore
import SharedRules

/// Usage over time (the ledger's `GetUsageSeries`) as the management API and the dashboard ask
/// for it: the query parameters `days`, `userId` or `clientId`, `logicalModel`, `top` and
/// `format`, and the answer as JSON or CSV. The ledger decides who may see what.
public enum UsageOverTime {
    /// The query parameters a request takes.
    public static let parameters: Set<String> = ["days", "userId", "clientId", "logicalModel", "top", "format"]

    /// The ledger's field names as the query parameters name them (an owner: whichever was given).
    static func params(_ request: Lumen_Ledger_V1_GetUsageSeriesRequest) -> [String: String] {
        ["days": "days", "top": "top", "logical_model": "logicalModel", "owner": request.owner.type == .client ? "clientId" : "userId"]
    }

    /// A request read from query `values` (400 naming the parameter at fault).
    public struct Query: Sendable {
        public var request = Lumen_Ledger_V1_GetUsageSeriesRequest()
        /// `csv` rather than JSON.
        public var csv = false

        /// `values` by name; an empty one is not given (a form's blank field). `top` defaults to 10.
        public init(_ values: [String: String]) throws(APIError) {
            let values = values.filter { !$0.value.isEmpty }
            request.days = try RequestRules.number(values, "days", in: 1...366, code: "invalid_days") ?? 30
            request.top = try RequestRules.number(values, "top", in: 0...100, code: "invalid_top") ?? 10
            if let owner = try RequestRules.owner(values) { request.owner = owner }
            if let model = values["logicalModel"] { request.logicalModel = model }
            switch values["format"] ?? "json" {
            case "json": csv = false
            case "csv": csv = true
            default: throw APIError.invalid("invalid_format", "format must be json or csv", param: "format")
            }
        }
    }

    /// The ledger's answer to `query`, its refusals translated (parameters named as the query names them).
    public static func fetch(
        _ query: Query, ledger: any Lumen_Ledger_V1_LedgerService.ClientProtocol, metadata: Metadata
    ) async throws -> Lumen_Ledger_V1_GetUsageSeriesResponse {
        try await APIError.translating(params: params(query.request)) {
            try await ledger.getUsageSeries(query.request, metadata: metadata)
        }
    }

    /// The days and models as CSV (RFC 4180, a header row, days oldest first): tokens, requests
    /// and the cost in USD — and in coins when `coins` is given (the dashboard's unit).
    public static func csv(_ response: Lumen_Ledger_V1_GetUsageSeriesResponse, coins: Coins? = nil) -> String {
        var text = "date,logical_model,requests,input_tokens,cached_input_tokens,cache_write_tokens,output_tokens,cost_usd"
        text += coins == nil ? "\r\n" : ",coins\r\n"
        for point in response.points {
            let sums = point.sums
            let figures = [sums.requests, sums.inputTokens, sums.cachedInputTokens, sums.cacheWriteTokens, sums.outputTokens].map(String.init)
            var fields = [point.day, field(point.logicalModel)] + figures + ["\(USD.amount(sums.costMicros))"]
            if let coins { fields.append("\(coins.amount(micros: sums.costMicros))") }
            text += fields.joined(separator: ",") + "\r\n"
        }
        return text
    }

    /// A CSV field: quoted when it holds a comma, a quote or a line break; a leading `=`, `+`, `-`
    /// or `@` is prefixed with `'` so a spreadsheet does not read a model's name as a formula.
    static func field(_ value: String) -> String {
        var value = value
        if let first = value.first, "=+-@\t\r".contains(first) { value = "'" + value }
        guard value.contains(where: { ",\"\r\n".contains($0) }) else { return value }
        return "\"" + value.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }

    /// A CSV download named after the window.
    public static func csvResponse(_ response: Lumen_Ledger_V1_GetUsageSeriesResponse, coins: Coins? = nil) -> Response {
        Response(
            status: .ok,
            headers: [
                .contentType: "text/csv; charset=utf-8",
                .contentDisposition: "attachment; filename=\"lumen-usage-\(response.startDay)-\(response.endDay).csv\"",
                .cacheControl: "no-store",
            ],
            body: .init(byteBuffer: ByteBuffer(string: csv(response, coins: coins))))
    }
}

/// Usage over time as the management API shows it: money in USD (`cost`), and in coins too
/// (`coins`) where the dashboard's `/api` shows it.
public struct UsageSeriesObject: Encodable, Sendable {
    var object = "usage_series"
    var startDate: String
    var endDate: String
    var data: [Point]
    var total: Sums
    var topKeys: [Leader]
    var topOwners: [Leader]

    struct Sums: Encodable, Sendable {
        var requests: Int64
        var inputTokens: Int64
        var cachedInputTokens: Int64
        var cacheWriteTokens: Int64
        var outputTokens: Int64
        var cost: Decimal
        var coins: Decimal?

        init(_ sums: Lumen_Ledger_V1_UsageSums, coins: Coins?) {
            requests = sums.requests
            inputTokens = sums.inputTokens
            cachedInputTokens = sums.cachedInputTokens
            cacheWriteTokens = sums.cacheWriteTokens
            outputTokens = sums.outputTokens
            cost = USD.amount(sums.costMicros)
            self.coins = coins?.amount(micros: sums.costMicros)
        }

        enum CodingKeys: String, CodingKey {
            case requests, cost, coins
            case inputTokens = "input_tokens"
            case cachedInputTokens = "cached_input_tokens"
            case cacheWriteTokens = "cache_write_tokens"
            case outputTokens = "output_tokens"
        }
    }

    /// One model's usage on one day.
    struct Point: Encodable, Sendable {
        var date: String
        var logicalModel: String
        var sums: Sums

        enum CodingKeys: String, CodingKey {
            case date
            case logicalModel = "logical_model"
        }

        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(date, forKey: .date)
            try container.encode(logicalModel, forKey: .logicalModel)
            try sums.encode(to: encoder)
        }
    }

    /// A key (`type` key) or an owner (`user`, `client`; `unknown` when retention removed
    /// every line of its keys before owners were recorded).
    struct Leader: Encodable, Sendable {
        var type: String
        var id: String
        var sums: Sums

        enum CodingKeys: String, CodingKey { case type, id }

        init(_ leader: Lumen_Ledger_V1_UsageSeriesLeader, coins: Coins?) {
            type = leader.principal.type == .unspecified ? "unknown" : leader.principal.type.publicName
            id = leader.principal.id
            sums = Sums(leader.sums, coins: coins)
        }

        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(type, forKey: .type)
            try container.encode(id, forKey: .id)
            try sums.encode(to: encoder)
        }
    }

    enum CodingKeys: String, CodingKey {
        case object, data, total
        case startDate = "start_date"
        case endDate = "end_date"
        case topKeys = "top_keys"
        case topOwners = "top_owners"
    }

    public init(_ response: Lumen_Ledger_V1_GetUsageSeriesResponse, coins: Coins? = nil) {
        startDate = response.startDay
        endDate = response.endDay
        data = response.points.map { Point(date: $0.day, logicalModel: $0.logicalModel, sums: Sums($0.sums, coins: coins)) }
        total = Sums(response.total, coins: coins)
        topKeys = response.topKeys.map { Leader($0, coins: coins) }
        topOwners = response.topOwners.map { Leader($0, coins: coins) }
    }
}

/// `GET /v1/management/usage`: the organisation's usage over time, or one user's or client's,
/// optionally of one model, as JSON or CSV (`format=csv`).
struct UsageOverTimeController<Context: RequestContext>: Sendable {
    let ledger: any Lumen_Ledger_V1_LedgerService.ClientProtocol

    func addRoutes(to group: RouterGroup<Context>) {
        group.get("usage", use: usage)
    }

    @Sendable func usage(_ request: Request, context: Context) async throws -> Response {
        let metadata = try ManagementAuth.metadata(request)
        try RequestRules.checkEncoding(request.uri.query)
        let query = try UsageOverTime.Query(try RequestRules.query(request.uri.queryParameters, known: UsageOverTime.parameters))
        let response = try await UsageOverTime.fetch(query, ledger: ledger, metadata: metadata)
        if query.csv { return UsageOverTime.csvResponse(response) }
        return try JSONResponse(UsageSeriesObject(response)).response(from: request, context: context)
    }
}
