import Foundation
import Gateway
import Hummingbird
import HummingbirdAuth
import LumenAPI
import RPCSupport
import SharedRules
import Synchronization

/// The dashboard's JSON API under `/api` (seeds 000 and 001), for people signed in with a
/// session cookie. It translates only: every rule is the services', which it calls as the
/// person signed in (`Metadata.acting(as:)`).
public struct Dashboard: Sendable {
    /// The session cookie's name.
    public static let cookieName = "lumen_session"
    /// How long a session lasts.
    public static let sessionLifetime: Duration = .seconds(12 * 3600)

    let services: GatewayServices
    let coins: Coins
    let store: AccountsSessionStore
    let site: Site
    /// Where people reach Lumen (`https://lumen.example.com`), without a trailing slash.
    let publicURL: PublicURL
    /// Whether people reach Lumen over HTTPS: cookies are then `Secure`.
    let secure: Bool
    /// Whether profiles show Gravatar pictures (`--gravatar`).
    let gravatar: Bool
    let clock: WallClock
    /// The OpenID Connect providers' documents and keys, for single sign-on.
    let openID: OpenIDProviders
    /// The process's environment: where single sign-on's client secrets are.
    let environment: [String: String]

    /// Throws when a template in gateway/dashboard does not parse. `publicURL` starts the links
    /// Lumen makes; `secure` (the default: whether it is `https`) marks cookies `Secure`.
    public init(
        services: GatewayServices, coins: Coins = Coins(), clock: WallClock = .system,
        publicURL: PublicURL = PublicURL("http://localhost:8080"), secure: Bool? = nil, gravatar: Bool = false,
        environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws {
        self.clock = clock
        self.openID = OpenIDProviders()
        self.environment = environment
        self.services = services
        self.coins = coins
        self.store = AccountsSessionStore(accounts: services.accounts, internalToken: services.internalToken, clock: clock)
        self.site = try Site(gravatar: gravatar)
        self.gravatar = gravatar
        self.publicURL = publicURL
        self.secure = secure ?? publicURL.value.lowercased().hasPrefix("https://")
    }

    /// Where people reach Lumen, known once the HTTP port is bound when it is not configured
    /// (a port 0 picks a free one).
    public final class PublicURL: Sendable {
        private let url: Mutex<String>

        public init(_ url: String) { self.url = Mutex(url) }

        public var value: String { url.withLock { $0 } }

        public func set(_ url: String) { self.url.withLock { $0 = url } }
    }

    /// Adds the pages and `/api/…` to `router`; keys made or revoked here reach `caches` at once;
    /// the web chat answers through `webChat`, the gateway's own inference path.
    public func addRoutes(to router: Router<DashboardContext>, caches: GatewayCaches?, webChat: WebChat?) {
        let sessions = SessionStorage<DashboardSession>(
            store,
            configuration: .init(
                sessionCookieParameters: .init(name: Self.cookieName, path: "/", secure: secure, sameSite: .lax), keyPrefix: "hbs."))
        let people = PersonDirectory(accounts: services.accounts, internalToken: services.internalToken)
        let site = self.site
        router.get("static/{file}") { request, context in
            guard let response = site.asset(try context.parameters.require("file"), request: request) else {
                throw APIError(.notFound, code: "not_found", message: "no such file")
            }
            return response
        }
        // Browsers ask for it whatever the pages link.
        router.get("favicon.ico") { request, _ in
            site.asset("icon.svg", request: request) ?? Response(status: .notFound)
        }
        let withSession = router.group()
            .add(middleware: SessionMiddleware(sessionStorage: sessions, defaultSessionExpiration: Self.sessionLifetime))
            .add(middleware: SessionAuthenticator(context: DashboardContext.self) { session, _ in try await people.person(session) })
        let api = withSession.group("api")
        let controller = SessionController(
            accounts: services.accounts, internalToken: services.internalToken, sessions: sessions, people: people,
            guard: SignInGuard(publicURL: publicURL, secure: secure), publicURL: publicURL)
        controller.addPublicRoutes(to: api)
        let signedIn = api.group().add(middleware: SignedIn())
        controller.addRoutes(to: signedIn)
        let keys = KeysController(services: services, coins: coins, cache: caches?.keys)
        keys.addRoutes(to: signedIn)
        let clients = ClientsController(services: services, coins: coins, keys: keys)
        clients.addRoutes(to: signedIn)
        PoolsController(services: services, coins: coins).addRoutes(to: signedIn)
        let models = ModelsController(services: services, coins: coins)
        models.addRoutes(to: signedIn)
        let profile = ProfileController(services: services, coins: coins, gravatar: gravatar)
        profile.addRoutes(to: signedIn)
        let users = UsersController(services: services)
        users.addRoutes(to: signedIn)
        let chat = ChatController(services: services, webChat: webChat)
        chat.addRoutes(to: signedIn)
        let usage = UsageController(services: services, coins: coins)
        usage.addRoutes(to: signedIn)
        let alerts = AlertsController(services: services, coins: coins)
        alerts.addRoutes(to: signedIn)

        let singleSignOn = SingleSignOnController(
            accounts: services.accounts, internalToken: services.internalToken, providers: openID, publicURL: publicURL, secure: secure,
            clock: clock, environment: environment)
        let pages = PagesController(
            site: site, session: controller, profile: profile, keys: keys, models: models, clients: clients, users: users, chat: chat,
            singleSignOn: singleSignOn, usage: usage, alerts: alerts)
        let pageGroup = withSession.group().add(middleware: PageErrors(site: site))
        pages.addPublicRoutes(to: pageGroup)
        pages.addRoutes(to: pageGroup.group().add(middleware: SignedInPage()))
        // Last, so that it wraps only what no route answers: a browser gets a page, not JSON.
        router.add(middleware: BrowserNotFound(site: site))
    }
}
