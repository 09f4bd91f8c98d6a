import Foundation
import Gateway
import HTTPTypes
import Hummingbird
import HummingbirdAuth
import LumenAPI
import RPCSupport

/// The dashboard's pages (seeds 000 and 001), rendered on the server from the same calls as
/// `/api`: sign-in, invitations, the profile. Changes are made by the pages' scripts through
/// `/api` with the session's CSRF token.
struct PagesController: Sendable {
    let site: Site
    let session: SessionController
    let profile: ProfileController
    let keys: KeysController
    let models: ModelsController
    let clients: ClientsController
    let users: UsersController
    let chat: ChatController
    let singleSignOn: SingleSignOnController
    let usage: UsageController
    let alerts: AlertsController

    /// Pages anyone may open.
    func addPublicRoutes(to group: RouterGroup<DashboardContext>) {
        group.get("login", use: loginForm)
        group.post("login", use: login)
        group.get("invite/{token}", use: inviteForm)
        group.post("invite/{token}", use: acceptInvite)
        group.get("login/sso/start/{organizationId}", use: singleSignOnStart)
        group.get("login/sso/callback", use: singleSignOnCallback)
    }

    /// Pages for a person signed in (`SignedInPage` sends others to `/login`).
    func addRoutes(to group: RouterGroup<DashboardContext>) {
        group.get("/") { _, _ in Self.redirect("/profile") }
        group.get("profile", use: profilePage)
        group.get("clients", use: clientsPage)
        group.get("clients/{clientId}", use: clientPage)
        group.get("models/{model}", use: modelPage)
        group.get("users", use: usersPage)
        group.get("audit", use: auditPage)
        group.get("usage", use: usagePage)
        group.get("activity", use: activityPage)
        group.get("activity/{requestId}", use: capturePage)
        group.get("chat", use: chatPage)
        group.post("logout", use: logout)
    }

    // MARK: Signing in

    struct LoginForm: Decodable {
        var email: String?
        var password: String?
        var next: String?
        var sign_in_token: String?
    }

    /// The sign-in page with a fresh form token, its cookie set, and a button for each
    /// organisation's single sign-on.
    func loginPage(_ page: LoginPage, status: HTTPResponse.Status = .ok) async throws -> Response {
        var page = page
        let (token, cookie) = session.guard.newToken()
        page.token = token
        page.providers = await singleSignOn.buttons(next: page.next)
        page.hasProviders = !page.providers.isEmpty
        var response = try site.page("login", page, status: status)
        response.headers[.setCookie] = cookie
        return response
    }

    @Sendable func loginForm(_ request: Request, context: DashboardContext) async throws -> Response {
        if context.identity != nil { return Self.redirect(Self.safeNext(request.uri.queryParameters["next"].map(String.init))) }
        return try await loginPage(
            LoginPage(
                layout: .signedOut(version: site.version), message: nil, email: "",
                next: Self.safeNext(request.uri.queryParameters["next"].map(String.init))))
    }

    @Sendable func login(_ request: Request, context: DashboardContext) async throws -> Response {
        try session.guard.requireSameSite(request)
        let form = try await Self.form(LoginForm.self, request)
        let next = Self.safeNext(form.next)
        let email = (form.email ?? "").trimmingCharacters(in: .whitespaces)
        func again(_ message: String, _ status: HTTPResponse.Status) async throws -> Response {
            try await loginPage(LoginPage(layout: .signedOut(version: site.version), message: message, email: email, next: next), status: status)
        }
        guard session.guard.tokenMatches(request, form.sign_in_token) else {
            return try await again("This sign-in form has expired; sign in again.", .forbidden)
        }
        guard !email.isEmpty, let password = form.password, !password.isEmpty else {
            return try await again("Enter your email and password.", .badRequest)
        }
        do {
            _ = try await session.signIn(email: email, password: password, request, context)
        } catch let error as APIError where error.code == "invalid_credentials" {
            return try await again("Wrong email or password.", .unauthorized)
        } catch let error as APIError where error.code == "too_many_sign_ins" {
            let wait = error.retryAfter ?? 60
            var response = try await again(
                "Too many failed sign-ins. Try again in \(wait < 120 ? "\(wait) seconds" : "\((wait + 59) / 60) minutes").",
                .tooManyRequests)
            response.headers[HTTPField.Name("Retry-After")!] = String(wait)
            return response
        } catch let error as APIError where error.status.code < 500 {
            return try await again(error.message, error.status)
        }
        return Self.redirect(next)
    }

