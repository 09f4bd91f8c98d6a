import Foundation
import Gateway
import WireFormats
import LumenAPI
import RPCSupport
import SharedRules

// What the templates in gateway/dashboard/templates read. Every figure comes from the objects
// `/api` answers with (ProfileObject, KeyObject, ModelRow…), only formatted here, so a page
// and the API never disagree.

/// How the pages write numbers: thousands separators, coins exactly (no rounding).
enum Figures {
    static func count(_ value: Int64) -> String {
        grouped(String(value.magnitude), negative: value < 0)
    }

    static func coins(_ value: Decimal) -> String {
        let text = value.description
        let negative = text.hasPrefix("-")
        let digits = negative ? String(text.dropFirst()) : text
        let parts = digits.split(separator: ".", maxSplits: 1)
        let whole = grouped(String(parts.first ?? "0"), negative: negative)
        return parts.count == 2 ? whole + "." + parts[1] : whole
    }

    private static func grouped(_ digits: String, negative: Bool) -> String {
        var out = ""
        for (index, digit) in digits.enumerated() {
            if index > 0, (digits.count - index) % 3 == 0 { out.append(",") }
            out.append(digit)
        }
        return (negative ? "-" : "") + out
    }
}

/// The frame around every page: who is signed in and where they are.
@TemplateView
struct LayoutView {
    var signedIn: Bool
    var name: String
    var isAdmin: Bool
    var csrfToken: String
    var version: String
    var onProfile = false
    var onClients = false
    var onChat = false
    var onUsers = false
    var onAudit = false
    var onUsage = false
    var onActivity = false

    static func signedOut(version: String) -> LayoutView {
        LayoutView(signedIn: false, name: "", isAdmin: false, csrfToken: "", version: version)
    }
}

@TemplateView
struct LoginPage {
    /// An organisation's "Sign in with …".
    @TemplateView
    struct Provider {
        var label: String
        var organization: String
        var url: String
    }

    var layout: LayoutView
    var message: String?
    var email: String
    var next: String
    var notice: String? = nil
    /// The form's sign-in token (`SignInGuard`), set when the page is rendered.
    var token = ""
    /// Each organisation's single sign-on, set when the page is rendered.
    var providers: [Provider] = []
    var hasProviders = false
}

@TemplateView
struct InvitePage {
    var layout: LayoutView
    var message: String?
    var token: String
}

@TemplateView
struct ErrorPage {
    var layout: LayoutView
    var heading: String
    var message: String
}

/// A coin pool as the tiles and cards show it (seed 001: a number, Unlimited, — or exhausted).
@TemplateView
struct PoolView {
    /// The tiles' titles: seed 001 says "Coins Available" and "Refill Rate", seed 000 "Coin
    /// Pool" and "Coin Refill".
    var title: String
    var refillTitle: String
    var text: String
    var exhausted: Bool
    var hasLimit: Bool
    var limit: String
    var percent: Int
    var refill: String
    var nextRefillAt: String?

    init(_ pool: PoolObject, title: String = "Coins Available", refillTitle: String = "Refill Rate") {
        self.title = title
        self.refillTitle = refillTitle
        switch pool.state {
        case "unlimited": text = "Unlimited"
        case "balance": text = Figures.coins(pool.balance ?? 0)
        default: text = "—"
        }
        exhausted = pool.exhausted
        hasLimit = pool.limit != nil && (pool.limit ?? 0) > 0
        limit = pool.limit.map(Figures.coins) ?? ""
        if let limit = pool.limit, limit > 0, let balance = pool.balance {
            let ratio = NSDecimalNumber(decimal: balance / limit * 100).doubleValue
            percent = Int(max(0, min(100, ratio)).rounded(.down))
        } else {
            percent = 0
        }
        refill = pool.refillPerHour > 0 ? "\(Figures.coins(pool.refillPerHour)) / hour" : "—"
        nextRefillAt = pool.refillPerHour > 0 ? pool.nextRefillAt : nil
    }
}

