import Foundation
import Gateway
import LumenAPI
import SharedRules

/// Usage over time as the pages draw it (`usage-chart.mustache`): two stacked bar charts —
/// coins and tokens per UTC day, one colour per model — drawn as SVG on the server (no script
/// needed to see them), the same figures as a table for screen readers, the window's choices
/// (7, 30, 90 days), a CSV download and the keys and owners that spent most.
@TemplateView
struct UsageChartView {
    /// One model's part of one day's bar.
    @TemplateView
    struct Bar {
        var x: String
        var y: String
        var width: String
        var height: String
        var series: Int
        var day: String
        var model: String
        var value: String
        var title: String
    }

    /// A horizontal grid line and its label.
    @TemplateView
    struct Tick {
        var y: String
        var labelY: String
        var label: String
    }

    /// A day named under the bars.
    @TemplateView
    struct DayLabel {
        var x: String
        var label: String
    }

    @TemplateView
    struct Chart {
        var id: String
        var heading: String
        /// What the chart shows, said for screen readers (the table holds the figures).
        var summary: String
        /// The plot's left and right edges, and where the values' labels end.
        var plotLeft: String
        var plotRight: String
        var labelX: String
        var bars: [Bar]
        var ticks: [Tick]
        var days: [DayLabel]
    }

    @TemplateView
    struct Series {
        var name: String
        var series: Int
    }

    @TemplateView
    struct Row {
        var day: String
        var model: String
        var requests: String
        var tokens: String
        var coins: String
    }

    @TemplateView
    struct Choice {
        var days: Int
        var url: String
        var current: Bool
    }

    @TemplateView
    struct Leader {
        var name: String
        var detail: String
        var url: String?
        var requests: String
        var tokens: String
        var coins: String
    }

    var heading: String
    var startDate: String
    var endDate: String
    var days: Int
    var choices: [Choice]
    var csvURL: String
    var charts: [Chart]
    var legend: [Series]
    var rows: [Row]
    var hasRows: Bool
    var totalCoins: String
    var totalTokens: String
    var totalRequests: String
    /// "request" or "requests", "token" or "tokens", as the totals need.
    var requestsNoun: String
    var tokensNoun: String
    var topKeys: [Leader]
    var hasTopKeys: Bool
    var topOwners: [Leader]
    var hasTopOwners: Bool

    /// Models beyond this many (by coins) share the last colour as "Other models".
    static let namedSeries = 6
    static let choices = [7, 30, 90]

    /// The drawing's frame: a 720 × 240 view box, the plot inside the axes' labels.
    static let (width, height) = (720.0, 240.0)
    /// Room on the left for the values (up to `0.015` in a phone's larger type), on the right
    /// for the last day's name centred under its bar.
    static let (left, right, top, bottom) = (72.0, 696.0, 20.0, 212.0)

    /// `page` is the page's path (the window's links keep its query apart from `days`); `csv` the
    /// `/api/usage` query of the same figures.
    init(
        _ response: Lumen_Ledger_V1_GetUsageSeriesResponse, heading: String, days: Int, coins: Coins, page: String, csv: String,
        topKeys: [Leader], topOwners: [Leader]
    ) {
        self.heading = heading
        self.startDate = response.startDay
        self.endDate = response.endDay
        self.days = days
        let separator = page.contains("?") ? "&" : "?"
        self.choices = Self.choices.map { Choice(days: $0, url: "\(page)\(separator)days=\($0)#usage", current: $0 == days) }
        self.csvURL = "/api/usage?\(csv)\(csv.isEmpty ? "" : "&")days=\(days)&format=csv"
        // Models by what they cost over the window (then tokens, then name): the first keep colours.
        var byModel: [String: (micros: Int64, tokens: Int64)] = [:]
        for point in response.points {
            byModel[point.logicalModel, default: (0, 0)].micros += point.sums.costMicros
            byModel[point.logicalModel, default: (0, 0)].tokens += point.sums.tokens
        }
        let ranked = byModel.sorted {
            ($0.value.micros, $0.value.tokens, $1.key) > ($1.value.micros, $1.value.tokens, $0.key)
        }.map(\.key)
        let series = Dictionary(uniqueKeysWithValues: ranked.enumerated().map { ($1, min($0, Self.namedSeries)) })
        self.legend = ranked.prefix(Self.namedSeries).enumerated().map { Series(name: $1, series: $0) }
            + (ranked.count > Self.namedSeries ? [Series(name: "Other models", series: Self.namedSeries)] : [])
        let dayList = Self.days(from: response.startDay, count: days)
        let perCoin = Double(coins.perUSD) / 1_000_000
        self.charts = [
            Self.chart(
                id: "coins", heading: "Coins per day", response: response, days: dayList, series: series,
                value: { Double($0.costMicros) * perCoin }, label: { Self.decimal(coins.amount(micros: $0.costMicros)) }),
            Self.chart(
                id: "tokens", heading: "Tokens per day", response: response, days: dayList, series: series,
                value: { Double($0.tokens) }, label: { "\($0.tokens)" }),
        ]
        self.rows = response.points.map {
            Row(
                day: $0.day, model: $0.logicalModel, requests: "\($0.sums.requests)", tokens: "\($0.sums.tokens)",
                coins: Self.decimal(coins.amount(micros: $0.sums.costMicros)))
        }
        self.hasRows = !rows.isEmpty
        self.totalCoins = Self.decimal(coins.amount(micros: response.total.costMicros))
        self.totalTokens = "\(response.total.tokens)"
        self.totalRequests = "\(response.total.requests)"
        self.requestsNoun = response.total.requests == 1 ? "request" : "requests"
        self.tokensNoun = response.total.tokens == 1 ? "token" : "tokens"
        self.topKeys = topKeys
        self.hasTopKeys = !topKeys.isEmpty
        self.topOwners = topOwners
        self.hasTopOwners = !topOwners.isEmpty
    }

