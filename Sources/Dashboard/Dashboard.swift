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
    let store: AccountsSessionStore

    public init(services: GatewayServices, clock: WallClock = .system) {
        self.services = services
        self.store = AccountsSessionStore(accounts: services.accounts, internalToken: services.internalToken, clock: clock)
    }

    /// Adds `/api/…` to `router`.
    public func addRoutes(to router: Router<DashboardContext>) {
        let sessions = SessionStorage<DashboardSession>(
            store,
            configuration: .init(
                sessionCookieParameters: .init(name: Self.cookieName, path: "/", secure: false, sameSite: .lax), keyPrefix: "hbs."))
        let people = PersonDirectory(accounts: services.accounts, internalToken: services.internalToken)
        let api = router.group("api")
            .add(middleware: SessionMiddleware(sessionStorage: sessions, defaultSessionExpiration: Self.sessionLifetime))
            .add(middleware: SessionAuthenticator(context: DashboardContext.self) { session, _ in try await people.person(session) })
        let controller = SessionController(accounts: services.accounts, internalToken: services.internalToken, sessions: sessions)
        controller.addPublicRoutes(to: api)
        let signedIn = api.group().add(middleware: SignedIn())
        controller.addRoutes(to: signedIn)
    }
}
