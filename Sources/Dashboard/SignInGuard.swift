import Foundation
import Gateway
import HTTPTypes
import Hummingbird
import RPCSupport
import SharedRules

/// Keeps another site from signing a browser in (login CSRF: a cross-site form that signs the
/// victim into the attacker's account, whose conversations then receive what the victim types).
///
/// - A sign-in a browser sent from another site is refused: `Sec-Fetch-Site` must be
///   `same-origin` or `none` when sent, and `Origin`, when sent, must be this site's (the public
///   URL's, or the `Host` the request was sent to).
/// - The sign-in form carries a token that must equal its cookie (`SameSite=Strict`, on
///   `/login` only): a page elsewhere can neither read nor send it. `POST /api/session` takes
///   JSON only, which a cross-site form cannot send without the browser asking first.
struct SignInGuard: Sendable {
    /// The public URL (`scheme://host[:port]`), an origin a sign-in may come from.
    let publicURL: Dashboard.PublicURL
    /// Cookies marked `Secure` (people reach Lumen over HTTPS).
    let secure: Bool

    static let cookieName = "lumen_sign_in"

    /// The public URL as an origin, lower-cased.
    var publicOrigin: String { publicURL.value.lowercased() }

    static let crossSite = APIError(
        .forbidden, code: "cross_site_sign_in", message: "a sign-in must come from Lumen's own pages, not from another site")

    /// Throws `crossSite` for a request a browser sent from another site.
    func requireSameSite(_ request: Request) throws(APIError) {
        if let site = request.headers[HTTPField.Name("Sec-Fetch-Site")!]?.lowercased(), site != "same-origin", site != "none" {
            throw Self.crossSite
        }
        if let origin = request.headers[HTTPField.Name("Origin")!]?.lowercased() {
            let host = request.head.authority?.lowercased() ?? ""
            guard origin == publicOrigin || (!host.isEmpty && (origin == "http://" + host || origin == "https://" + host)) else {
                throw Self.crossSite
            }
        }
    }

    /// A fresh form token and the `Set-Cookie` value that goes with it.
    func newToken() -> (token: String, cookie: String) {
        let token = Identifier.secret(count: 32)
        return (token, "\(Self.cookieName)=\(token); Path=/login; Max-Age=3600; HttpOnly; SameSite=Strict" + (secure ? "; Secure" : ""))
    }

    /// Whether the form's token is the one its cookie holds.
    func tokenMatches(_ request: Request, _ token: String?) -> Bool {
        guard let token, !token.isEmpty, let cookie = request.cookies[Self.cookieName]?.value else { return false }
        return AuthInterceptor.constantTimeEqual(Array(token.utf8), Array(cookie.utf8))
    }
}
