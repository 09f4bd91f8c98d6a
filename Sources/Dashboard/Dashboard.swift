import Gateway
import Hummingbird
import HummingbirdAuth
import LumenAPI
import RPCSupport
import SharedRules

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

    /// Throws when a template in gateway/dashboard does not parse.
    public init(services: GatewayServices, coins: Coins = Coins(), clock: WallClock = .system) throws {
        self.services = services
        self.coins = coins
        self.store = AccountsSessionStore(accounts: services.accounts, internalToken: services.internalToken, clock: clock)
        self.site = try Site()
    }

    /// Adds the pages and `/api/…` to `router`; keys made or revoked here reach `caches` at once;
    /// the web chat answers through `webChat`, the gateway's own inference path.
    public func addRoutes(to router: Router<DashboardContext>, caches: GatewayCaches?, webChat: WebChat?) {
        let sessions = SessionStorage<DashboardSession>(
            store,
            configuration: .init(
                sessionCookieParameters: .init(name: Self.cookieName, path: "/", secure: false, sameSite: .lax), keyPrefix: "hbs."))
        let people = PersonDirectory(accounts: services.accounts, internalToken: services.internalToken)
        let site = self.site
        router.get("static/{file}") { request, context in
            guard let response = site.asset(try context.parameters.require("file"), request: request) else {
                throw APIError(.notFound, code: "not_found", message: "no such file")
            }
            return response
        }
        let withSession = router.group()
            .add(middleware: SessionMiddleware(sessionStorage: sessions, defaultSessionExpiration: Self.sessionLifetime))
            .add(middleware: SessionAuthenticator(context: DashboardContext.self) { session, _ in try await people.person(session) })
        let api = withSession.group("api")
        let controller = SessionController(
            accounts: services.accounts, internalToken: services.internalToken, sessions: sessions, people: people)
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
        let profile = ProfileController(services: services, coins: coins)
        profile.addRoutes(to: signedIn)
        let users = UsersController(services: services)
        users.addRoutes(to: signedIn)
        let chat = ChatController(services: services, webChat: webChat)
        chat.addRoutes(to: signedIn)

        let pages = PagesController(site: site, session: controller, profile: profile, keys: keys, models: models, clients: clients, users: users, chat: chat)
        let pageGroup = withSession.group().add(middleware: PageErrors(site: site))
        pages.addPublicRoutes(to: pageGroup)
        pages.addRoutes(to: pageGroup.group().add(middleware: SignedInPage()))
    }
}