    /// One stacked bar chart: a bar a day (models stacked in their legend's order), grid lines
    /// at quarters of a round maximum, some days named below.
    static func chart(
        id: String, heading: String, response: Lumen_Ledger_V1_GetUsageSeriesResponse, days: [String], series: [String: Int],
        value: (Lumen_Ledger_V1_UsageSums) -> Double, label: (Lumen_Ledger_V1_UsageSums) -> String
    ) -> Chart {
        let index = Dictionary(uniqueKeysWithValues: days.enumerated().map { ($1, $0) })
        var perDay = [Double](repeating: 0, count: days.count)
        for point in response.points { if let at = index[point.day] { perDay[at] += value(point.sums) } }
        let maximum = roundUp(perDay.max() ?? 0)
        let step = (right - left) / Double(max(days.count, 1))
        let barWidth = max(1, step * 0.72)
        let scale = (bottom - top) / maximum
        var stacked = [Double](repeating: 0, count: days.count)
        var bars: [Bar] = []
        // The points come by day, then model; a day's segments stack in legend order.
        let ordered = response.points.sorted { ($0.day, series[$0.logicalModel] ?? 0, $0.logicalModel) < ($1.day, series[$1.logicalModel] ?? 0, $1.logicalModel) }
        for point in ordered {
            guard let at = index[point.day] else { continue }
            let amount = value(point.sums)
            guard amount > 0 else { continue }
            let height = amount * scale
            stacked[at] += height
            let text = label(point.sums)
            bars.append(
                Bar(
                    x: format(left + Double(at) * step + (step - barWidth) / 2), y: format(bottom - stacked[at]), width: format(barWidth),
                    height: format(max(height, 0.5)), series: series[point.logicalModel] ?? namedSeries, day: point.day,
                    model: point.logicalModel, value: text, title: "\(point.day) · \(point.logicalModel): \(text)"))
        }
        let ticks = (0...4).map { quarter -> Tick in
            let y = bottom - Double(quarter) * (bottom - top) / 4
            return Tick(y: format(y), labelY: format(y + 4), label: compact(maximum * Double(quarter) / 4))
        }
        let every = days.count <= 7 ? 1 : days.count <= 31 ? 7 : 15
        let labels = days.enumerated().filter { (days.count - 1 - $0.offset) % every == 0 }.map {
            DayLabel(x: format(left + (Double($0.offset) + 0.5) * step), label: shortDay($0.element))
        }
        let total = perDay.reduce(0, +)
        let summary =
            total == 0
            ? "\(heading): nothing used from \(days.first ?? "") to \(days.last ?? "")."
            : "\(heading) from \(days.first ?? "") to \(days.last ?? ""), stacked by model; the figures are in the table below."
        return Chart(
            id: id, heading: heading, summary: summary, plotLeft: format(left), plotRight: format(right),
            labelX: format(left - 6), bars: bars, ticks: ticks, days: labels)
    }

    /// `count` days from `start` (`YYYY-MM-DD`), as the ledger names them.
    static func days(from start: String, count: Int) -> [String] {
        guard let first = RFC3339.parseDateMillis(start) else { return [] }
        return (0..<count).map { RFC3339.formatDay(millis: first + Int64($0) * 86_400_000) }
    }

    /// A round maximum for the axis (1, 2, 2.5 or 5 × a power of ten) at or above `value`.
    static func roundUp(_ value: Double) -> Double {
        guard value > 0 else { return 1 }
        let power = pow(10, floor(log10(value)))
        for factor in [1, 2, 2.5, 5, 10] where factor * power >= value { return factor * power }
        return 10 * power
    }

    /// An axis label: 1.5k, 2M, 0.25.
    static func compact(_ value: Double) -> String {
        func trim(_ number: Double) -> String {
            // Quarters of 1, 2, 2.5 or 5 × a power of ten have few digits: six places hold them.
            var text = String(format: "%.6f", number)
            while text.hasSuffix("0") { text.removeLast() }
            if text.hasSuffix(".") { text.removeLast() }
            return text
        }
        if value >= 1_000_000 { return trim(value / 1_000_000) + "M" }
        if value >= 1_000 { return trim(value / 1_000) + "k" }
        return trim(value)
    }

    static func format(_ value: Double) -> String { String(format: "%.1f", value) }

    static func decimal(_ value: Decimal) -> String { "\(value)" }

    /// `2026-12-06` → `Dec 6`.
    static func shortDay(_ day: String) -> String {
        let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        let parts = day.split(separator: "-")
        guard parts.count == 3, let month = Int(parts[1]), (1...12).contains(month), let date = Int(parts[2]) else { return day }
        return "\(months[month - 1]) \(date)"
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
