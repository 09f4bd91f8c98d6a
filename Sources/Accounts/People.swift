import Crypto
import Dispatch
import Foundation
import GRPCCore
import HummingbirdBcrypt
import LumenAPI
import RPCSupport
import SharedRules
import Storage
import Synchronization

/// Passwords (checked by `PasswordRules`): hashed with bcrypt off the cooperative threads (a hash takes
/// a quarter of a second at cost 12), never logged.
struct Passwords: Sendable {
    /// bcrypt's work factor (log2 of its rounds).
    let cost: UInt8


    func hash(_ password: String) async -> String {
        await Self.offload { [cost] in Bcrypt.hash(password, cost: cost) }
    }

    func verify(_ password: String, hash: String) async -> Bool {
        await Self.offload { Bcrypt.verify(password, hash: hash) }
    }

    /// Spends a verification's time for nothing, so that a sign-in with an unknown email takes
    /// as long as one with a wrong password.
    func waste(_ password: String) async {
        _ = await verify(password, hash: decoy)
    }

    private var decoy: String { Self.decoys.withLock { decoys in
        if let hash = decoys[cost] { return hash }
        let hash = Bcrypt.hash(Identifier.secret(count: 16), cost: cost)
        decoys[cost] = hash
        return hash
    } }

    private static let decoys = Mutex<[UInt8: String]>([:])

    private static func offload<T: Sendable>(_ work: @escaping @Sendable () -> T) async -> T {
        await withCheckedContinuation { continuation in
            DispatchQueue.global().async { continuation.resume(returning: work()) }
        }
    }
}

/// Failed sign-ins, counted so that an attacker can neither lock a person out from everywhere
/// nor try one password across many accounts: per email and client address (10 a minute),
/// per address whatever the email (30 in 10 minutes), and a slower ceiling per email from
/// anywhere (100 an hour). Past any of them the attempt is refused without looking at the
/// password. In memory: a restart forgets them.
final class SignInThrottle: Sendable {
    struct Rule: Sendable {
        let limit: Int
        let window: Int64
        /// What the refusal says is refused.
        let what: String
    }

    static let pair = Rule(limit: 10, window: 60_000, what: "this email from your address")
    static let address = Rule(limit: 30, window: 600_000, what: "your address")
    static let account = Rule(limit: 100, window: 3_600_000, what: "this email")

    /// Failure times by key (`p` email address, `a` address, `e` email), at most a rule's limit each.
    private let failures = Mutex<[String: [Int64]]>([:])

    static func keys(email: String, address: String) -> [(String, Rule)] {
        [("p\u{0}\(email)\u{0}\(address)", pair), ("a\u{0}\(address)", Self.address), ("e\u{0}\(email)", account)]
    }

    /// The refusal of an attempt now, if one of the rules is at its limit.
    func refusal(email: String, address: String, now: Int64) -> ServiceError? {
        failures.withLock { failures in
            for (key, rule) in Self.keys(email: email, address: address) {
                let recent = (failures[key] ?? []).filter { now - $0 < rule.window }
                failures[key] = recent.isEmpty ? nil : recent
                if recent.count >= rule.limit, let oldest = recent.first {
                    let seconds = max(1, (oldest + rule.window - now + 999) / 1000)
                    var error = ServiceError(
                        .resourceExhausted, "too_many_sign_ins",
                        "too many failed sign-ins for \(rule.what); try again in \(seconds) s")
                    error.retryAfter = seconds
                    return error
                }
            }
            return nil
        }
    }

    /// Counts a failure; the rule it brought to its limit, if any (a lockout begins).
    @discardableResult
    func failed(email: String, address: String, now: Int64) -> Rule? {
        failures.withLock { failures in
            var reached: Rule?
            for (key, rule) in Self.keys(email: email, address: address) {
                var times = (failures[key] ?? []).filter { now - $0 < rule.window }
                times.append(now)
                if times.count > rule.limit { times.removeFirst(times.count - rule.limit) }
                if times.count == rule.limit, reached == nil { reached = rule }
                failures[key] = times
            }
            if failures.count > 300_000 {
                // Forget keys whose failures are all older than the longest window.
                failures = failures.filter { $0.value.contains { now - $0 < Self.account.window } }
            }
            return reached
        }
    }
}

enum PeopleError {
    static let invalidCredentials = ServiceError(.unauthenticated, "invalid_credentials", "wrong email or password")
    static let inviteNotFound = ServiceError(
        .notFound, "invite_not_found", "this invitation does not exist, was used or has expired", param: "token")
    static let sessionNotFound = ServiceError(.notFound, "session_not_found", "no such session")
    static let sessionExists = ServiceError(.alreadyExists, "session_exists", "a session with this id exists")
}

extension AccountsService {
    static let inviteLifetime: Int64 = 24 * 3_600_000