@TemplateView
struct ProfileView {
    var name: String
    var email: String
    /// The email in parts a line may break between: before the `@` and before each dot.
    var emailParts: [String]
    var avatarURL: String?
    var initials: String
    var groups: [String]
    var coinsUsed: String
    var tokensUsed: String
    var favoriteModel: String
    var pool: PoolView
    var webChat: WebChatView

    init(_ profile: ProfileObject) {
        name = profile.user.displayName
        email = profile.user.email
        emailParts = Self.breakable(profile.user.email)
        avatarURL = profile.avatarURL
        initials = String(profile.user.displayName.split(separator: " ").prefix(2).compactMap(\.first)).uppercased()
        groups = profile.groups.map(\.name)
        coinsUsed = Figures.coins(profile.coinsUsed)
        tokensUsed = Figures.count(profile.tokensUsed)
        favoriteModel = profile.favoriteModel ?? "—"
        pool = PoolView(profile.pool)
        webChat = WebChatView(profile.webChat)
    }

    /// `admin@demo.lumen.invalid` → `admin`, `@demo`, `.lumen`, `.invalid`.
    static func breakable(_ email: String) -> [String] {
        var parts: [String] = []
        var part = ""
        for character in email {
            if (character == "@" || character == ".") && !part.isEmpty {
                parts.append(part)
                part = ""
            }
            part.append(character)
        }
        if !part.isEmpty { parts.append(part) }
        return parts
    }
}

@TemplateView
struct WebChatView {
    var conversations: String
    var requests: String
    var tokens: String
    var coins: String
    var lastUsedAt: String?

    init(_ row: WebChatObject) {
        conversations = Figures.count(row.conversations)
        requests = Figures.count(row.requests)
        tokens = Figures.count(row.tokens)
        coins = Figures.coins(row.coins)
        lastUsedAt = row.lastUsedAt
    }
}

/// Requests, tokens, coins and last use, as the key and model tables show them (the
/// `usage-cells` partial): formatted for people, raw for sorting.
@TemplateView
struct UsageCells {
    var requests: String
    var requestsValue: Int64
    var tokens: String
    var tokensValue: Int64
    var coins: String
    var costValue: Int64
    var lastUsedAt: String?
    var lastUsedValue: Int64

    init(requests: Int64, tokens: Int64, coins: Decimal, costMicros: Int64, lastUsedAt: String?, lastUsedMillis: Int64) {
        self.requests = Figures.count(requests)
        requestsValue = requests
        self.tokens = Figures.count(tokens)
        tokensValue = tokens
        self.coins = Figures.coins(coins)
        costValue = costMicros
        self.lastUsedAt = lastUsedAt
        lastUsedValue = lastUsedMillis
    }
}

/// Seed 001's API-key table (a person's or a client's), one page of it: sorting, search,
/// "Show deleted keys" and paging are links and a form to the page itself (`sort`, `order`,
/// `query`, `show_deleted`, `page`), so the server renders only the rows shown.
@TemplateView
struct KeyTableView {
    @TemplateView
    struct Column {
        var label: String
        /// The link that sorts by this column (nil: not sortable).
        var href: String?
        /// `ascending` or `descending` on the column the table is sorted by.
        var ariaSort: String?
    }

    @TemplateView
    struct Pager {
        var summary: String
        var previous: String?
        var next: String?
    }

    /// Rows a page shows.
    static let pageSize = 50

    /// Where new keys are made (`POST`), and under which each key is (`PATCH`, `DELETE`).
    var createURL: String
    var canCreate: Bool
    /// The page the table is on (`/profile`, `/clients/<id>`): its links and form go there.
    var action: String
    var columns: [Column]
    var rows: [KeyRowView]
    /// Stored, not computed: templates see stored properties only.
    var hasRows: Bool
    var empty: String?
    var query: String?
    var showDeleted: Bool
    var sort: String
    var order: String
    var pager: Pager?