    /// `/login/sso/start/{organizationId}?next=`: off to the organisation's provider.
    @Sendable func singleSignOnStart(_ request: Request, context: DashboardContext) async throws -> Response {
        let next = Self.safeNext(request.uri.queryParameters["next"].map(String.init))
        do {
            return try await singleSignOn.start(organizationID: try context.path("organizationId"), next: next)
        } catch let failure as OpenIDProviders.Failure {
            return try await loginPage(
                LoginPage(layout: .signedOut(version: site.version), message: "Single sign-on failed: \(failure).", email: "", next: next),
                status: .badGateway)
        }
    }

    /// `/login/sso/callback?code=&state=`: back from the provider; signed in, or told why not.
    @Sendable func singleSignOnCallback(_ request: Request, context: DashboardContext) async throws -> Response {
        var response: Response
        do {
            let (user, next) = try await singleSignOn.finish(request, context: context)
            _ = try await session.startSession(user, request, context)
            response = Self.redirect(next)
        } catch let failure as OpenIDProviders.Failure {
            response = try await loginPage(
                LoginPage(layout: .signedOut(version: site.version), message: "Single sign-on failed: \(failure).", email: "", next: "/profile"),
                status: .badRequest)
        } catch let refusal as APIError where refusal.status.code < 500 {
            response = try await loginPage(
                LoginPage(layout: .signedOut(version: site.version), message: "Single sign-on failed: \(refusal.message).", email: "", next: "/profile"),
                status: refusal.status)
        }
        // The attempt is used up, whatever came of it: its callback cannot be replayed.
        response.headers.append(HTTPField(name: .setCookie, value: singleSignOn.cookie("", maxAge: 0)))
        return response
    }

    struct LogoutForm: Decodable {
        var csrf_token: String?
    }

    @Sendable func logout(_ request: Request, context: DashboardContext) async throws -> Response {
        let form = try await Self.form(LogoutForm.self, request)
        guard let current = context.sessions.session,
            AuthInterceptor.constantTimeEqual(Array((form.csrf_token ?? "").utf8), Array(current.csrfToken.utf8))
        else {
            throw APIError(.forbidden, code: "csrf_token_invalid", message: "This sign-out form has expired; reload the page and try again.")
        }
        context.sessions.clearSession()
        return Self.redirect("/login")
    }

    // MARK: Invitations

    struct InviteForm: Decodable {
        var password: String?
        var confirm: String?
    }

    @Sendable func inviteForm(_ request: Request, context: DashboardContext) async throws -> Response {
        try site.page("invite", InvitePage(layout: .signedOut(version: site.version), message: nil, token: try context.path("token")))
    }

    @Sendable func acceptInvite(_ request: Request, context: DashboardContext) async throws -> Response {
        let token = try context.path("token")
        let form = try await Self.form(InviteForm.self, request)
        func again(_ message: String, _ status: HTTPResponse.Status) throws -> Response {
            try site.page("invite", InvitePage(layout: .signedOut(version: site.version), message: message, token: token), status: status)
        }
        guard let password = form.password, !password.isEmpty else { return try again("Choose a password.", .badRequest) }
        guard password == form.confirm else { return try again("The two passwords differ.", .badRequest) }
        let user: Lumen_Accounts_V1_User
        do {
            user = try await session.acceptInvite(token: token, password: password)
        } catch let error as APIError where error.status.code < 500 {
            return try again(error.message, error.status)
        }
        return try await loginPage(
            LoginPage(
                layout: .signedOut(version: site.version), message: nil, email: user.email, next: "/profile", notice: "Your password is set. Sign in."))
    }

    // MARK: Pages

    /// `?sort=&order=&query=&show_deleted=&page=`: the key table's page (see `KeyTableView`).
    @Sendable func profilePage(_ request: Request, context: DashboardContext) async throws -> Response {
        let person = try context.person
        let query = try ListQuery(request, sorts: KeyObject.sorts, defaultSort: "name", pageable: true)
        async let card = profile.profile(context)
        async let keyTable = keyTable(of: .user(person.userID), query: query, base: "/api/me/keys", action: "/profile", context: context)
        async let modelRows = models.rows(for: .user(person.userID), context: context, includeDisabled: true)
        async let chart = usage.chart(request, owner: .user(person.userID), heading: "Your usage", page: "/profile", context: context)
        let (profileObject, table, modelObjects, usageChart) = try await (card, keyTable, modelRows, chart)
        var layout = try layout(context, name: profileObject.user.displayName)
        layout.onProfile = true
        return try site.page(
            "profile",
            ProfilePage(
                layout: layout, profile: ProfileView(profileObject), keys: table,
                models: ModelTableView(modelObjects, consentBase: "/api/me/models", forClient: false), usage: usageChart))
    }

