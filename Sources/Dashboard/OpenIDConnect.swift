import Crypto
import Foundation
import Gateway
import JWTKit
import LumenAPI
import NIOCore
import NIOHTTP1
import RPCSupport
import SharedRules
import Synchronization
import UpstreamClient

/// The gateway's side of OpenID Connect: each provider's discovery document and signing keys
/// (fetched from the issuer, kept, and fetched again when a token names a key not seen yet),
/// the exchange of an authorization code for tokens, and the check of the ID token — its
/// signature (jwt-kit), issuer, audience, expiry and nonce. What the verified claims mean for
/// the organisation is the accounts service's to decide.
final class OpenIDProviders: Sendable {
    /// Why a sign-in through a provider failed, as the person is told.
    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    struct Discovery: Sendable {
        var authorizationEndpoint: String
        var tokenEndpoint: String
        var jwksURI: String
    }

    let client: UpstreamClient
    /// How far a token's `exp` may lie behind this clock (the provider's may differ).
    static let leeway: TimeInterval = 60
    /// The longest a provider's document or answer may be.
    static let maxBytes = 1 << 20

    private let discoveries = Mutex<[String: Discovery]>([:])
    private let keys = Mutex<[String: (keys: JWTKeyCollection, kids: Set<String>, fetchedAt: ContinuousClock.Instant)]>([:])

    init(client: UpstreamClient = UpstreamClient()) {
        self.client = client
    }

    /// `{issuer}/.well-known/openid-configuration`, whose `issuer` must be the issuer itself.
    func discovery(_ issuer: String) async throws -> Discovery {
        if let known = discoveries.withLock({ $0[issuer] }) { return known }
        let document = try await json(get: issuer + "/.well-known/openid-configuration")
        guard (document["issuer"] as? String).map({ $0.hasSuffix("/") ? String($0.dropLast()) : $0 }) == issuer,
            let authorization = document["authorization_endpoint"] as? String, let token = document["token_endpoint"] as? String,
            let jwks = document["jwks_uri"] as? String
        else {
            throw Failure(description: "the provider's discovery document at \(issuer) does not describe \(issuer)")
        }
        let found = Discovery(authorizationEndpoint: authorization, tokenEndpoint: token, jwksURI: jwks)
        discoveries.withLock { $0[issuer] = found }
        return found
    }

    /// Exchanges `code` at the provider's token endpoint; the ID token it answers with.
    func idToken(
        code: String, verifier: String, redirectURI: String, sso: Lumen_Accounts_V1_SingleSignOn, secret: String?
    ) async throws -> String {
        let endpoint = try await discovery(sso.issuer).tokenEndpoint
        var form = [
            ("grant_type", "authorization_code"), ("code", code), ("redirect_uri", redirectURI), ("client_id", sso.clientID),
            ("code_verifier", verifier),
        ]
        if let secret { form.append(("client_secret", secret)) }
        let body = form.map { "\($0)=\(Self.formEncoded($1))" }.joined(separator: "&")
        var headers = HTTPHeaders()
        headers.add(name: "content-type", value: "application/x-www-form-urlencoded")
        headers.add(name: "accept", value: "application/json")
        let (status, answer) = try await fetch(
            UpstreamHTTPRequest(url: endpoint, method: .POST, headers: headers, body: ByteBuffer(string: body)))
        let object = (try? JSONSerialization.jsonObject(with: Data(answer))) as? [String: Any] ?? [:]
        guard status == .ok, let token = object["id_token"] as? String else {
            let reason = [object["error"] as? String, object["error_description"] as? String].compactMap { $0 }.joined(separator: ": ")
            throw Failure(description: "the provider refused the sign-in's code (\(reason.isEmpty ? "status \(status.code)" : reason))")
        }
        return token
    }

    /// The claims of `token` once its signature (a key the provider publishes), issuer,
    /// audience, expiry and nonce hold; `Failure` saying which does not.
    func verify(_ token: String, sso: Lumen_Accounts_V1_SingleSignOn, nonce: String, now: Date = Date()) async throws -> String {
        // jwt-kit falls back to any key for a kid it does not hold: the kid is checked here, and
        // the provider's keys fetched again (once) when it names one not seen yet (a rotation).
        let kid = Self.keyID(of: token)
        var known = try await keys(for: sso.issuer, refresh: false)
        if let kid, !known.kids.contains(kid) {
            known = try await keys(for: sso.issuer, refresh: true)
            guard known.kids.contains(kid) else {
                throw Failure(description: "the ID token is signed with a key the provider does not publish (unknown kid)")
            }
        }
        let claims: IDTokenClaims
        do {
            claims = try await known.keys.verify(token, as: IDTokenClaims.self)
        } catch {
            throw Failure(description: "the ID token's signature does not verify")
        }
        guard claims.iss.value == sso.issuer || claims.iss.value == sso.issuer + "/" else {
            throw Failure(description: "the ID token was issued by \(claims.iss.value), not \(sso.issuer)")
        }
        guard claims.aud.value.contains(sso.clientID) else {
            throw Failure(description: "the ID token is for another client (aud), not \(sso.clientID)")
        }
        guard claims.exp.value.addingTimeInterval(Self.leeway) > now else {
            throw Failure(description: "the ID token has expired")
        }
        guard let sent = claims.nonce, AuthInterceptor.constantTimeEqual(Array(sent.utf8), Array(nonce.utf8)) else {
            throw Failure(description: "the ID token does not answer this sign-in (nonce)")
        }
        // The claims as the provider wrote them, for the organisation's rules.
        let parts = token.split(separator: ".")
        guard parts.count == 3, let payload = Self.base64URLDecoded(String(parts[1])) else {
            throw Failure(description: "the ID token is not a signed JWT")
        }
        return String(decoding: payload, as: UTF8.self)
    }