    /// `everything`: how many keys the owner has, revoked ones included (asked only when the
    /// page is empty, to say why).
    init(_ page: KeysController.Page, query: ListQuery, everything: Int?, base: String, action: String, canCreate: Bool = true) {
        createURL = base
        self.canCreate = canCreate
        self.action = action
        self.query = query.text
        showDeleted = query.showDeleted
        sort = query.sort
        order = query.descending ? "desc" : "asc"
        rows = page.keys.map { KeyRowView($0, base: base) }
        hasRows = !rows.isEmpty
        func link(sort: String, descending: Bool, page: Int) -> String {
            var items = [URLQueryItem(name: "sort", value: sort), URLQueryItem(name: "order", value: descending ? "desc" : "asc")]
            if let text = query.text { items.append(URLQueryItem(name: "query", value: text)) }
            if query.showDeleted { items.append(URLQueryItem(name: "show_deleted", value: "true")) }
            if page > 1 { items.append(URLQueryItem(name: "page", value: String(page))) }
            var components = URLComponents()
            components.path = action
            components.queryItems = items
            // `+` is a space to a form decoder: spell it out.
            return (components.string ?? action).replacingOccurrences(of: "+", with: "%2B") + "#keys"
        }
        columns = [("Name", "name"), ("Hint", nil), ("Requests", "requests"), ("Tokens", "tokens"), ("Coins", "cost"), ("Last Used", "last_used")]
            .map { label, key in
                guard let key else { return Column(label: label) }
                let current = key == query.sort
                // A second click turns the order round; numbers start with the largest.
                let descending = current ? !query.descending : key != "name"
                return Column(
                    label: label, href: link(sort: key, descending: descending, page: 1),
                    ariaSort: current ? (query.descending ? "descending" : "ascending") : nil)
            }
        if page.total > Self.pageSize || page.offset > 0 {
            let first = min(page.offset + 1, page.total)
            let last = page.offset + page.keys.count
            pager = Pager(
                summary: "Keys \(Figures.count(Int64(first)))–\(Figures.count(Int64(last))) of \(Figures.count(Int64(page.total)))",
                previous: query.page > 1 ? link(sort: query.sort, descending: query.descending, page: query.page - 1) : nil,
                next: page.offset + page.keys.count < page.total ? link(sort: query.sort, descending: query.descending, page: query.page + 1) : nil)
        }
        if !hasRows {
            if page.total > 0 {
                empty = "No keys on this page — go back to the first one."
            } else if let text = query.text {
                empty = "No keys match “\(text)”."
            } else if !query.showDeleted, (everything ?? 0) > 0 {
                empty = "No active keys — tick “Show deleted keys” to see the revoked ones."
            } else {
                empty = "No API keys yet — create one with “+ New API Key”."
            }
        }
    }
}

@TemplateView
struct KeyRowView {
    var id: String
    var name: String
    var label: String
    var hint: String
    var usage: UsageCells
    var revoked: Bool
    var url: String

    init(_ key: KeyObject, base: String) {
        id = key.id
        name = key.name
        label = key.name.isEmpty ? "Untitled key" : key.name
        hint = key.hint
        usage = UsageCells(
            requests: key.requests, tokens: key.tokens, coins: key.coins, costMicros: key.costMicros, lastUsedAt: key.lastUsedAt,
            lastUsedMillis: key.lastUsedMillis)
        revoked = key.status == "revoked"
        url = base + "/" + PathSegment.encode(key.id)
    }
}

/// Seed 001's model access table.
@TemplateView
struct ModelTableView {
    var rows: [ModelRowView]
    var forClient: Bool
    var hasRows: Bool

    init(_ models: [ModelRow], consentBase: String, forClient: Bool) {
        self.forClient = forClient
        rows = models.sorted { $0.model.lowercased() < $1.model.lowercased() }.map { ModelRowView($0, consentBase: consentBase) }
        hasRows = !rows.isEmpty
    }
}

@TemplateView
struct ModelRowView {
    var model: String
    var link: String
    var usage: UsageCells
    var access: String
    var accessLabel: String
    var accessClass: String
    var needsConsent: Bool
    var consentURL: String
    var status: String
    var statusClass: String
    var disabled: Bool

