import GRPCCore
import Logging
import LumenAPI
import RPCSupport
import ServiceLifecycle
import Synchronization

/// The gateway's copy of every user's groups, kept fresh by the accounts service's
/// `WatchMemberships` stream, so that a model's allowed and blocked groups are applied at
/// admission without an RPC (DESIGN.md: no per-request unary RPC on the hot path).
public final class MembershipCache: Service, Sendable {
    struct State {
        var groups: [String: Set<String>] = [:]
        var synced = false
    }

    private let state = Mutex(State())
    private let accounts: any Lumen_Accounts_V1_AccountsService.ClientProtocol
    private let internalToken: String
    private let logger: Logger

    public init(accounts: any Lumen_Accounts_V1_AccountsService.ClientProtocol, internalToken: String, logger: Logger) {
        self.accounts = accounts
        self.internalToken = internalToken
        self.logger = logger
    }

    /// Whether the cache holds a complete snapshot and follows live changes.
    public var isSynced: Bool { state.withLock { $0.synced } }

    /// The number of users held.
    public var count: Int { state.withLock { $0.groups.count } }

    /// The groups of `userID` (none for an unknown user).
    public func groups(ofUser userID: String) -> Set<String> {
        state.withLock { $0.groups[userID] ?? [] }
    }

    public func run() async throws {
        await WatchLoop.run("memberships", logger: logger, onDisconnect: { self.state.withLock { $0.synced = false } }) {
            try await self.accounts.watchMemberships(.init(), metadata: .bearer(self.internalToken)) { response in
                var snapshot: [String: Set<String>]? = [:]
                for try await event in response.messages {
                    switch event.type {
                    case .upsert:
                        if snapshot != nil {
                            snapshot?[event.userID] = Set(event.groupIds)
                        } else {
                            self.state.withLock { $0.groups[event.userID] = Set(event.groupIds) }
                        }
                    case .synced:
                        // The whole snapshot at once: a reconnect never serves half of it.
                        let loaded = snapshot ?? [:]
                        snapshot = nil
                        self.state.withLock {
                            $0.groups = loaded
                            $0.synced = true
                        }
                    default:
                        continue
                    }
                }
            }
        }
    }
}
