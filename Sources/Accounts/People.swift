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

/// Passwords: checked for length, hashed with bcrypt off the cooperative threads (a hash takes
/// a quarter of a second at cost 12), never logged.
struct Passwords: Sendable {
    /// bcrypt's work factor (log2 of its rounds).
    let cost: UInt8

    /// A password is 8 to 72 bytes (bcrypt reads no further than 72).
    static func check(_ password: String, param: String = "password") throws -> String {
        guard (8...72).contains(password.utf8.count) else {
            throw ServiceError.invalid("invalid_password", "a password has 8 to 72 bytes", param: param)
        }
        return password
    }

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

/// Failed sign-ins per email in the last minute: the 11th within a minute is refused without
/// looking at the password.
final class SignInThrottle: Sendable {
    static let limit = 10
    static let window: Int64 = 60_000

    private let failures = Mutex<[String: [Int64]]>([:])

    func isLocked(_ email: String, now: Int64) -> Bool {
        failures.withLock { failures in
            let recent = (failures[email] ?? []).filter { now - $0 < Self.window }
            failures[email] = recent.isEmpty ? nil : recent
            return recent.count >= Self.limit
        }
    }

    func failed(_ email: String, now: Int64) {
        failures.withLock { failures in
            failures[email, default: []].append(now)
            if failures.count > 100_000 {
                // Forget emails whose failures are all older than the window.
                failures = failures.filter { $0.value.contains { now - $0 < Self.window } }
            }
        }
    }
}

enum PeopleError {
    static let invalidCredentials = ServiceError(.unauthenticated, "invalid_credentials", "wrong email or password")
    static let tooManySignIns = ServiceError(
        .resourceExhausted, "too_many_sign_ins", "too many failed sign-ins for this email; wait a minute and try again")
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
        guard !throttle.isLocked(email, now: now) else { throw PeopleError.tooManySignIns }
        let candidates = try await store.read { db in
            try await db.rows(
                """
                SELECT id, organization_id, password_hash FROM users
                WHERE email = ? AND active = TRUE AND password_hash IS NOT NULL ORDER BY created_at, id
                """, [.text(email)]
            ).map { (id: try $0[0] as String, organizationID: try $0[1] as String, hash: try $0[2] as String) }
        }
        if candidates.isEmpty { await passwords.waste(request.password) }
        for candidate in candidates where await passwords.verify(request.password, hash: candidate.hash) {
            let user = try await store.read { db in
                try await userMessage(try await fetchUser(id: candidate.id, organizationID: candidate.organizationID, db), db)
            }
            logger.info("signed in", metadata: ["user_id": "\(user.id)", "organization_id": "\(user.organizationID)"])
            return .with { $0.user = user }
        }
        throttle.failed(email, now: now)
        throw PeopleError.invalidCredentials
    }

    public func setPassword(
        request: Lumen_Accounts_V1_SetPasswordRequest, context: ServerContext
    ) async throws -> Lumen_Accounts_V1_SetPasswordResponse {
        let organizationID = try Caller.organization(request.organizationID)
        let password = try Passwords.check(request.password)
        _ = try await store.read { db in try await fetchUser(id: request.userID, organizationID: organizationID, db) }
        try Caller.requireAdmin(to: "set passwords")
        let hash = await passwords.hash(password)
        try await store.write { db in
            try await db.execute(
                "UPDATE users SET password_hash = ? WHERE id = ? AND organization_id = ?", .text(hash), .text(request.userID),
                .text(organizationID))
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
        let password = try Passwords.check(request.password)
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
            try await db.execute("UPDATE invites SET used_at = ? WHERE token_sha256 = ?", .integer(now), .blob(digest))
            try await db.execute("UPDATE users SET password_hash = ? WHERE id = ?", .text(hash), .text(userID))
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