    init(_ row: ModelRow, consentBase: String) {
        model = row.model
        link = "/models/" + PathSegment.encode(row.model)
        usage = UsageCells(
            requests: row.requests, tokens: row.tokens, coins: row.coins, costMicros: row.costMicros, lastUsedAt: row.lastUsedAt,
            lastUsedMillis: row.lastUsedMillis)
        access = row.access
        (accessLabel, accessClass) = Self.badge(access: row.access)
        needsConsent = row.access == "needs_consent"
        consentURL = consentBase + "/" + PathSegment.encode(row.model) + "/consent"
        status = row.status
        statusClass = Self.badge(status: row.status)
        disabled = row.status == "disabled"
    }

    /// Seed 001's access badges: label and colour.
    static func badge(access: String) -> (String, String) {
        switch access {
        case "allowed": ("Allowed", "green")
        case "consented": ("Consented", "green")
        case "needs_consent": ("Need Consent", "warning")
        default: ("Blocked", "red")
        }
    }

    /// Seed 001's status colours.
    static func badge(status: String) -> String {
        switch status {
        case "ok": "green"
        case "degraded": "yellow"
        case "down": "red"
        default: "gray"
        }
    }
}

@TemplateView
struct ProfilePage {
    var layout: LayoutView
    var profile: ProfileView
    var keys: KeyTableView
    var models: ModelTableView
    var usage: UsageChartView
}

/// `/usage`: the organisation's usage over time (administrators).
@TemplateView
struct UsagePage {
    var layout: LayoutView
    var usage: UsageChartView
    var alerts: AlertsView
}

/// One path segment, percent-encoded (ids and model names in links).
enum PathSegment {
    static let allowed = CharacterSet(charactersIn: "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")

    static func encode(_ text: String) -> String {
        text.addingPercentEncoding(withAllowedCharacters: allowed) ?? text
    }
}

/// `/clients`: the clients the person may see.
@TemplateView
struct ClientsPage {
    @TemplateView
    struct Row {
        var name: String
        var description: String
        var link: String
        var managers: Int
        var status: String
        var statusClass: String
    }

    var layout: LayoutView
    var isAdmin: Bool
    var rows: [Row]
    var hasRows: Bool

    init(layout: LayoutView, clients: [ClientObject]) {
        self.layout = layout
        isAdmin = layout.isAdmin
        rows = clients.sorted { $0.name.lowercased() < $1.name.lowercased() }.map {
            Row(
                name: $0.name, description: $0.description, link: "/clients/" + PathSegment.encode($0.id),
                managers: $0.managerIDs.count, status: $0.active ? "active" : "inactive", statusClass: $0.active ? "green" : "gray")
        }
        hasRows = !rows.isEmpty
    }
}

/// `/clients/<id>`: seed 000's client detail.
@TemplateView
struct ClientPage {
    @TemplateView
    struct Client {
        var id: String
        var name: String
        var description: String?
        var active: Bool
        var status: String
        var statusClass: String
        var url: String
    }

    @TemplateView
    struct Manager {
        var id: String
        var name: String
        var email: String
        var removeURL: String
    }

    var layout: LayoutView
    var isAdmin: Bool
    var client: Client
    var tokens: String
    var coinsSpent: String
    var pool: PoolView
    var managers: [Manager]
    var hasManagers: Bool
    var managersURL: String
    var keys: KeyTableView
    var models: ModelTableView
    var usage: UsageChartView

    init(layout: LayoutView, detail: ClientDetailObject, keys: KeyTableView, models: [ModelRow], usage: UsageChartView) {
        self.layout = layout
        self.usage = usage
        isAdmin = layout.isAdmin
        let base = "/api/clients/" + PathSegment.encode(detail.client.id)
        client = Client(
            id: detail.client.id, name: detail.client.name,
            description: detail.client.description.isEmpty ? nil : detail.client.description, active: detail.client.active,
            status: detail.client.active ? "active" : "inactive", statusClass: detail.client.active ? "green" : "gray", url: base)
        tokens = Figures.count(detail.usage.tokens)
        coinsSpent = Figures.coins(detail.usage.coinsSpent)
        pool = PoolView(detail.pool, title: "Coin Pool", refillTitle: "Coin Refill")
        managersURL = base + "/managers"
        managers = detail.managers.map {
            Manager(id: $0.id, name: $0.displayName, email: $0.email, removeURL: base + "/managers/" + PathSegment.encode($0.id))
        }
        hasManagers = !managers.isEmpty
        self.keys = keys
        self.models = ModelTableView(models, consentBase: base + "/models", forClient: true)
    }
}

