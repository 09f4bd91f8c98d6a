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

    public init(services: GatewayServices, coins: Coins = Coins(), clock: WallClock = .system) {
        self.services = services
        self.coins = coins
        self.store = AccountsSessionStore(accounts: services.accounts, internalToken: services.internalToken, clock: clock)
    }

    /// Adds `/api/…` to `router`; keys made or revoked here reach `caches` at once.
    public func addRoutes(to router: Router<DashboardContext>, caches: GatewayCaches?) {
        let sessions = SessionStorage<DashboardSession>(
            store,
            configuration: .init(
                sessionCookieParameters: .init(name: Self.cookieName, path: "/", secure: false, sameSite: .lax), keyPrefix: "hbs."))
        let people = PersonDirectory(accounts: services.accounts, internalToken: services.internalToken)
        let api = router.group("api")
            .add(middleware: SessionMiddleware(sessionStorage: sessions, defaultSessionExpiration: Self.sessionLifetime))
            .add(middleware: SessionAuthenticator(context: DashboardContext.self) { session, _ in try await people.person(session) })
        let controller = SessionController(
            accounts: services.accounts, internalToken: services.internalToken, sessions: sessions, people: people)
        controller.addPublicRoutes(to: api)
        let signedIn = api.group().add(middleware: SignedIn())
        controller.addRoutes(to: signedIn)
        let keys = KeysController(services: services, coins: coins, cache: caches?.keys)
        keys.addRoutes(to: signedIn)
        ClientsController(services: services, coins: coins, keys: keys).addRoutes(to: signedIn)
        PoolsController(services: services, coins: coins).addRoutes(to: signedIn)
        ModelsController(services: services, coins: coins).addRoutes(to: signedIn)
        ProfileController(services: services, coins: coins).addRoutes(to: signedIn)
        UsersController(services: services).addRoutes(to: signedIn)
    }
}