    /// The provider's keys and their ids, fetched at first use, again on `refresh` (at most
    /// every 10 seconds).
    private func keys(for issuer: String, refresh: Bool) async throws -> (keys: JWTKeyCollection, kids: Set<String>) {
        if let known = keys.withLock({ $0[issuer] }), !refresh || known.fetchedAt.duration(to: .now) < .seconds(10) {
            return (known.keys, known.kids)
        }
        let uri = try await discovery(issuer).jwksURI
        let (status, body) = try await fetch(UpstreamHTTPRequest(url: uri))
        guard status == .ok else { throw Failure(description: "the provider's keys at \(uri) answered \(status.code)") }
        let collection = JWTKeyCollection()
        let listed = (try? JSONSerialization.jsonObject(with: Data(body))) as? [String: Any]
        let kids = Set((listed?["keys"] as? [[String: Any]] ?? []).compactMap { $0["kid"] as? String })
        do {
            try await collection.add(jwksJSON: String(decoding: body, as: UTF8.self))
        } catch {
            throw Failure(description: "the provider's keys at \(uri) could not be read: \(error)")
        }
        keys.withLock { $0[issuer] = (collection, kids, .now) }
        return (collection, kids)
    }

    /// The `kid` of a JWT's header, if it names one.
    static func keyID(of token: String) -> String? {
        guard let header = token.split(separator: ".").first.flatMap({ base64URLDecoded(String($0)) }),
            let object = (try? JSONSerialization.jsonObject(with: header)) as? [String: Any]
        else { return nil }
        return object["kid"] as? String
    }

    private func json(get url: String) async throws -> [String: Any] {
        var headers = HTTPHeaders()
        headers.add(name: "accept", value: "application/json")
        let (status, body) = try await fetch(UpstreamHTTPRequest(url: url, headers: headers))
        guard status == .ok, let object = (try? JSONSerialization.jsonObject(with: Data(body))) as? [String: Any] else {
            throw Failure(description: "the provider's discovery document at \(url) could not be read (status \(status.code))")
        }
        return object
    }

    private func fetch(_ request: UpstreamHTTPRequest) async throws -> (HTTPResponseStatus, [UInt8]) {
        var request = request
        request.headers.add(name: "user-agent", value: "Lumen")
        do {
            let response = try await client.execute(request, headTimeout: .seconds(10))
            var body = try await response.body.collect(upTo: Self.maxBytes)
            return (response.status, body.readBytes(length: body.readableBytes) ?? [])
        } catch {
            throw Failure(description: "the provider at \(request.url) could not be reached: \(error)")
        }
    }

    static func formEncoded(_ value: String) -> String {
        value.addingPercentEncoding(withAllowedCharacters: CharacterSet(charactersIn: "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")) ?? value
    }

    static func base64URLDecoded(_ text: String) -> Data? {
        var base64 = text.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        base64 += String(repeating: "=", count: (4 - base64.count % 4) % 4)
        return Data(base64Encoded: base64)
    }

    static func base64URL(_ data: some DataProtocol) -> String {
        Data(data).base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }
}

/// The claims Lumen checks itself; the signature check is jwt-kit's.
struct IDTokenClaims: JWTPayload {
    var iss: IssuerClaim
    var aud: AudienceClaim
    var exp: ExpirationClaim
    var nonce: String?

    func verify(using algorithm: some JWTAlgorithm) async throws {}
}

/// A sign-in through a provider in flight: what the browser must bring back to the callback
/// (`state`), what the ID token must answer (`nonce`), the PKCE verifier and where to go after.
/// Kept in a cookie of its own on the callback's path, sealed with an HMAC under a key derived
/// from the deployment's internal token (so any gateway replica can read it), for 10 minutes,
/// used once.
struct SingleSignOnAttempt: Codable, Sendable {
    var state: String
    var nonce: String
    var verifier: String
    var organizationID: String
    var next: String
    var expiresAt: Int64

    static let cookieName = "lumen_sso"
    static let path = "/login/sso"
    static let lifetime: Int64 = 600_000

    static func new(organizationID: String, next: String, now: Int64) -> SingleSignOnAttempt {
        SingleSignOnAttempt(
            state: Identifier.secret(count: 32), nonce: Identifier.secret(count: 32), verifier: Identifier.secret(count: 64),
            organizationID: organizationID, next: next, expiresAt: now + lifetime)
    }

    /// The PKCE challenge of the verifier (S256).
    var challenge: String { OpenIDProviders.base64URL(Data(SHA256.hash(data: Data(verifier.utf8)))) }

    static func key(_ internalToken: String) -> SymmetricKey {
        SymmetricKey(data: SHA256.hash(data: Data("lumen single sign-on\n\(internalToken)".utf8)))
    }

    /// The cookie's value: the attempt as JSON and its HMAC, both base64url.
    func sealed(with key: SymmetricKey) throws -> String {
        let json = try JSONEncoder().encode(self)
        let mac = HMAC<SHA256>.authenticationCode(for: json, using: key)
        return OpenIDProviders.base64URL(json) + "." + OpenIDProviders.base64URL(Data(mac))
    }

    /// The attempt sealed in `value`, if its HMAC holds.
    static func unsealed(_ value: String, with key: SymmetricKey) -> SingleSignOnAttempt? {
        let parts = value.split(separator: ".")
        guard parts.count == 2, let json = OpenIDProviders.base64URLDecoded(String(parts[0])),
            let mac = OpenIDProviders.base64URLDecoded(String(parts[1])),
            HMAC<SHA256>.isValidAuthenticationCode(mac, authenticating: json, using: key)
        else { return nil }
        return try? JSONDecoder().decode(SingleSignOnAttempt.self, from: json)
    }
}
