import Foundation
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
