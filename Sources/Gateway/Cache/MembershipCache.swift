import GRPCCore
import Logging
import LumenAPI
import RPCSupport
import SharedRules
import ServiceLifecycle

/// The gateway's copy of every user's groups and of which users and clients are deactivated,
/// kept fresh by the accounts service's `WatchMemberships` stream, so that a model's allowed
/// and blocked groups and a deactivation are applied at admission without an RPC (DESIGN.md:
/// no per-request unary RPC on the hot path).
public final class MembershipCache: Service, Sendable {
    struct Snapshot: Sendable {
        var groups: [String: Set<String>] = [:]
        /// Users and clients (by id) whose keys are refused.
        var inactive: Set<String> = []
    }

    private let replica = Replica<Snapshot>(empty: Snapshot())
    private let accounts: any Lumen_Accounts_V1_AccountsService.ClientProtocol
    private let internalToken: String
    private let logger: Logger

    public init(accounts: any Lumen_Accounts_V1_AccountsService.ClientProtocol, internalToken: String, logger: Logger) {
        self.accounts = accounts
        self.internalToken = internalToken
        self.logger = logger
    }

    /// Whether the cache holds a complete snapshot and follows live changes.
    public var isSynced: Bool { replica.isSynced }

    /// The number of users held.
    public var count: Int { replica.read { snapshot, _ in snapshot.groups.count } }

    /// The groups of `userID` (none for an unknown user).
    public func groups(ofUser userID: String) -> Set<String> {
        replica.read { snapshot, _ in snapshot.groups[userID] ?? [] }
    }

    /// Whether the user or client `id` is deactivated.
    public func isInactive(_ id: String) -> Bool {
        replica.read { snapshot, _ in snapshot.inactive.contains(id) }
    }

    public func run() async throws {
        await replica.run("memberships", logger: logger) {
            try await self.accounts.watchMemberships(.init(), metadata: .bearer(self.internalToken)) { response in
                try await self.replica.follow(response.messages, isMarker: { $0.type == .synced }) { snapshot, event in
                    guard event.type == .upsert else { return }
                    let id = event.clientID.isEmpty ? event.userID : event.clientID
                    if event.clientID.isEmpty { snapshot.groups[event.userID] = Set(event.groupIds) }
                    if event.inactive { snapshot.inactive.insert(id) } else { snapshot.inactive.remove(id) }
                }
            }
        }
    }
}
