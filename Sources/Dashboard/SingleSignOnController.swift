import Foundation
import Gateway
import HTTPTypes
import Hummingbird
import LumenAPI
import RPCSupport
import SharedRules

/// Signing in through an organisation's OpenID Connect provider: the authorization code flow
/// with PKCE, `state` and `nonce`. `start` sends the browser to the provider with the attempt
/// sealed in a cookie; `finish` takes the code back, checks the state against that cookie (used
/// once), exchanges the code, verifies the ID token (`OpenIDProviders`) and lets the accounts
/// service sign the person in under the organisation's rules.
struct SingleSignOnController: Sendable {
    let accounts: any Lumen_Accounts_V1_AccountsService.ClientProtocol
    let internalToken: String
    let providers: OpenIDProviders
    let publicURL: Dashboard.PublicURL
    let secure: Bool
    let clock: WallClock
    /// The gateway's environment, where the client secrets are.
    let environment: [String: String]

    /// Where the provider sends the browser back.
    var redirectURI: String { publicURL.value + SingleSignOnAttempt.path + "/callback" }

    /// A "Sign in with …" button for each organisation's provider.
    func buttons(next: String) async -> [LoginPage.Provider] {
        let entries = (try? await accounts.listSingleSignOns(.init(), metadata: .bearer(internalToken)).entries) ?? []
        return entries.map { entry in
            var link = SingleSignOnAttempt.path + "/start/" + PathSegment.encode(entry.organizationID)
            if next != "/profile" { link += "?next=" + PathSegment.encode(next) }
            return LoginPage.Provider(
                label: "Sign in with \(entry.sso.displayName)", organization: entry.organizationName, url: link)
        }
    }

    /// The organisation's setting, if it has single sign-on.
    func setting(_ organizationID: String) async throws -> Lumen_Accounts_V1_SingleSignOn? {
        let found = try await APIError.translating {
            try await accounts.getSingleSignOn(.with { $0.organizationID = organizationID }, metadata: .bearer(internalToken))
        }
        return found.configured ? found.sso : nil
    }

    /// The redirect to the provider's authorization endpoint, with the attempt's cookie.
    func start(organizationID: String, next: String) async throws -> Response {
        guard let sso = try await setting(organizationID) else {
            throw OpenIDProviders.Failure(description: "this organisation does not sign in through a provider")
        }
        let discovery = try await providers.discovery(sso.issuer)
        let attempt = SingleSignOnAttempt.new(organizationID: organizationID, next: next, now: clock.nowMillis)
        var query = URLComponents(string: discovery.authorizationEndpoint) ?? URLComponents()
        query.queryItems = (query.queryItems ?? []) + [
            URLQueryItem(name: "response_type", value: "code"), URLQueryItem(name: "client_id", value: sso.clientID),
            URLQueryItem(name: "redirect_uri", value: redirectURI), URLQueryItem(name: "scope", value: "openid email profile"),
            URLQueryItem(name: "state", value: attempt.state), URLQueryItem(name: "nonce", value: attempt.nonce),
            URLQueryItem(name: "code_challenge", value: attempt.challenge), URLQueryItem(name: "code_challenge_method", value: "S256"),
        ]
        guard let location = query.url?.absoluteString else {
            throw OpenIDProviders.Failure(description: "the provider's authorization endpoint is not a URL")
        }
        let sealed = try attempt.sealed(with: SingleSignOnAttempt.key(internalToken))
        return Response(
            status: .seeOther,
            headers: [
                .location: location, .cacheControl: "no-store",
                // Lax: the provider's redirect back is a top-level navigation from its site.
                .setCookie: cookie(sealed, maxAge: Int(SingleSignOnAttempt.lifetime / 1000)),
            ])
    }

    /// The person the provider vouches for, and where to go, once every check holds.
    func finish(_ request: Request, context: DashboardContext) async throws -> (user: Lumen_Accounts_V1_User, next: String) {
        let query = request.uri.queryParameters
        if let error = query["error"] {
            let detail = query["error_description"].map { ": \($0)" } ?? ""
            throw OpenIDProviders.Failure(description: "the provider did not sign you in (\(error)\(detail))")
        }
        guard let value = request.cookies[SingleSignOnAttempt.cookieName]?.value,
            let attempt = SingleSignOnAttempt.unsealed(value, with: SingleSignOnAttempt.key(internalToken)),
            attempt.expiresAt > clock.nowMillis
        else {
            throw OpenIDProviders.Failure(description: "this sign-in was not started in this browser, was used already or took too long")
        }
        guard let state = query["state"], AuthInterceptor.constantTimeEqual(Array(String(state).utf8), Array(attempt.state.utf8))
        else {
            throw OpenIDProviders.Failure(description: "the sign-in's state does not match the one this browser started")
        }
        guard let code = query["code"], !code.isEmpty else {
            throw OpenIDProviders.Failure(description: "the provider sent no authorization code")
        }
        guard let sso = try await setting(attempt.organizationID) else {
            throw OpenIDProviders.Failure(description: "this organisation no longer signs in through a provider")
        }
        var secret: String?
        if !sso.clientSecretEnv.isEmpty {
            guard let value = environment[sso.clientSecretEnv], !value.isEmpty else {
                throw OpenIDProviders.Failure(
                    description: "the gateway has no client secret in \(sso.clientSecretEnv); its operator sets that variable")
            }
            secret = value
        }
        let token = try await providers.idToken(
            code: String(code), verifier: attempt.verifier, redirectURI: redirectURI, sso: sso, secret: secret)
        let claims = try await providers.verify(token, sso: sso, nonce: attempt.nonce, now: Date(timeIntervalSince1970: Double(clock.nowMillis) / 1000))
        let response = try await APIError.translating {
            try await accounts.signInWithSingleSignOn(
                .with {
                    $0.organizationID = attempt.organizationID
                    $0.claimsJson = claims
                    $0.clientAddress = context.clientAddress(request)
                }, metadata: .bearer(internalToken))
        }
        return (response.user, attempt.next)
    }

    /// The attempt's cookie (`maxAge` 0: gone).
    func cookie(_ value: String, maxAge: Int) -> String {
        "\(SingleSignOnAttempt.cookieName)=\(value); Path=\(SingleSignOnAttempt.path); Max-Age=\(maxAge); HttpOnly; SameSite=Lax"
            + (secure ? "; Secure" : "")
    }
}