    public func signIn(
        request: Lumen_Accounts_V1_SignInRequest, context: ServerContext
    ) async throws -> Lumen_Accounts_V1_SignInResponse {
        try Caller.requireInternal()
        let email = request.email.trimmingCharacters(in: .whitespacesAndNewlines).lowercased()
        let now = clock.nowMillis
        let address = request.clientAddress
        if let refusal = throttle.refusal(email: email, address: address, now: now) { throw refusal }
        let people = try await store.read { db in
            try await db.rows(
                "SELECT id, organization_id, active, password_hash FROM users WHERE email = ? ORDER BY created_at, id", [.text(email)]
            ).map {
                (id: try $0[0] as String, organizationID: try $0[1] as String, active: try $0[2] as Bool, hash: try $0[3] as String?)
            }
        }
        // Organisations that sign in through their provider only take no password.
        let ssoOnly = try await store.read { [people] db in
            var names: [String: String] = [:]
            for organizationID in Set(people.map(\.organizationID)) {
                if let sso = try await Self.singleSignOn(organizationID, db), !sso.passwordsAllowed {
                    names[organizationID] = sso.displayName
                }
            }
            return names
        }
        let candidates = people.compactMap { person in
            person.active && ssoOnly[person.organizationID] == nil ? person.hash.map { (person, $0) } : nil
        }
        if candidates.isEmpty, let provider = people.lazy.compactMap({ ssoOnly[$0.organizationID] }).first {
            throw ServiceError(
                .permissionDenied, "password_sign_in_off", "your organisation signs in through \(provider): use “Sign in with \(provider)”")
        }
        if candidates.isEmpty { await passwords.waste(request.password) }
        // The attempt's address, where the facade gave it only in the request.
        var origin = CallOrigin.current
        if origin.clientAddress.isEmpty { origin.clientAddress = address }
        for (candidate, hash) in candidates where await passwords.verify(request.password, hash: hash) {
            let user = try await CallOrigin.$current.withValue(origin) {
                try await store.write { db in
                    let user = try await userMessage(
                        try await fetchUser(id: candidate.id, organizationID: candidate.organizationID, db), db)
                    try await audit(
                        "session.sign_in", "user", user.id, organizationID: user.organizationID, after: AuditedSignIn(email: email),
                        actor: (type: "person", id: user.id), in: db)
                    return user
                }
            }
            logger.info("signed in", metadata: ["user_id": "\(user.id)", "organization_id": "\(user.organizationID)"])
            return .with { $0.user = user }
        }
        let lockout = throttle.failed(email: email, address: address, now: now)
        // The person the email names (their organisation's administrators see the attempt), or the email alone.
        let target = people.first.map { (type: "user", id: $0.id, organizationID: $0.organizationID) }
            ?? (type: "email", id: String(email.prefix(320)), organizationID: "")
        try await CallOrigin.$current.withValue(origin) {
            try await store.write { db in
                try await audit(
                    lockout == nil ? "session.sign_in_failed" : "session.locked_out", target.type, target.id,
                    organizationID: target.organizationID, after: AuditedSignIn(email: String(email.prefix(320)), lockedOut: lockout?.what),
                    actor: (type: "anonymous", id: ""), in: db)
            }
        }
        throw PeopleError.invalidCredentials
    }

    public func setPassword(
        request: Lumen_Accounts_V1_SetPasswordRequest, context: ServerContext
    ) async throws -> Lumen_Accounts_V1_SetPasswordResponse {
        let organizationID = try Caller.organization(request.organizationID)
        let password = try PasswordRules.check(request.password)
        _ = try await store.read { db in try await fetchUser(id: request.userID, organizationID: organizationID, db) }
        try Caller.requireAdmin(to: "set passwords")
        let hash = await passwords.hash(password)
        try await store.write { db in
            try await db.execute(
                "UPDATE users SET password_hash = ? WHERE id = ? AND organization_id = ?", .text(hash), .text(request.userID),
                .text(organizationID))
            try await audit("user.set_password", "user", request.userID, organizationID: organizationID, in: db)
        }
        logger.notice("password set", metadata: ["user_id": "\(request.userID)", "organization_id": "\(organizationID)"])
        return .init()
    }

    public func createInvite(
        request: Lumen_Accounts_V1_CreateInviteRequest, context: ServerContext
    ) async throws -> Lumen_Accounts_V1_CreateInviteResponse {
        let organizationID = try Caller.organization(request.organizationID)
        let token = "inv-" + Identifier.secret(count: 48)
        let expiresAt = clock.nowMillis + Self.inviteLifetime
        try await store.write { db in
            _ = try await fetchUser(id: request.userID, organizationID: organizationID, db)
            try Caller.requireAdmin(to: "invite users")
            try await db.execute(
                "INSERT INTO invites (token_sha256, user_id, expires_at) VALUES (?, ?, ?)", .blob(Self.sha256(token)),
                .text(request.userID), .integer(expiresAt))
            try await audit(
                "invite.create", "user", request.userID, organizationID: organizationID, after: ["expires_at": expiresAt], in: db)
        }
        logger.notice("invitation created", metadata: ["user_id": "\(request.userID)", "organization_id": "\(organizationID)"])
        return .with {
            $0.token = token
            $0.expiresAt = .init(millis: expiresAt)
        }
    }

