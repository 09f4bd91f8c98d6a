import Foundation
import HTTPTypes
import LumenAPI
import SharedRules
import Testing

@testable import Dashboard

@Suite("Pages: the templates in gateway/dashboard, rendered")
struct PageRenderingTests {
    let site: Site

    init() throws {
        site = try Site()
    }

    func render(_ template: String, _ view: Any) throws -> String {
        try #require(site.library.render(view, withTemplate: template), "no template \(template)")
    }

    func layout() -> LayoutView {
        LayoutView(signedIn: true, name: "Ada <Admin>", isAdmin: true, csrfToken: "csrf\"token", version: site.version)
    }

    func key(named name: String, revoked: Bool = false) -> KeyObject {
        KeyObject(
            .with {
                $0.id = "key_1"
                $0.name = name
                $0.hint = "sk-A...wxyz"
                $0.status = revoked ? .revoked : .active
                $0.createdAt = .init(millis: 1_800_000_000_000)
            },
            totals: .with {
                $0.keyID = "key_1"
                $0.requests = 1_234_567
                $0.inputTokens = 1_000
                $0.outputTokens = 234
                $0.costMicros = 1_234_567_890
                $0.lastUsedAt = .init(millis: 1_800_000_000_000)
            }, coins: Coins(perUSD: 100))
    }

    func profile(
        keys: [KeyObject], query: ListQuery = ListQuery(sort: "name", showDeleted: true), total: Int? = nil, offset: Int = 0,
        everything: Int? = nil
    ) -> ProfilePage {
        let card = ProfileObject(
            user: UserObject(
                .with {
                    $0.id = "usr_1"
                    $0.email = "ada@example.com"
                    $0.displayName = "Ada Lovelace"
                    $0.active = true
                }),
            avatarURL: ProfileObject.gravatar("ada@example.com"), groups: [GroupRef(id: "grp_1", name: "<b>research</b>")],
            coinsUsed: Decimal(string: "123456.789")!, tokensUsed: 9_876_543, requests: 3, favoriteModel: "gpt-4o",
            pool: PoolObject(.with { $0.mode = .unlimited }, coins: Coins()),
            webChat: WebChatObject(conversations: 0, requests: 0, tokens: 0, coins: 0, lastUsedAt: nil))
        return ProfilePage(
            layout: layout(), profile: ProfileView(card), keys: KeyTableView(
                KeysController.Page(keys: keys, total: total ?? keys.count, offset: offset), query: query, everything: everything,
                base: "/api/me/keys", action: "/profile"),
            models: ModelTableView([], consentBase: "/api/me/models", forClient: false), usage: Self.usage())
    }

    /// Usage over three days: two models on the first, one of them named like markup.
    static func usage(days: Int = 3) -> UsageChartView {
        func point(_ day: String, _ model: String, cost: Int64, tokens: Int64) -> Lumen_Ledger_V1_UsageSeriesPoint {
            .with {
                $0.day = day
                $0.logicalModel = model
                $0.sums = .with {
                    $0.requests = 1
                    $0.costMicros = cost
                    $0.inputTokens = tokens
                }
            }
        }
        let response = Lumen_Ledger_V1_GetUsageSeriesResponse.with {
            $0.startDay = "2026-12-04"
            $0.endDay = "2026-12-06"
            $0.points = [
                point("2026-12-04", "<script>x</script>", cost: 250_000, tokens: 100), point("2026-12-04", "gpt-4o", cost: 750_000, tokens: 300),
                point("2026-12-06", "gpt-4o", cost: 2_000_000, tokens: 50),
            ]
            $0.total = .with {
                $0.requests = 3
                $0.costMicros = 3_000_000
                $0.inputTokens = 450
            }
        }
        return UsageChartView(
            response, heading: "Your usage", days: days, coins: Coins(perUSD: 100), page: "/profile", csv: "userId=usr_1",
            topKeys: [], topOwners: [])
    }

    @Test("A key named <script> renders as text, and so does every other name")
    func escaping() throws {
        let html = try render("profile", profile(keys: [key(named: "<script>alert(1)</script>")]))
        #expect(!html.contains("<script>alert"))
        #expect(html.contains("&lt;script&gt;alert(1)&lt;&#47;script&gt;") || html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"))
        #expect(!html.contains("<b>research</b>"))
        #expect(!html.contains("Ada <Admin>"))
        #expect(!html.contains("csrf\"token"))
    }

