import HTTPTypes
import Hummingbird
import NIOCore
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

/// The request context of Lumen's HTTP port: Hummingbird's, with the dashboard's session, the
/// person signed in once the session is resolved (identity), and the connection's peer.
public struct DashboardContext: AuthRequestContext, SessionRequestContext, RemoteAddressRequestContext, RequestContext {
    public var coreContext: CoreRequestContextStorage
    public var identity: SignedInPerson?
    public let sessions: SessionContext<DashboardSession>
    /// The connection, whose peer is read only when asked for (sign-in attempts).
    private let channel: any Channel

    /// The connection's peer (nil in tests without a socket).
    public var remoteAddress: SocketAddress? { channel.remoteAddress }

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        identity = nil
        sessions = .init()
        channel = source.channel
    }

    /// Who a sign-in attempt is throttled as: the peer's IP address — or, when the peer is this
    /// machine (a reverse proxy beside Lumen), the last address the proxy appended to
    /// `X-Forwarded-For`. A peer elsewhere cannot choose its address that way.
    func clientAddress(_ request: Request) -> String {
        let peer = remoteAddress?.ipAddress ?? ""
        let loopback = peer.hasPrefix("127.") || peer == "::1" || peer.hasPrefix("::ffff:127.")
        if loopback, let forwarded = request.headers[HTTPField.Name("X-Forwarded-For")!],
            let last = forwarded.split(separator: ",").last?.trimmingCharacters(in: .whitespaces), !last.isEmpty
        {
            return last
        }
        return peer
    }
}
