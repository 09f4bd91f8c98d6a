import Foundation
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

    func profile(keys: [KeyObject]) -> ProfilePage {
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
            layout: layout(), profile: ProfileView(card), keys: KeyTableView(keys, base: "/api/me/keys"),
            models: ModelTableView([], consentBase: "/api/me/models", forClient: false))
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

    @Test("A revoked key is struck through and hidden until \"Show deleted keys\"; an empty table says what to do")
    func revokedAndEmpty() throws {
        let revoked = try render("profile", profile(keys: [key(named: "old", revoked: true)]))
        #expect(revoked.contains(#"class="revoked" hidden"#))
        #expect(!revoked.contains("data-revoke="))
        let empty = try render("profile", profile(keys: []))
        #expect(empty.contains("No API keys yet — create one"))
    }

    @Test("Every template parses and every static file is served with its type")
    func assets() throws {
        for name in ["layout", "login", "invite", "error", "profile", "keys", "models", "pool-tiles", "usage-cells", "chat", "clients", "client", "model", "users", "pool-dialog", "consent-dialog"] {
            #expect(site.library.getTemplate(named: name) != nil, "\(name)")
        }
        #expect(site.assets["app.css"]?.contentType == "text/css; charset=utf-8")
        for script in ["app.js", "api.js", "chat.js", "markdown.js"] {
            #expect(site.assets[script]?.contentType == "text/javascript; charset=utf-8", "\(script)")
        }
    }
}