/// `/models/<name>`: what the model is, what it costs, who serves it, and the person's access.
@TemplateView
struct ModelPage {
    @TemplateView
    struct Model {
        var name: String
        var vendor: String
        var description: String?
        var scenes: [String]
        var status: String
        var statusClass: String
        var accessLabel: String
        var accessClass: String
        var needsConsent: Bool
        var consentURL: String
        var prices: [Price]
        var backends: [Backend]
        var hasBackends: Bool
    }

    @TemplateView
    struct Price {
        var label: String
        var coins: String
        var usd: String
    }

    @TemplateView
    struct Backend {
        var id: String
        var provider: String
        var health: String
        var healthClass: String
    }

    var layout: LayoutView
    var model: Model
    var usage: UsageChartView

    init(layout: LayoutView, detail: ModelDetail, usage: UsageChartView) {
        self.layout = layout
        self.usage = usage
        let (label, colour) = ModelRowView.badge(access: detail.access)
        let charges = [
            ("input", "Input, per million tokens"), ("cached_input", "Cached input, per million tokens"),
            ("cache_write", "Cache writes, per million tokens"), ("output", "Output, per million tokens"),
            ("request", "Per request"),
        ]
        model = Model(
            name: detail.name, vendor: detail.vendor, description: detail.description.isEmpty ? nil : detail.description,
            scenes: detail.scenes, status: detail.status, statusClass: ModelRowView.badge(status: detail.status), accessLabel: label,
            accessClass: colour, needsConsent: detail.access == "needs_consent",
            consentURL: "/api/me/models/" + PathSegment.encode(detail.name) + "/consent",
            prices: charges.compactMap { key, label in
                detail.prices[key].map { Price(label: label, coins: Figures.coins($0.coins), usd: Figures.coins($0.usd)) }
            },
            backends: detail.backends.map {
                Backend(
                    id: $0.id, provider: Lumen_Registry_V1_ProviderKind.byPublicName[$0.provider]?.displayName ?? $0.provider, health: $0.health,
                    healthClass: $0.health == "healthy" ? "green" : $0.health == "unhealthy" ? "red" : "gray")
            },
            hasBackends: !detail.backends.isEmpty)
    }
}

/// `/users` (administrators): people, their groups, role and status.
@TemplateView
struct UsersPage {
    @TemplateView
    struct Row {
        var id: String
        var name: String
        var email: String
        var groups: [String]
        var groupIDs: String
        var isAdmin: Bool
        var active: Bool
        var status: String
        var statusClass: String
        var url: String
    }

    @TemplateView
    struct GroupOption {
        var id: String
        var name: String
    }

    var layout: LayoutView
    var query: String?
    var rows: [Row]
    var hasRows: Bool
    var total: String
    var shown: String
    var more: Bool
    var groupOptions: [GroupOption]
    var hasGroups: Bool

    init(layout: LayoutView, query: String, users: [UserObject], total: Int64, groups: [GroupObject]) {
        self.layout = layout
        self.query = query.isEmpty ? nil : query
        let names = Dictionary(groups.map { ($0.id, $0.name) }, uniquingKeysWith: { first, _ in first })
        rows = users.map {
            Row(
                id: $0.id, name: $0.displayName, email: $0.email, groups: $0.groupIDs.map { names[$0] ?? $0 },
                groupIDs: $0.groupIDs.joined(separator: " "), isAdmin: $0.isAdmin, active: $0.active,
                status: $0.active ? "active" : "inactive", statusClass: $0.active ? "green" : "gray",
                url: "/api/users/" + PathSegment.encode($0.id))
        }
        hasRows = !rows.isEmpty
        self.total = Figures.count(total)
        shown = Figures.count(Int64(rows.count))
        more = total > Int64(rows.count)
        groupOptions = groups.map { GroupOption(id: $0.id, name: $0.name) }
        hasGroups = !groups.isEmpty
    }
}