    @Sendable func clientsPage(_ request: Request, context: DashboardContext) async throws -> Response {
        let list = try await clients.clients(context)
        var layout = try layout(context)
        layout.onClients = true
        return try site.page("clients", ClientsPage(layout: layout, clients: list))
    }

    /// `?sort=&order=&query=&show_deleted=&page=`: the key table's page, as on the profile.
    @Sendable func clientPage(_ request: Request, context: DashboardContext) async throws -> Response {
        let clientID = try context.path("clientId")
        let query = try ListQuery(request, sorts: KeyObject.sorts, defaultSort: "name", pageable: true)
        let path = PathSegment.encode(clientID)
        async let found = clients.detail(clientID, context: context)
        async let keyTable = keyTable(
            of: .client(clientID), query: query, base: "/api/clients/\(path)/keys", action: "/clients/\(path)", context: context)
        async let modelRows = models.rows(for: .client(clientID), context: context, includeDisabled: true)
        async let chart = usage.chart(request, owner: .client(clientID), heading: "Usage", page: "/clients/\(path)", context: context)
        // The client's own answer first: a client of another organisation, or one the person
        // may not see, says so (404 or 403) rather than whatever the key list says.
        let detail = try await found
        let (table, rows, usageChart) = try await (keyTable, modelRows, chart)
        var layout = try layout(context)
        layout.onClients = true
        return try site.page(
            "client",
            ClientPage(
                layout: layout, detail: ClientDetailObject(detail, keys: [], coins: clients.coins), keys: table, models: rows,
                usage: usageChart))
    }

    /// One page of `owner`'s key table; when it is empty, how many keys they have at all.
    func keyTable(of owner: Lumen_Common_V1_PrincipalRef, query: ListQuery, base: String, action: String, context: DashboardContext)
        async throws -> KeyTableView
    {
        let page = try await keys.page(of: owner, query: query, limit: KeyTableView.pageSize, context: context)
        let everything = page.total == 0 ? try await keys.count(of: owner, context: context) : nil
        return KeyTableView(page, query: query, everything: everything, base: base, action: action)
    }

    /// An administrator sees the organisation's use of the model; others their own.
    @Sendable func modelPage(_ request: Request, context: DashboardContext) async throws -> Response {
        let name = try context.path("model")
        let person = try context.person
        let detail = try await models.detail(name, context: context)
        let chart = try await usage.chart(
            request, owner: person.isAdmin ? nil : .user(person.userID), model: detail.name,
            heading: person.isAdmin ? "The organisation's usage" : "Your usage", page: "/models/\(PathSegment.encode(detail.name))",
            context: context)
        return try site.page("model", ModelPage(layout: try layout(context), detail: detail, usage: chart))
    }

    /// `/activity?keyId=…&status=…&page=…`: the request log as the person may see it; a refused
    /// filter is said on the page.
    @Sendable func activityPage(_ request: Request, context: DashboardContext) async throws -> Response {
        let values = try RequestRules.query(request.uri.queryParameters, known: RequestLogAPI.parameters, lenient: true)
        let metadata = try context.acting(users.services)
        let result: Result<Lumen_Ledger_V1_ListRequestsResponse, APIError>
        do {
            var message = try RequestLogAPI.request(values)
            message.page.limit = 50
            result = .success(try await RequestLogAPI.fetch(message, ledger: users.services.ledger, metadata: metadata))
        } catch let refusal as APIError where refusal.status.code < 500 {
            result = .failure(refusal)
        }
        let names = await usage.names(of: (try? result.get())?.lines ?? [], metadata: metadata)
        // Administrators set the organisation's capture here.
        var capture: ActivityPage.Capture?
        let person = try context.person
        if person.isAdmin {
            let rules = try await APIError.translating { try await users.services.ledger.listCaptures(.init(), metadata: metadata).rules }
            let rule = rules.first { $0.owner.type == .organization }
            capture = ActivityPage.Capture(
                url: "/api/captures/organization/" + PathSegment.encode(person.organizationID), enabled: rule?.enabled ?? false,
                days: Int(rule?.retentionDays ?? 7), kib: Int((rule?.maxBytes ?? 65_536) / 1_024),
                others: rules.contains { $0.owner.type != .organization }
                    ? "\(rules.filter { $0.owner.type != .organization }.count) have one" : nil)
        }
        var layout = try layout(context)
        layout.onActivity = true
        return try site.page(
            "activity",
            ActivityPage(
                layout: layout, values: values, page: (try? RequestRules.page(values)).flatMap { $0 } ?? 1, result: result,
                names: names, coins: usage.coins, capture: capture))
    }

