import Crypto
import Foundation
import GRPCCore
import Logging
import LumenAPI
import RPCSupport
import ServiceLifecycle
import Synchronization

/// The gateway's copy of every key, kept fresh by the keys service's `WatchKeys` stream.
///
/// Authenticating an inference request costs a SHA-256 and a dictionary lookup instead of an
/// RPC (DESIGN.md: no per-request unary RPC on the hot path). Revocations and other changes
/// arrive on the stream as they are committed.
public final class KeyCache: Service, Sendable {
    struct State {
        var byDigest: [Data: Lumen_Keys_V1_Key] = [:]
        var synced = false
    }

    private let state = Mutex(State())
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
    public var isSynced: Bool { state.withLock { $0.synced } }

    /// The number of keys held.
    public var count: Int { state.withLock { $0.byDigest.count } }

    /// The key a secret belongs to, if it may be used now; otherwise the UNAUTHENTICATED error
    /// (`invalid_api_key`, `key_revoked`, `key_inactive`, `key_suspended`, `key_expired`), or
    /// UNAVAILABLE while the cache has not synced yet.
    public func authenticate(_ secret: String) -> Result<Lumen_Keys_V1_Key, ServiceError> {
        let digest = Data(SHA256.hash(data: Array(secret.utf8)))
        let (key, synced) = state.withLock { ($0.byDigest[digest], $0.synced) }
        guard let key else {
            return .failure(
                synced ? KeyAdmission.unknown
                    : ServiceError(.unavailable, "keys_unavailable", "the gateway is still loading keys; retry shortly"))
        }
        if let refusal = KeyAdmission.refusal(key, nowMillis: clock.nowMillis) { return .failure(refusal) }
        return .success(key)
    }

    /// A change a management call through this gateway has just made, applied at once, so
    /// that the caller's next request sees it (a new key works, a suspended one is refused)
    /// without waiting for the watch, which brings the same change a moment later. A new key
    /// comes with its secret, for the digest; a changed one replaces the entry of its id.
    func apply(_ key: Lumen_Keys_V1_Key, secret: String? = nil) {
        state.withLock { state in
            if let secret {
                state.byDigest[Data(SHA256.hash(data: Array(secret.utf8)))] = key
            } else if let digest = state.byDigest.first(where: { $0.value.id == key.id })?.key {
                state.byDigest[digest] = key
            }
        }
    }

    public func run() async throws {
        await WatchLoop.run("keys", logger: logger, onDisconnect: { self.state.withLock { $0.synced = false } }) {
            try await self.keys.watchKeys(.init(), metadata: .bearer(self.internalToken)) { response in
                var snapshot: [Data: Lumen_Keys_V1_Key]? = [:]
                for try await event in response.messages {
                    switch event.type {
                    case .upsert:
                        if snapshot != nil {
                            snapshot?[event.secretSha256] = event.key
                        } else {
                            self.state.withLock { $0.byDigest[event.secretSha256] = event.key }
                        }
                    case .synced:
                        // Swap in the whole snapshot at once, so a reconnect never serves a
                        // half-loaded set of keys.
                        let loaded = snapshot ?? [:]
                        snapshot = nil
                        self.state.withLock {
                            $0.byDigest = loaded
                            $0.synced = true
                        }
                        self.logger.debug("key cache synced", metadata: ["keys": "\(loaded.count)"])
                    default:
                        continue
                    }
                }
            }
        }
    }
}
