import Hummingbird
import HummingbirdAuth
import RPCSupport

/// What a dashboard session holds (in the accounts service's session store, by the SHA-256 of
/// its id): who signed in, and the token that state-changing requests must send back.
public struct DashboardSession: Codable, Sendable, Equatable {
    public var userID: String
    public var organizationID: String
    /// Sent back in `X-CSRF-Token` by every state-changing `/api` request.
    public var csrfToken: String

    enum CodingKeys: String, CodingKey {
        case userID = "user_id"
        case organizationID = "organization_id"
        case csrfToken = "csrf_token"
    }
}

/// The request context of Lumen's HTTP port: Hummingbird's, with the dashboard's session and,
/// once the session is resolved, the person signed in (identity).
public typealias DashboardContext = BasicSessionRequestContext<DashboardSession, SignedInPerson>