    /// `/activity/{requestId}`: a captured request's prompt and answer.
    @Sendable func capturePage(_ request: Request, context: DashboardContext) async throws -> Response {
        let capture = try await usage.captured(try context.path("requestId"), context: context)
        var layout = try layout(context)
        layout.onActivity = true
        return try site.page("capture", CapturePage(layout: layout, capture: capture))
    }

    /// `/usage?days=`: the organisation's usage over time and its budget alerts (administrators).
    @Sendable func usagePage(_ request: Request, context: DashboardContext) async throws -> Response {
        guard try context.person.isAdmin else {
            throw APIError(.forbidden, code: "admin_required", message: "Only administrators see the organisation's usage.")
        }
        async let chart = usage.chart(request, owner: nil, heading: "The organisation's usage", page: "/usage", context: context)
        async let section = alerts.section(context)
        var layout = try layout(context)
        layout.onUsage = true
        return try site.page("usage", UsagePage(layout: layout, usage: try await chart, alerts: try await section))
    }

    /// `?query=`: the first 100 people whose email, name or a word of it starts with it.
    @Sendable func usersPage(_ request: Request, context: DashboardContext) async throws -> Response {
        guard try context.person.isAdmin else {
            throw APIError(.forbidden, code: "admin_required", message: "Only administrators manage users.")
        }
        let query = request.uri.queryParameters["query"].map { String($0).trimmingCharacters(in: .whitespaces) } ?? ""
        let metadata = try context.acting(users.services)
        async let listed = APIError.translating {
            try await users.services.accounts.listUsers(
                .with {
                    $0.search = query
                    $0.page = .with {
                        $0.page = 1
                        $0.limit = 100
                    }
                }, metadata: metadata)
        }
        async let groups = users.groups(context)
        let (response, groupList) = try await (listed, groups)
        var layout = try layout(context)
        layout.onUsers = true
        return try site.page(
            "users",
            UsersPage(
                layout: layout, query: query, users: response.users.map(UserObject.init), total: response.pageInfo.total,
                groups: groupList))
    }

    /// `/audit?action=…&actorId=…&targetId=…&startDate=…&endDate=…&page=…`: the organisation's
    /// audit log (administrators); a refused filter is said on the page.
    @Sendable func auditPage(_ request: Request, context: DashboardContext) async throws -> Response {
        guard try context.person.isAdmin else {
            throw APIError(.forbidden, code: "admin_required", message: "Only administrators read the audit log.")
        }
        let values = try RequestRules.query(request.uri.queryParameters, known: AuditLogReader.parameters, lenient: true)
        let metadata = try context.acting(users.services)
        let result: Result<AuditLogPage, APIError>
        do {
            let query = try AuditLogReader.Query(values)
            result = .success(try await APIError.translating { try await users.services.auditLog.page(query, metadata: metadata) })
        } catch let refusal as APIError where refusal.status == .badRequest {
            result = .failure(refusal)
        }
        var layout = try layout(context)
        layout.onAudit = true
        return try site.page(
            "audit", AuditPage(layout: layout, values: values, page: (try? RequestRules.page(values)).flatMap { $0 } ?? 1, result: result))
    }

    /// `?c=<conversation>`: the web chat, with that conversation open.
    @Sendable func chatPage(_ request: Request, context: DashboardContext) async throws -> Response {
        let person = try context.person
        let open = request.uri.queryParameters["c"].map(String.init)
        async let list = chat.list(request, context: context)
        async let rows = models.rows(for: .user(person.userID), context: context, includeDisabled: false)
        let conversation = try await open.asyncMap { try await chat.conversation($0, context) }
        let (conversations, models) = try await (list.value.data, rows)
        var layout = try layout(context)
        layout.onChat = true
        return try site.page(
            "chat",
            ChatPage(layout: layout, conversations: conversations, open: conversation.map(ConversationDetail.init), models: models))
    }

    // MARK: Helpers

