import Foundation
import GRPCCore
import Hummingbird
import LumenAPI
import SharedRules
import WireFormats

/// An organisation's audit log as one list: the entries of the four services that keep one
/// (accounts, keys, ledger, registry), each service's filtered newest first, merged by time.
/// The services decide who may read what (an organisation's administrators their own); this
/// only reads them together, for the management API and the dashboard's `/audit`.
public struct AuditLogReader: Sendable {
    let accounts: any Lumen_Accounts_V1_AccountsService.ClientProtocol
    let keys: any Lumen_Keys_V1_KeysService.ClientProtocol
    let ledger: any Lumen_Ledger_V1_LedgerService.ClientProtocol
    let registry: any Lumen_Registry_V1_ModelRegistryService.ClientProtocol

    public init(
        accounts: any Lumen_Accounts_V1_AccountsService.ClientProtocol, keys: any Lumen_Keys_V1_KeysService.ClientProtocol,
        ledger: any Lumen_Ledger_V1_LedgerService.ClientProtocol, registry: any Lumen_Registry_V1_ModelRegistryService.ClientProtocol
    ) {
        self.accounts = accounts
        self.keys = keys
        self.ledger = ledger
        self.registry = registry
    }

    /// How deep a page may reach (page × limit): deeper pages are found by narrowing the time.
    public static let maxDepth = 10_000

    /// The query parameters a listing takes.
    public static let parameters: Set<String> = [
        "page", "limit", "actorType", "actorId", "action", "targetType", "targetId", "startDate", "endDate",
    ]

    /// A listing's filters and page, read from query `values` (400 naming the parameter at fault).
    public struct Query: Sendable {
        public var filter = Lumen_Common_V1_ListAuditLogRequest()
        public var page = 1
        public var limit = 50

        /// `values` by name; an empty one is no filter (a form's blank field).
        public init(_ values: [String: String]) throws(APIError) {
            let values = values.filter { !$0.value.isEmpty }
            page = try RequestRules.page(values) ?? 1
            limit = try RequestRules.limit(values, max: 100) ?? 50
            guard page * limit <= AuditLogReader.maxDepth else {
                throw APIError.invalid(
                    "invalid_page", "a page reaches at most \(AuditLogReader.maxDepth) entries deep; narrow it with startDate and endDate",
                    param: "page")
            }
            for (name, value) in values where value.utf8.count > 320 {
                throw APIError.invalid("invalid_\(name)", "\(name) is at most 320 characters", param: name)
            }
            filter.actorType = values["actorType"] ?? ""
            filter.actorID = values["actorId"] ?? ""
            filter.action = values["action"] ?? ""
            filter.targetType = values["targetType"] ?? ""
            filter.targetID = values["targetId"] ?? ""
            let (start, end) = try RequestRules.dateRange(values)
            if let start { filter.startTime = .init(millis: start) }
            if let end { filter.endTime = .init(millis: end) }
        }
    }

    /// One page of the merged log, newest first (ties: by service, then newest in the service).
    public func page(_ query: Query, metadata: Metadata) async throws -> AuditLogPage {
        let depth = query.page * query.limit
        var entries: [AuditEntryObject] = []
        var total: Int64 = 0
        for (service, list) in sources {
            var offset = 0
            while offset < depth {
                var request = query.filter
                request.newestFirst = true
                request.offset = Int32(offset)
                request.limit = Int32(min(1_000, depth - offset))
                let response = try await list(request, metadata)
                if offset == 0 { total += response.total }
                entries += response.entries.map { AuditEntryObject(service: service, $0) }
                offset += response.entries.count
                if !response.hasMore_p || response.entries.isEmpty { break }
            }
        }
        entries.sort { ($0.millis, $1.service, $0.sequence) > ($1.millis, $0.service, $1.sequence) }
        let start = min(entries.count, (query.page - 1) * query.limit)
        return AuditLogPage(
            data: Array(entries[start..<min(entries.count, start + query.limit)]), page: query.page, limit: query.limit, total: total,
            hasMore: Int64(query.page * query.limit) < total)
    }

    private typealias List = @Sendable (Lumen_Common_V1_ListAuditLogRequest, Metadata) async throws -> Lumen_Common_V1_ListAuditLogResponse

