import LumenAPI
import RPCSupport
import Synchronization

/// Which keys are an owner's, as the keys service says, remembered. A key never changes owner
/// and is never deleted (revoking keeps it), so a key once seen as an owner's stays theirs:
/// only an id not seen yet (a key made since) asks the keys service again. Without this, every
/// `GetKeyTotals` of a person listed all of the owner's keys a second time (a table of 1,000
/// keys: a second 1,000-key `ListKeys`).
final class KeyOwnership: Sendable {
    private struct Owner: Hashable {
        var organizationID: String
        var type: Int
        var id: String
    }

    private struct Known {
        var keys: [Owner: Set<String>] = [:]
        var count = 0
    }

    private let known = Mutex(Known())
    /// Key ids remembered at most (some 40 bytes each); past it, everything is forgotten and
    /// learnt again.
    let capacity: Int

    init(capacity: Int = 200_000) {
        self.capacity = capacity
    }

    /// The first of `keyIDs` that is not a key of `owner`, or nil when all are.
    func firstNotOwned(
        _ keyIDs: [String], by owner: Lumen_Common_V1_PrincipalRef, organizationID: String, directory: any PrincipalDirectory
    ) async throws -> String? {
        let who = Owner(organizationID: organizationID, type: owner.type.rawValue, id: owner.id)
        let seen = known.withLock { $0.keys[who] ?? [] }
        guard keyIDs.contains(where: { !seen.contains($0) }) else { return nil }
        let owned = try await directory.keyIDs(ownedBy: owner, organizationID: organizationID)
        known.withLock { known in
            known.count += owned.count - (known.keys[who]?.count ?? 0)
            known.keys[who] = owned
            if known.count > capacity { known = Known() }
        }
        return keyIDs.first { !owned.contains($0) }
    }
}