/// `/chat`: the person's conversations, the models they may talk to, and the open conversation.
@TemplateView
struct ChatPage {
    @TemplateView
    struct Item {
        var id: String
        var title: String
        var current: Bool
    }

    @TemplateView
    struct Option {
        var name: String
        var selected: Bool
    }

    @TemplateView
    struct Message {
        var role: String
        var content: String
    }

    var layout: LayoutView
    var conversationID: String
    var conversations: [Item]
    var hasConversations: Bool
    var models: [Option]
    var hasModels: Bool
    var messages: [Message]

    init(layout: LayoutView, conversations: [ConversationObject], open: ConversationDetail?, models: [ModelRow]) {
        self.layout = layout
        conversationID = open?.conversation.id ?? ""
        self.conversations = conversations.map { Item(id: $0.id, title: $0.title, current: $0.id == open?.conversation.id) }
        hasConversations = !conversations.isEmpty
        // The models the person may use now: allowed or consented, and turned on.
        let usable = models.filter { ($0.access == "allowed" || $0.access == "consented") && $0.status != "disabled" }
            .map(\.model).sorted { $0.lowercased() < $1.lowercased() }
        let preferred = open?.conversation.model
        var options = usable.map { Option(name: $0, selected: $0 == preferred) }
        if let preferred, !usable.contains(preferred) {
            options.insert(Option(name: preferred, selected: true), at: 0)  // still shown; sending says why not
        }
        self.models = options
        hasModels = !options.isEmpty
        messages = open?.messages.map { Message(role: $0.role, content: $0.content) } ?? []
    }
}

/// `/audit` (administrators): the organisation's audit log, newest first, filtered as the
/// management API's `GET /v1/management/audit-log` is, fifty entries a page.
@TemplateView
struct AuditPage {
    @TemplateView
    struct Row {
        var time: String
        var actor: String
        var actorType: String
        var action: String
        var target: String
        var before: String?
        var after: String?
        var hasValues: Bool
        var requestID: String?
        var clientAddress: String?
        var service: String
    }

    @TemplateView
    struct Filter {
        var name: String
        var label: String
        var value: String
        var placeholder: String
    }

    var layout: LayoutView
    var filters: [Filter]
    var rows: [Row]
    var hasRows: Bool
    var filtered: Bool
    var error: String?
    var total: String
    var page: String
    var previous: String?
    var next: String?

    static let filterFields: [(name: String, label: String, placeholder: String)] = [
        ("action", "Action", "key.revoke, or key. for all"), ("actorId", "Actor", "usr_…, key_…"),
        ("targetId", "Target", "key_…, usr_…, cli_…"), ("startDate", "From", "YYYY-MM-DD"), ("endDate", "To", "YYYY-MM-DD"),
    ]

    init(layout: LayoutView, values: [String: String], page: Int, result: Result<AuditLogPage, APIError>) {
        self.layout = layout
        filters = Self.filterFields.map { Filter(name: $0.name, label: $0.label, value: values[$0.name] ?? "", placeholder: $0.placeholder) }
        filtered = values.contains { $0.key != "page" && !$0.value.isEmpty }
        self.page = Figures.count(Int64(page))
        switch result {
        case .success(let listed):
            rows = listed.data.map { entry in
                let before = Self.text(entry.before)
                let after = Self.text(entry.after)
                return Row(
                    time: entry.time, actor: entry.actor.id, actorType: entry.actor.type,
                    action: entry.action, target: entry.target.type + " " + entry.target.id, before: before, after: after,
                    hasValues: before != nil || after != nil, requestID: entry.requestID, clientAddress: entry.clientAddress,
                    service: entry.service)
            }
            total = Figures.count(listed.total)
            error = nil
            func link(_ page: Int) -> String {
                var query = values.filter { $0.key != "page" && !$0.value.isEmpty }
                query["page"] = String(page)
                return "/audit?" + query.sorted { $0.key < $1.key }.map { "\($0.key)=\(PathSegment.encode($0.value))" }.joined(separator: "&")
            }
            previous = page > 1 ? link(page - 1) : nil
            next = listed.hasMore && page * listed.limit < AuditLogReader.maxDepth ? link(page + 1) : nil
        case .failure(let refusal):
            rows = []
            total = "0"
            error = refusal.message
            previous = nil
            next = nil
        }
        hasRows = !rows.isEmpty
    }