    public func acceptInvite(
        request: Lumen_Accounts_V1_AcceptInviteRequest, context: ServerContext
    ) async throws -> Lumen_Accounts_V1_AcceptInviteResponse {
        try Caller.requireInternal()
        let password = try PasswordRules.check(request.password)
        let digest = Self.sha256(request.token)
        let now = clock.nowMillis
        @Sendable func invited(_ db: any SQLSession) async throws -> (String, String) {
            guard
                let row = try await db.row(
                    """
                    SELECT users.id, users.organization_id FROM invites JOIN users ON users.id = invites.user_id
                    WHERE invites.token_sha256 = ? AND invites.used_at IS NULL AND invites.expires_at > ? AND users.active = TRUE
                    """, .blob(digest), .integer(now))
            else { throw PeopleError.inviteNotFound }
            return (try row[0], try row[1])
        }
        // Hash only for a valid invitation (a hash costs a quarter of a second), then check again.
        _ = try await store.read(invited)
        let hash = await passwords.hash(password)
        let user = try await store.write { db in
            let (userID, organizationID) = try await invited(db)
            // A new password: every other invitation of the person is void and every session ends
            // (whoever held the old password, or another link, is out).
            try await db.execute(
                "UPDATE invites SET used_at = ? WHERE user_id = ? AND used_at IS NULL", .integer(now), .text(userID))
            try await db.execute("UPDATE users SET password_hash = ? WHERE id = ?", .text(hash), .text(userID))
            try await db.execute("DELETE FROM sessions WHERE user_id = ?", .text(userID))
            try await audit(
                "invite.accept", "user", userID, organizationID: organizationID, actor: (type: "person", id: userID), in: db)
            return try await userMessage(try await fetchUser(id: userID, organizationID: organizationID, db), db)
        }
        logger.notice("invitation accepted", metadata: ["user_id": "\(user.id)", "organization_id": "\(user.organizationID)"])
        return .with { $0.user = user }
    }

    public func putSession(
        request: Lumen_Accounts_V1_PutSessionRequest, context: ServerContext
    ) async throws -> Lumen_Accounts_V1_PutSessionResponse {
        try Caller.requireInternal()
        let id = try Self.sessionID(request.idSha256)
        let now = clock.nowMillis
        try await store.write { db in
            try await db.execute("DELETE FROM sessions WHERE expires_at <= ?", .integer(now))
            let existing = try await db.value(Int64.self, "SELECT expires_at FROM sessions WHERE id_sha256 = ?", .blob(id))
            if existing != nil && request.createOnly { throw PeopleError.sessionExists }
            guard let expiresAt = request.hasExpiresAt ? request.expiresAt.millis : existing else {
                throw ServiceError.invalid("invalid_expiry", "a new session needs expires_at", param: "expires_at")
            }
            try await db.execute(
                """
                INSERT INTO sessions (id_sha256, user_id, data, expires_at) VALUES (?, ?, ?, ?)
                ON CONFLICT (id_sha256) DO UPDATE SET user_id = excluded.user_id, data = excluded.data,
                    expires_at = excluded.expires_at
                """, .blob(id), .text(request.userID), .blob(request.data), .integer(expiresAt))
        }
        return .init()
    }

    public func getSession(
        request: Lumen_Accounts_V1_GetSessionRequest, context: ServerContext
    ) async throws -> Lumen_Accounts_V1_GetSessionResponse {
        try Caller.requireInternal()
        let id = try Self.sessionID(request.idSha256)
        let now = clock.nowMillis
        let found = try await store.read { db -> (data: Data, expiresAt: Int64)? in
            try await db.row("SELECT data, expires_at FROM sessions WHERE id_sha256 = ? AND expires_at > ?", .blob(id), .integer(now))
                .map { (try $0[0], try $0[1]) }
        }
        guard let found else { throw PeopleError.sessionNotFound }
        return .with {
            $0.data = found.data
            $0.expiresAt = .init(millis: found.expiresAt)
        }
    }

    public func deleteSession(
        request: Lumen_Accounts_V1_DeleteSessionRequest, context: ServerContext
    ) async throws -> Lumen_Accounts_V1_DeleteSessionResponse {
        try Caller.requireInternal()
        let id = try Self.sessionID(request.idSha256)
        try await store.write { db in try await db.execute("DELETE FROM sessions WHERE id_sha256 = ?", .blob(id)) }
        return .init()
    }

    static func sha256(_ text: String) -> Data { Data(SHA256.hash(data: Data(text.utf8))) }

    static func sessionID(_ digest: Data) throws -> Data {
        guard digest.count == 32 else {
            throw ServiceError.invalid("invalid_session_id", "id_sha256 is a SHA-256 digest (32 bytes)", param: "id_sha256")
        }
        return digest
    }
}
