import Foundation
import GRPCCore
import Gateway
import HTTPTypes
import Hummingbird
import RPCSupport

/// In front of every `/api` route that needs a person: 401 `not_signed_in` without a valid
/// session, and for a request that changes something (not GET, HEAD or OPTIONS) 403
/// `csrf_token_invalid` unless `X-CSRF-Token` carries the session's token.
struct SignedIn: RouterMiddleware {
    typealias Context = DashboardContext

    static let csrfHeader = HTTPField.Name("X-CSRF-Token")!

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard context.identity != nil, let session = context.sessions.session else {
            throw APIError(.unauthorized, code: "not_signed_in", message: "sign in first: POST /api/session {\"email\", \"password\"}")
        }
        if ![.get, .head, .options].contains(request.method) {
            guard let token = request.headers[Self.csrfHeader],
                AuthInterceptor.constantTimeEqual(Array(token.utf8), Array(session.csrfToken.utf8))
            else {
                throw APIError(
                    .forbidden, code: "csrf_token_invalid",
                    message: "send the session's csrf_token (from sign-in or GET /api/me) in the X-CSRF-Token header")
            }
        }
        return try await next(request, context)
    }
}

extension DashboardContext {
    /// The person signed in; only under `SignedIn`, which guarantees one.
    var person: Person {
        get throws {
            guard let identity else { throw APIError(.unauthorized, code: "not_signed_in", message: "sign in first") }
            return identity.person
        }
    }
}

extension DashboardContext {
    /// Metadata with which the facade calls the services as the person signed in.
    func acting(_ services: GatewayServices) throws -> Metadata {
        .acting(as: try person, internalToken: services.internalToken)
    }

    /// A path parameter, percent-decoded (an id in a URL is the id itself).
    func path(_ name: String) throws -> String {
        let raw = try parameters.require(name)
        return raw.removingPercentEncoding ?? raw
    }
}