    /// A value before or after as compact JSON text, nil when there is none.
    static func text(_ value: JSONValue) -> String? {
        guard value != .null else { return nil }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return (try? encoder.encode(value)).map { String(decoding: $0, as: UTF8.self) }
    }
}

/// The Usage page's alerts (administrators): the organisation's webhooks and its latest alerts.
@TemplateView
struct AlertsView {
    @TemplateView
    struct Endpoint {
        var id: String
        var url: String
        var format: String
        var description: String
        var created: String
        var deleteURL: String
    }

    @TemplateView
    struct Delivery {
        var time: String
        var alertID: String
        var webhook: String
        var pool: String
        var threshold: String
        var balance: String
        var status: String
        var statusClass: String
        var attempts: String
        var detail: String?
    }

    var endpoints: [Endpoint]
    var hasEndpoints: Bool
    var deliveries: [Delivery]
    var hasDeliveries: Bool
    var totalDeliveries: String

    init(endpoints: [Lumen_Ledger_V1_AlertEndpoint], deliveries: Lumen_Ledger_V1_ListAlertDeliveriesResponse, coins: Coins) {
        self.endpoints = endpoints.map {
            Endpoint(
                id: $0.id, url: $0.url, format: $0.format == .slack ? "Slack" : "JSON", description: $0.description_p,
                created: RFC3339.format(millis: $0.createdAt.millis), deleteURL: "/api/alerts/endpoints/" + PathSegment.encode($0.id))
        }
        hasEndpoints = !endpoints.isEmpty
        let webhooks = Dictionary(endpoints.map { ($0.id, $0.description_p.isEmpty ? $0.url : $0.description_p) }, uniquingKeysWith: { first, _ in first })
        self.deliveries = deliveries.deliveries.map { delivery in
            let (status, colour) =
                switch delivery.status {
                case .delivered: ("delivered", "green")
                case .failed: ("failed", "red")
                default: ("pending", "yellow")
                }
            var detail: String?
            if !delivery.lastError.isEmpty { detail = delivery.lastError }
            if delivery.status == .pending, delivery.hasNextAttemptAt {
                detail = (detail.map { $0 + "; " } ?? "") + "next attempt " + RFC3339.format(millis: delivery.nextAttemptAt.millis)
            }
            return Delivery(
                time: RFC3339.format(millis: delivery.createdAt.millis), alertID: delivery.alertID,
                webhook: webhooks[delivery.endpointID] ?? delivery.endpointID,
                pool: delivery.owner.type.publicName + " " + delivery.owner.id, threshold: "\(delivery.thresholdPercent) %",
                balance: UsageChartView.decimal(coins.amount(micros: delivery.balanceMicros)), status: status, statusClass: colour,
                attempts: "\(delivery.attempts)", detail: detail)
        }
        hasDeliveries = !self.deliveries.isEmpty
        totalDeliveries = "\(deliveries.pageInfo.total)"
    }
}

/// `/activity`: the request log — every request the person may see (administrators: the
/// organisation's; managers: their clients' too; everyone: their own), newest first, filtered
/// as `GET /v1/management/requests` is, fifty a page.
@TemplateView
struct ActivityPage {
    @TemplateView
    struct Row {
        var time: String
        var requestID: String
        var key: String
        var who: String
        var model: String
        var backend: String
        var status: String
        var statusClass: String
        var detail: String?
        var tokens: String
        var coins: String
        var latency: String
        var ttft: String
        var captureURL: String?
    }

    @TemplateView
    struct Filter {
        var name: String
        var label: String
        var value: String
        var placeholder: String
    }

    @TemplateView
    struct Option {
        var value: String
        var label: String
        var selected: Bool
    }

    /// The organisation's capture setting, for administrators.
    @TemplateView
    struct Capture {
        var url: String
        var enabled: Bool
        var days: Int
        var kib: Int
        /// How many clients and keys have settings of their own (the management API shows them); nil: none.
        var others: String?
    }