    /// The services in the order ties are broken.
    private var sources: [(String, List)] {
        [
            ("accounts", { [accounts] in try await accounts.listAuditLog($0, metadata: $1) }),
            ("keys", { [keys] in try await keys.listAuditLog($0, metadata: $1) }),
            ("ledger", { [ledger] in try await ledger.listAuditLog($0, metadata: $1) }),
            ("registry", { [registry] in try await registry.listAuditLog($0, metadata: $1) }),
        ]
    }
}

/// A page of the audit log: `{"object": "list", "data", "page", "limit", "total", "has_more"}`,
/// as the usage endpoint pages.
public struct AuditLogPage: Encodable, Sendable {
    var object = "list"
    public var data: [AuditEntryObject]
    public var page: Int
    public var limit: Int
    public var total: Int64
    public var hasMore: Bool

    enum CodingKeys: String, CodingKey {
        case object, data, page, limit, total
        case hasMore = "has_more"
    }
}

/// One entry as the management API shows it: its service and place in that service's chain,
/// the time in RFC 3339, the values before and after as JSON (null when there is none).
public struct AuditEntryObject: Encodable, Sendable {
    public struct Party: Encodable, Sendable {
        public var type: String
        public var id: String
    }

    public var service: String
    public var sequence: Int64
    public var time: String
    public var organizationID: String
    public var actor: Party
    public var action: String
    public var target: Party
    public var before: JSONValue
    public var after: JSONValue
    public var requestID: String?
    public var clientAddress: String?
    public var hash: String
    /// The time in milliseconds, for ordering; not shown.
    public var millis: Int64

    enum CodingKeys: String, CodingKey {
        case service, sequence, time, actor, action, target, before, after, hash
        case organizationID = "organization_id"
        case requestID = "request_id"
        case clientAddress = "client_address"
    }

    init(service: String, _ entry: Lumen_Common_V1_AuditEntry) {
        self.service = service
        sequence = entry.sequence
        millis = entry.time.millis
        time = RFC3339.format(millis: millis)
        organizationID = entry.organizationID
        actor = Party(type: entry.actorType, id: entry.actorID)
        action = entry.action
        target = Party(type: entry.targetType, id: entry.targetID)
        before = Self.value(entry.beforeJson)
        after = Self.value(entry.afterJson)
        requestID = entry.requestID.isEmpty ? nil : entry.requestID
        clientAddress = entry.clientAddress.isEmpty ? nil : entry.clientAddress
        hash = entry.hash
    }

    /// Every member, null ones too (`request_id`, `client_address`).
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(service, forKey: .service)
        try container.encode(sequence, forKey: .sequence)
        try container.encode(time, forKey: .time)
        try container.encode(organizationID, forKey: .organizationID)
        try container.encode(actor, forKey: .actor)
        try container.encode(action, forKey: .action)
        try container.encode(target, forKey: .target)
        try container.encode(before, forKey: .before)
        try container.encode(after, forKey: .after)
        try container.encode(requestID, forKey: .requestID)
        try container.encode(clientAddress, forKey: .clientAddress)
        try container.encode(hash, forKey: .hash)
    }

    static func value(_ json: String) -> JSONValue {
        guard !json.isEmpty else { return .null }
        return (try? JSONDecoder().decode(JSONValue.self, from: Data(json.utf8))) ?? .string(json)
    }
}

/// `GET /v1/management/audit-log`: the organisation's audit log (`AuditLogReader`), for its
/// management tokens.
struct AuditLogController<Context: RequestContext>: Sendable {
    let reader: AuditLogReader

    func addRoutes(to group: RouterGroup<Context>) {
        group.get("audit-log", use: list)
    }

    @Sendable func list(_ request: Request, context: Context) async throws -> JSONResponse<AuditLogPage> {
        let metadata = try ManagementAuth.metadata(request)
        try RequestRules.checkEncoding(request.uri.query)
        let query = try AuditLogReader.Query(try RequestRules.query(request.uri.queryParameters, known: AuditLogReader.parameters))
        return try await APIError.translating {
            JSONResponse(try await reader.page(query, metadata: metadata))
        }
    }
}
