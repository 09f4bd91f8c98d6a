import Crypto
import Foundation
import GRPCCore
import Logging
import LumenAPI
import RPCSupport
import SharedRules
import ServiceLifecycle

/// The gateway's copy of every key, kept fresh by the keys service's `WatchKeys` stream.
///
/// Authenticating an inference request costs a SHA-256 and a dictionary lookup instead of an
/// RPC (DESIGN.md: no per-request unary RPC on the hot path). Revocations and other changes
/// arrive on the stream as they are committed.
public final class KeyCache: Service, Sendable {
    private let replica = Replica<[Data: Lumen_Keys_V1_Key]>(empty: [:])
    private let keys: any Lumen_Keys_V1_KeysService.ClientProtocol
    private let internalToken: String
    private let clock: WallClock
    private let logger: Logger

    public init(
        keys: any Lumen_Keys_V1_KeysService.ClientProtocol, internalToken: String, clock: WallClock = .system,
        logger: Logger
    ) {
        self.keys = keys
        self.internalToken = internalToken
        self.clock = clock
        self.logger = logger
    }

    /// Whether the cache holds a complete snapshot and follows live changes.
    public var isSynced: Bool { replica.isSynced }

    /// The number of keys held.
    public var count: Int { replica.read { keys, _ in keys.count } }

    /// The key a secret belongs to, if it may be used now; otherwise the UNAUTHENTICATED error
    /// (`invalid_api_key`, `key_revoked`, `key_inactive`, `key_suspended`, `key_expired`), or
    /// UNAVAILABLE while the cache has not synced yet.
    public func authenticate(_ secret: String) -> Result<Lumen_Keys_V1_Key, ServiceError> {
        let digest = Data(SHA256.hash(data: Array(secret.utf8)))
        let (key, synced) = replica.read { keys, synced in (keys[digest], synced) }
        guard let key else {
            return .failure(
                synced ? KeyAdmission.unknown
                    : ServiceError(.unavailable, "keys_unavailable", "the gateway is still loading keys; retry shortly"))
        }
        if let refusal = KeyAdmission.refusal(key, nowMillis: clock.nowMillis) { return .failure(refusal) }
        return .success(key)
    }

    /// Why each of the keys `keyIDs` may not be used at `nowMillis`, for those that may not
    /// (one pass over the keys held).
    public func refusals(keyIDs: Set<String>, nowMillis: Int64) -> [String: ServiceError] {
        guard !keyIDs.isEmpty else { return [:] }
        return replica.read { keys, _ in
            var refusals: [String: ServiceError] = [:]
            for key in keys.values where keyIDs.contains(key.id) {
                if let refusal = KeyAdmission.refusal(key, nowMillis: nowMillis) { refusals[key.id] = refusal }
            }
            return refusals
        }
    }

    /// A change a management call through this gateway has just made, applied at once, so
    /// that the caller's next request sees it (a new key works, a suspended one is refused)
    /// without waiting for the watch, which brings the same change a moment later. A new key
    /// comes with its secret, for the digest; a changed one replaces the entry of its id.
    public func apply(_ key: Lumen_Keys_V1_Key, secret: String? = nil) {
        replica.update { keys in
            if let secret {
                keys[Data(SHA256.hash(data: Array(secret.utf8)))] = key
            } else if let digest = keys.first(where: { $0.value.id == key.id })?.key {
                keys[digest] = key
            }
        }
    }

    public func run() async throws {
        await replica.run("keys", logger: logger) {
            try await self.keys.watchKeys(.init(), metadata: .bearer(self.internalToken)) { response in
                try await self.replica.follow(response.messages, isMarker: { $0.type == .synced }) { keys, event in
                    if event.type == .upsert { keys[event.secretSha256] = event.key }
                }
            }
        }
    }
}