    var layout: LayoutView
    var capture: Capture?
    var filters: [Filter]
    var statuses: [Option]
    var filtered: Bool
    var rows: [Row]
    var hasRows: Bool
    var error: String?
    var total: String
    var page: String
    var previous: String?
    var next: String?

    static let filterFields: [(name: String, label: String, placeholder: String)] = [
        ("keyId", "Key", "key_…"), ("userId", "Person", "usr_…"), ("clientId", "Client", "cli_…"), ("logicalModel", "Model", "gpt-4o"),
        ("backendId", "Backend", "primary"), ("startDate", "From", "YYYY-MM-DD"), ("endDate", "To", "YYYY-MM-DD"),
    ]

    /// `names`: keys' and owners' names by id, where they could be read.
    init(
        layout: LayoutView, values: [String: String], page: Int, result: Result<Lumen_Ledger_V1_ListRequestsResponse, APIError>,
        names: [String: String], coins: Coins, capture: Capture? = nil
    ) {
        self.layout = layout
        self.capture = capture
        filters = Self.filterFields.map { Filter(name: $0.name, label: $0.label, value: values[$0.name] ?? "", placeholder: $0.placeholder) }
        statuses = [("", "Any"), ("settled", "Settled"), ("failed", "Failed"), ("pending", "In flight")].map {
            Option(value: $0.0, label: $0.1, selected: (values["status"] ?? "") == $0.0)
        }
        filtered = values.contains { $0.key != "page" && !$0.value.isEmpty }
        self.page = Figures.count(Int64(page))
        switch result {
        case .success(let listed):
            rows = listed.lines.map { line in
                let (status, colour) =
                    switch line.status {
                    case .settled: ("\(line.httpStatus == 0 ? 200 : line.httpStatus)", "green")
                    case .failed: ("\(line.httpStatus == 0 ? "failed" : String(line.httpStatus))", "red")
                    default: ("in flight", "yellow")
                    }
                return Row(
                    time: RFC3339.format(millis: line.createdAt.millis), requestID: line.requestID,
                    key: line.keyID.isEmpty ? "web chat" : names[line.keyID] ?? line.keyID,
                    who: names[line.owner.id] ?? line.owner.id, model: line.logicalModel, backend: line.backendID.isEmpty ? "—" : line.backendID,
                    status: status, statusClass: colour, detail: line.errorCode.isEmpty ? nil : line.errorCode,
                    tokens: Figures.count(line.tokens), coins: UsageChartView.decimal(coins.amount(micros: line.costMicros)),
                    latency: line.status == .pending ? "—" : "\(Figures.count(line.latencyMs)) ms",
                    ttft: line.ttftMs == 0 ? "—" : "\(Figures.count(line.ttftMs)) ms",
                    captureURL: line.captured ? "/activity/" + PathSegment.encode(line.requestID) : nil)
            }
            total = Figures.count(listed.pageInfo.total) + (listed.pageInfo.total > 10_000 ? "+" : "")
            error = nil
            func link(_ page: Int) -> String {
                var query = values.filter { $0.key != "page" && !$0.value.isEmpty }
                query["page"] = String(page)
                return "/activity?" + query.sorted { $0.key < $1.key }.map { "\($0.key)=\(PathSegment.encode($0.value))" }.joined(separator: "&")
            }
            previous = page > 1 ? link(page - 1) : nil
            next = listed.pageInfo.hasMore_p && page * Int(listed.pageInfo.limit) < 10_000 ? link(page + 1) : nil
        case .failure(let refusal):
            rows = []
            total = "0"
            error = refusal.message
            previous = nil
            next = nil
        }
        hasRows = !rows.isEmpty
    }
}

/// `/activity/{requestId}`: a captured request's prompt and answer, as text.
@TemplateView
struct CapturePage {
    var layout: LayoutView
    var requestID: String
    var prompt: String
    var answer: String
    var truncated: Bool
    var expiresAt: String

    init(layout: LayoutView, capture: CapturedRequestObject) {
        self.layout = layout
        requestID = capture.requestID
        prompt = capture.prompt
        answer = capture.answer
        truncated = capture.truncated
        expiresAt = capture.expiresAt
    }
}
