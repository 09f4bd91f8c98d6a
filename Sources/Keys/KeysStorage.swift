import Foundation
import RPCSupport
import LumenAPI

/// Where the keys service keeps its table: one SQLite file (`SQLiteKeysStore`) or the `keys`
/// schema of a PostgreSQL database (`PostgresKeysStore`). The rules are the service's; a store
/// reads and writes rows. Each method is one transaction; writes are serialised, and a write's
/// `committed` runs after its commit and before the next write starts (events in commit order).
protocol KeysStorage: Sendable {
    /// Every committed update of a key (`update`), counted after its commit.
    var changes: CredentialChanges { get }
    /// Inserts a key; `committed` runs once it has committed.
    func insert(_ record: KeyRecord, committed: @escaping @Sendable (KeyRecord) -> Void) async throws
    func key(id: String, organizationID: String) async throws -> KeyRecord?
    func key(secretSHA256: Data) async throws -> KeyRecord?
    /// Reads the key, lets `change` modify it, writes it back, in one transaction; when the row
    /// changed, `changes` counts it and `committed` runs once it has committed. nil when there is
    /// no such key in the organisation.
    func update(
        id: String, organizationID: String, _ change: @escaping @Sendable (inout KeyRecord) throws -> Void,
        committed: @escaping @Sendable (KeyRecord) -> Void
    ) async throws -> KeyRecord?
    /// A page of keys; `total` is nil when the query went on from a position (not counted).
    func list(_ query: KeyListQuery, revokedStatus: Int) async throws -> (records: [KeyRecord], total: Int?)
    /// `list`'s page as ids and creation times alone.
    func listIDs(_ query: KeyListQuery, revokedStatus: Int) async throws -> (ids: [KeyListPosition], total: Int?)
    /// The keys of one organisation, or of every one; never the operator tokens; oldest first.
    func all(organizationID: String?) async throws -> [KeyRecord]
    /// Every operator token, revoked ones too, oldest first.
    func operatorTokens() async throws -> [KeyRecord]
}

extension KeysStorage {
    func insert(_ record: KeyRecord) async throws { try await insert(record, committed: { _ in }) }

    func update(
        id: String, organizationID: String, _ change: @escaping @Sendable (inout KeyRecord) throws -> Void
    ) async throws -> KeyRecord? {
        try await update(id: id, organizationID: organizationID, change, committed: { _ in })
    }
}

struct KeyListQuery: Sendable {
    var organizationID: String
    var kind: Int
    var ownerType: Int?
    var ownerID: String?
    var includeRevoked: Bool
    var nameContains: String
    /// Only these keys (none: every key).
    var keyIDs: [String] = []
    var sort: Lumen_Keys_V1_KeySort
    var reverse: Bool
    var offset: Int
    var limit: Int
    /// Go on after this key (a page token's position) instead of counting past `offset`;
    /// nothing is counted then.
    var after: KeyListPosition? = nil

    /// Newest first: the default order, or creation order reversed.
    var newestFirst: Bool {
        switch sort {
        case .name: false
        case .created: reverse
        default: !reverse
        }
    }
}

/// Where a page of a list in creation order ended: its last key's creation time and id.
struct KeyListPosition: Sendable, Equatable {
    var createdAt: Int64
    var id: String
}

