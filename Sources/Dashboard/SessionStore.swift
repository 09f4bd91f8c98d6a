import Crypto
import Foundation
import GRPCCore
import Hummingbird
import LumenAPI
import RPCSupport
import SharedRules

/// hummingbird-auth's session storage, kept by the accounts service (so sessions survive a
/// restart and every gateway of a deployment sees the same ones). Keys are stored as their
/// SHA-256, never as the session id a browser holds.
public struct AccountsSessionStore: PersistDriver {
    let accounts: any Lumen_Accounts_V1_AccountsService.ClientProtocol
    let internalToken: String
    let clock: WallClock

    public init(accounts: any Lumen_Accounts_V1_AccountsService.ClientProtocol, internalToken: String, clock: WallClock = .system) {
        self.accounts = accounts
        self.internalToken = internalToken
        self.clock = clock
    }

    public func create<Object: Codable & Sendable>(key: String, value: Object, expires: Duration?) async throws {
        do {
            try await put(key: key, value: value, expires: expires ?? .seconds(12 * 3600), createOnly: true)
        } catch let error as RPCError where error.code == .alreadyExists {
            throw PersistError.duplicate
        }
    }

    public func set<Object: Codable & Sendable>(key: String, value: Object, expires: Duration?) async throws {
        try await put(key: key, value: value, expires: expires, createOnly: false)
    }

    public func get<Object: Codable & Sendable>(key: String, as type: Object.Type) async throws -> Object? {
        try await getWithTTL(key: key, as: type)?.object
    }

    public func getWithTTL<Object: Codable & Sendable>(key: String, as type: Object.Type) async throws -> (object: Object, ttl: Duration?)? {
        let response: Lumen_Accounts_V1_GetSessionResponse
        do {
            response = try await accounts.getSession(.with { $0.idSha256 = Self.digest(key) }, metadata: .bearer(internalToken))
        } catch let error as RPCError where error.code == .notFound {
            return nil
        }
        guard let object = try? JSONDecoder().decode(Object.self, from: response.data) else { throw PersistError.invalidConversion }
        return (object, .milliseconds(max(0, response.expiresAt.millis - clock.nowMillis)))
    }

    public func remove(key: String) async throws {
        _ = try await accounts.deleteSession(.with { $0.idSha256 = Self.digest(key) }, metadata: .bearer(internalToken))
    }

    private func put<Object: Codable & Sendable>(key: String, value: Object, expires: Duration?, createOnly: Bool) async throws {
        let data = try JSONEncoder().encode(value)
        let now = clock.nowMillis
        _ = try await accounts.putSession(
            .with {
                $0.idSha256 = Self.digest(key)
                $0.data = data
                if let expires { $0.expiresAt = .init(millis: now + expires.wholeMilliseconds) }
                $0.userID = (value as? DashboardSession)?.userID ?? ""
                $0.createOnly = createOnly
            }, metadata: .bearer(internalToken))
    }

    static func digest(_ key: String) -> Data { Data(SHA256.hash(data: Data(key.utf8))) }
}