    /// The frame of a signed-in page; the name in the corner is the session's (looked up once
    /// per request by `PersonDirectory`, which the profile page already has in hand).
    func layout(_ context: DashboardContext, name: String? = nil) throws -> LayoutView {
        let person = try context.person
        return LayoutView(
            signedIn: true, name: name ?? context.identity?.displayName ?? "", isAdmin: person.isAdmin,
            csrfToken: context.sessions.session?.csrfToken ?? "", version: site.version)
    }

    static func redirect(_ location: String) -> Response {
        Response(status: .seeOther, headers: [.location: location, .cacheControl: "no-store"])
    }

    /// Where to go after signing in: a path of this site, or the profile. Only printable ASCII
    /// without a backslash passes — browsers drop tabs and newlines from a URL and read `\` as
    /// `/`, so `/\t/evil.test` or `/\\evil.test` would become `//evil.test`, another site — and
    /// the path must not start with `//` (a scheme-relative URL) or lead back to the sign-in.
    static func safeNext(_ next: String?) -> String {
        guard let next, next.utf8.count <= 2_048, next.hasPrefix("/"), !next.hasPrefix("//"), !next.hasPrefix("/login"),
            next.utf8.allSatisfy({ (0x21...0x7E).contains($0) && $0 != UInt8(ascii: "\\") })
        else {
            return "/profile"
        }
        return next
    }

    /// A form body (`application/x-www-form-urlencoded`, at most 64 KiB).
    static func form<Form: Decodable>(_ type: Form.Type, _ request: Request) async throws -> Form {
        let body = try await request.body.collect(upTo: 64 * 1024)
        do {
            return try URLEncodedFormDecoder().decode(Form.self, from: String(buffer: body))
        } catch {
            throw APIError.invalid("invalid_form", "the form could not be read")
        }
    }
}

/// In front of the pages that need a person: without a session, a redirect to `/login` that
/// comes back here afterwards.
struct SignedInPage: RouterMiddleware {
    typealias Context = DashboardContext

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard context.identity != nil, context.sessions.session != nil else {
            guard request.method == .get || request.method == .head else { return PagesController.redirect("/login") }
            let path = request.uri.path + (request.uri.query.map { "?" + $0 } ?? "")
            let encoded = path.addingPercentEncoding(withAllowedCharacters: PathSegment.allowed.union(CharacterSet(charactersIn: "/"))) ?? "/profile"
            return PagesController.redirect("/login?next=" + encoded)
        }
        return try await next(request, context)
    }
}

/// Errors on pages as pages: the message and the status, in the site's frame.
struct PageErrors: RouterMiddleware {
    typealias Context = DashboardContext
    let site: Site

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as APIError {
            let layout = LayoutView(
                signedIn: context.identity != nil, name: context.identity?.displayName ?? "", isAdmin: context.identity?.person.isAdmin ?? false,
                csrfToken: context.sessions.session?.csrfToken ?? "", version: site.version)
            return try Self.page(for: error, layout: layout, site: site)
        }
    }

    /// The error page for `error`: a heading for its status, its message, its status.
    static func page(for error: APIError, layout: LayoutView, site: Site) throws -> Response {
        let heading =
            switch error.status {
            case .notFound: "Not found"
            case .forbidden: "Not allowed"
            case .unauthorized: "Please sign in"
            default: error.status.code >= 500 ? "Something went wrong" : "That did not work"
            }
        return try site.page("error", ErrorPage(layout: layout, heading: heading, message: error.message), status: error.status)
    }
}

extension Optional {
    func asyncMap<T>(_ transform: (Wrapped) async throws -> T) async rethrows -> T? {
        guard let value = self else { return nil }
        return try await transform(value)
    }
}

/// A page nobody serves, asked for by a browser (a GET or HEAD that accepts `text/html`,
/// outside `/v1/`, `/api/` and `/static/`): the HTML "Not found" page with status 404. API
/// clients keep the JSON error (`not_found`).
struct BrowserNotFound: RouterMiddleware {
    typealias Context = DashboardContext
    let site: Site

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as HTTPError where error.status == .notFound && Self.wantsPage(request) {
            return try PageErrors.page(
                for: APIError(.notFound, code: "not_found", message: "There is no page at \(request.uri.path)."),
                layout: .signedOut(version: site.version), site: site)
        }
    }

    static func wantsPage(_ request: Request) -> Bool {
        guard request.method == .get || request.method == .head else { return false }
        let path = request.uri.path
        for api in ["/v1", "/api", "/static"] where path == api || path.hasPrefix(api + "/") { return false }
        return request.headers[.accept]?.contains("text/html") == true
    }
}