    @Test("Usage chart: a bar a day, models stacked to the day's total, the axis above the highest day, names as text")
    func usageChart() throws {
        let chart = Self.usage()
        let coins = try #require(chart.charts.first { $0.id == "coins" })
        // 100 coins to the dollar: the first day 25 + 75, the last 200; the axis tops at 200.
        #expect(coins.bars.map(\.value) == ["75", "25", "200"])  // the costlier model first
        #expect(coins.ticks.last?.label == "200")
        func number(_ text: String) throws -> Double { try #require(Double(text)) }
        let firstDay = coins.bars.filter { $0.day == "2026-12-04" }
        let heights = try firstDay.map { try number($0.height) }.reduce(0, +)
        let lastDay = try number(try #require(coins.bars.last).height)
        #expect(abs(heights * 2 - lastDay) < 0.5)  // 100 coins is half of 200
        #expect(Set(firstDay.map(\.x)).count == 1 && coins.bars.last?.x != firstDay.first?.x)
        #expect(chart.legend.map(\.name) == ["gpt-4o", "<script>x</script>"])
        #expect(chart.csvURL == "/api/usage?userId=usr_1&days=3&format=csv")
        #expect(chart.choices.map(\.url) == ["/profile?days=7#usage", "/profile?days=30#usage", "/profile?days=90#usage"])
        let html = try render("profile", profile(keys: []))
        #expect(!html.contains("<script>x"))
        #expect(html.contains("data-chart=\"coins\"") && html.contains("<svg viewBox="))
        #expect(html.contains("data-figure=\"usage-coins\">300<"))
    }

    @Test("Figures: thousands separators, coins exactly, the pool as seed 001 names it")
    func figures() throws {
        let html = try render("profile", profile(keys: [key(named: "ci-runner")]))
        #expect(html.contains("1,234,567"))  // requests
        #expect(html.contains("1,234"))  // tokens
        #expect(html.contains("123,456.789"))  // coins used, not rounded
        #expect(html.contains("9,876,543"))  // tokens used
        #expect(html.contains("Unlimited"))
        #expect(Figures.count(0) == "0" && Figures.count(-1_000) == "-1,000" && Figures.count(999) == "999")
        #expect(Figures.coins(Decimal(string: "-1234.5")!) == "-1,234.5")
        #expect(Figures.coins(Coins(perUSD: 100).amount(micros: 1_234_567_890)) == "123,456.789")
    }

    @Test("Coins are micro-USD × coins per dollar ÷ 1,000,000 exactly, large and negative amounts too")
    func coinsExactly() {
        for perUSD: Int64 in [1, 100, 1_000_000] {
            let coins = Coins(perUSD: perUSD)
            for micros: Int64 in [0, 1, -1, 999_999, 1_500_000, -123_456_789, .max, .min, .max / 100, .min / 7] {
                let exact = Decimal(micros) * Decimal(perUSD) / 1_000_000
                #expect(coins.amount(micros: micros) == exact, "\(micros) micro-USD at \(perUSD) coins to the dollar")
                #expect(coins.amount(micros: micros).description == exact.description)
            }
        }
    }

    @Test("Every view the templates read answers each of its stored properties by name")
    func viewsAnswerTheirFields() throws {
        var page = profile(keys: [key(named: "ci-runner"), key(named: "old", revoked: true)])
        page.layout.onProfile = true
        var unanswered: [String] = []
        func walk(_ value: Any, _ path: String) {
            let mirror = Mirror(reflecting: value)
            if mirror.displayStyle == .collection {
                for (index, element) in mirror.children.enumerated() { walk(element.value, "\(path)[\(index)]") }
                return
            }
            guard mirror.displayStyle == .struct else { return }
            guard let view = value as? any TemplateView else {
                unanswered.append("\(path): \(type(of: value)) is not a TemplateView")
                return
            }
            for child in mirror.children {
                guard let label = child.label else { continue }
                let inner = Mirror(reflecting: child.value)
                let isNil = inner.displayStyle == .optional && inner.children.isEmpty
                let answer = view.field(label)
                if !isNil, answer == nil { unanswered.append("\(path).\(label)") }
                // The property's own value, not a namesake (a parameter called `name`).
                let stored: Any? = inner.displayStyle == .optional ? inner.children.first?.value : child.value
                if let answer, let stored, String(reflecting: answer) != String(reflecting: stored) {
                    unanswered.append("\(path).\(label) answers \(answer), holds \(stored)")
                }
                walk(inner.displayStyle == .optional ? inner.children.first?.value ?? () : child.value, "\(path).\(label)")
            }
        }
        walk(page, "ProfilePage")
        #expect(unanswered.isEmpty, "\(unanswered)")
    }

    @Test("A revoked key is struck through, without Revoke; an empty table says why and what to do")
    func revokedAndEmpty() throws {
        let revoked = try render("profile", profile(keys: [key(named: "old", revoked: true)]))
        #expect(revoked.contains(#"class="revoked""#))
        #expect(!revoked.contains("data-revoke="))
        #expect(revoked.contains(#"name="show_deleted" value="true" checked"#))
        let empty = try render("profile", profile(keys: [], everything: 0))
        #expect(empty.contains("No API keys yet — create one"))
        let allRevoked = try render("profile", profile(keys: [], query: ListQuery(sort: "name"), everything: 2))
        #expect(allRevoked.contains("No active keys — tick “Show deleted keys”"))
        let noMatch = try render("profile", profile(keys: [], query: ListQuery(sort: "name", text: "<zz>"), everything: 2))
        #expect(noMatch.contains("No keys match “&lt;zz&gt;”."))
    }

    @Test("The key table pages by 50: sort links keep the search, turn the order round, and the pager says where it is")
    func sortLinksAndPager() throws {
        let query = ListQuery(sort: "requests", descending: true, text: "a+b & c", page: 2)
        let html = try render("profile", profile(keys: [key(named: "ci-runner")], query: query, total: 120, offset: 50))
        // Sorted by requests, largest first: its link turns that round, others start afresh.
        #expect(html.contains(#"aria-sort="descending"><a class="sort" href="/profile?sort=requests&amp;order=asc&amp;query=a%2Bb%20%26%20c#keys">Requests</a>"#))
        #expect(html.contains(#"href="/profile?sort=name&amp;order=asc&amp;query=a%2Bb%20%26%20c#keys">Name</a>"#))
        #expect(html.contains(#"href="/profile?sort=tokens&amp;order=desc&amp;query=a%2Bb%20%26%20c#keys">Tokens</a>"#))
        #expect(html.contains("Keys 51–51 of 120"))
        #expect(html.contains(#"href="/profile?sort=requests&amp;order=desc&amp;query=a%2Bb%20%26%20c#keys" rel="prev""#))
        #expect(html.contains(#"href="/profile?sort=requests&amp;order=desc&amp;query=a%2Bb%20%26%20c&amp;page=3#keys" rel="next""#))
        #expect(html.contains(#"value="a+b &amp; c""#))
        let one = try render("profile", profile(keys: [key(named: "ci-runner")]))
        #expect(!one.contains("Keys 1–"))
    }

    @Test("Every template parses and every static file is served with its type")
    func assets() throws {
        for name in ["layout", "login", "invite", "error", "profile", "keys", "models", "pool-tiles", "usage-cells", "chat", "clients", "client", "model", "users", "pool-dialog", "consent-dialog"] {
            #expect(site.library.getTemplate(named: name) != nil, "\(name)")
        }
        #expect(site.assets["app.css"]?.contentType == "text/css; charset=utf-8")
        #expect(site.assets["icon.svg"]?.contentType == "image/svg+xml")
        for script in ["app.js", "api.js", "chat.js", "markdown.js"] {
            #expect(site.assets[script]?.contentType == "text/javascript; charset=utf-8", "\(script)")
        }
    }

    @Test("After sign-in, next goes to a path of this site only: nothing a browser would turn into another origin")
    func safeNext() {
        for path in ["/profile", "/keys?page=2", "/clients/cli_1#usage", "/%09/evil.test", "/a/b/../c"] {
            #expect(PagesController.safeNext(path) == path, "\(path)")
        }
        for path in [
            nil, "", "profile", "https://evil.test/", "//evil.test", "/\t/evil.test", "/\n/evil.test", "/\r//evil.test",
            "\t//evil.test", "/\\evil.test", "\\\\evil.test", "/\u{0}//evil.test", "/ /evil.test", "/\u{A0}/evil.test",
            "/\u{2028}/evil.test", "/login?next=//evil.test", "javascript:alert(1)", "/" + String(repeating: "a", count: 3_000),
        ] {
            #expect(PagesController.safeNext(path) == "/profile", "\(String(describing: path))")
        }
    }

    @Test("A conversation is titled by its first message as plain text, never raw Markdown")
    func conversationTitles() {
        let cases: [(String, String)] = [
            ("# Explain **Rust** lifetimes\nin detail", "Explain Rust lifetimes"),
            ("> quoted _thought_ here", "quoted thought here"),
            ("- [x] item with `code` and [a link](https://x.test)", "item with code and a link"),
            ("```swift\nlet x = 1\n```", "let x = 1"),
            ("1. first ~~old~~ step", "first old step"),
            ("rename my_var_name please", "rename my_var_name please"),
            ("  \n\n", "New conversation"),
            ("**" + String(repeating: "long ", count: 20) + "end**", String(String(repeating: "long ", count: 12).prefix(59)) + "…"),
            ("2 * 3 * 4", "2 * 3 * 4"),
        ]
        for (message, title) in cases {
            #expect(ConversationObject.title(from: message) == title, "\(message)")
        }
    }

    @Test("Profiles show initials without Gravatar; with it, the picture and a policy that lets it load")
    func gravatar() throws {
        let policy = HTTPField.Name("Content-Security-Policy")!
        #expect(site.pageHeaders[policy]?.contains("gravatar") == false)
        #expect(try Site(gravatar: true).pageHeaders[policy]?.contains("img-src 'self' https://www.gravatar.com") == true)
        let html = try render("profile", profile(keys: []))
        #expect(html.contains("ada<wbr>@example<wbr>.com<wbr>"))
        #expect(html.contains(#"<img src="https://www.gravatar.com/avatar/"#))
    }

}
