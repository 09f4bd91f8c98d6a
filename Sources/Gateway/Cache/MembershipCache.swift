import GRPCCore
import Logging
import LumenAPI
import RPCSupport
import SharedRules
import ServiceLifecycle

/// The gateway's copy of every user's groups, kept fresh by the accounts service's
/// `WatchMemberships` stream, so that a model's allowed and blocked groups are applied at
/// admission without an RPC (DESIGN.md: no per-request unary RPC on the hot path).
public final class MembershipCache: Service, Sendable {
    private let replica = Replica<[String: Set<String>]>(empty: [:])
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
    public var count: Int { replica.read { groups, _ in groups.count } }

    /// The groups of `userID` (none for an unknown user).
    public func groups(ofUser userID: String) -> Set<String> {
        replica.read { groups, _ in groups[userID] ?? [] }
    }

    public func run() async throws {
        await replica.run("memberships", logger: logger) {
            try await self.accounts.watchMemberships(.init(), metadata: .bearer(self.internalToken)) { response in
                try await self.replica.follow(response.messages, isMarker: { $0.type == .synced }) { groups, event in
                    if event.type == .upsert { groups[event.userID] = Set(event.groupIds) }
                }
            }
        }
    }
}
