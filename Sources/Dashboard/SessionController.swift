import Foundation
import GRPCCore
import Gateway
import HTTPTypes
import Hummingbird
import HummingbirdAuth
import LumenAPI
import RPCSupport
import SharedRules
import WireFormats

/// `/api/session`, `/api/me` and invitations: signing in and out, who is signed in, and an
/// administrator's one-time link for a user to set a password.
struct SessionController: Sendable {
    let accounts: any Lumen_Accounts_V1_AccountsService.ClientProtocol
    let internalToken: String
    let sessions: SessionStorage<DashboardSession>
    let people: PersonDirectory
    /// Keeps other sites from signing a browser in.
    let `guard`: SignInGuard
    /// Where people reach Lumen: invitation links start with it.
    let publicURL: Dashboard.PublicURL

    func addPublicRoutes(to group: RouterGroup<DashboardContext>) {
        group.post("session", use: signIn)
        group.post("invites/{token}", use: acceptInvite)
    }

    func addRoutes(to group: RouterGroup<DashboardContext>) {
        group.delete("session", use: signOut)
        group.get("me", use: me)
        group.post("users/{userId}/invite", use: invite)
    }

    /// `{"email", "password"}` → the session cookie and `{"user", "managed_client_ids", "csrf_token"}`.
    @Sendable func signIn(_ request: Request, context: DashboardContext) async throws -> JSONResponse<SessionObject> {
        try `guard`.requireSameSite(request)
        // JSON only: a cross-site form cannot send it without the browser asking first.
        guard let type = request.headers[.contentType]?.lowercased(), type.hasPrefix("application/json") else {
            throw APIError(.unsupportedMediaType, code: "json_required", message: "send the sign-in as JSON (Content-Type: application/json)")
        }
        let body = try await Body.object(request)
        return JSONResponse(try await signIn(email: try Body.text(body, "email"), password: try Body.text(body, "password"), request, context))
    }

    /// Checks the password with the accounts service and starts a session (the cookie goes out
    /// with the response); the sign-in page and `POST /api/session` both come here.
    func signIn(email: String, password: String, _ request: Request, _ context: DashboardContext) async throws -> SessionObject {
        let response: Lumen_Accounts_V1_SignInResponse
        do {
            response = try await APIError.translating {
                try await accounts.signIn(
                    .with {
                        $0.email = email
                        $0.password = password
                        $0.clientAddress = context.clientAddress(request)
                    }, metadata: .bearer(internalToken))
            }
        }
        return try await startSession(response.user, request, context)
    }

    /// Starts a session for `user`, signed in (with a password or through a provider): it
    /// replaces the session the browser had (if any), whose id stops working.
    func startSession(_ user: Lumen_Accounts_V1_User, _ request: Request, _ context: DashboardContext) async throws -> SessionObject {
        if sessions.getId(request: request) != nil { _ = try? await sessions.delete(request: request) }
        let session = DashboardSession(userID: user.id, organizationID: user.organizationID, csrfToken: Identifier.secret(count: 40))
        context.sessions.createSession(session)
        let managed = try await people.person(session)?.person.managedClientIDs.sorted() ?? []
        return SessionObject(user: UserObject(user), managedClientIDs: managed, csrfToken: session.csrfToken)
    }

    /// Ends the session; its cookie is expired.
    @Sendable func signOut(_ request: Request, context: DashboardContext) async throws -> Response {
        context.sessions.clearSession()
        return Response(status: .noContent)
    }

    @Sendable func me(_ request: Request, context: DashboardContext) async throws -> JSONResponse<SessionObject> {
        let person = try context.person
        guard let session = context.sessions.session else { throw APIError(.unauthorized, code: "not_signed_in", message: "sign in first") }
        let response = try await APIError.translating {
            try await accounts.getUser(.with { $0.userID = person.userID }, metadata: .acting(as: person, internalToken: internalToken))
        }
        return JSONResponse(
            SessionObject(user: UserObject(response.user), managedClientIDs: response.managedClientIds, csrfToken: session.csrfToken))
    }

    /// An administrator's one-time link (24 hours) for a user to set their password.
    @Sendable func invite(_ request: Request, context: DashboardContext) async throws -> JSONResponse<InviteObject> {
        let person = try context.person
        let userID = try context.path("userId")
        let response = try await APIError.translating {
            try await accounts.createInvite(.with { $0.userID = userID }, metadata: .acting(as: person, internalToken: internalToken))
        }
        // From the configured public URL, never from the request's headers (which a caller chooses).
        return JSONResponse(
            InviteObject(
                url: "\(publicURL.value)/invite/\(response.token)", token: response.token,
                expiresAt: RFC3339.format(millis: response.expiresAt.millis)))
    }

    /// `{"password"}`: sets the invited user's password and uses the invitation up.
    @Sendable func acceptInvite(_ request: Request, context: DashboardContext) async throws -> JSONResponse<[String: UserObject]> {
        let token = try context.path("token")
        let password = try Body.text(try await Body.object(request), "password")
        return JSONResponse(["user": UserObject(try await acceptInvite(token: token, password: password))])
    }

    /// Sets the password of the invitation's user and uses the invitation up.
    func acceptInvite(token: String, password: String) async throws -> Lumen_Accounts_V1_User {
        try await APIError.translating {
            try await accounts.acceptInvite(
                .with {
                    $0.token = token
                    $0.password = password
                }, metadata: .bearer(internalToken))
        }.user
    }
}
