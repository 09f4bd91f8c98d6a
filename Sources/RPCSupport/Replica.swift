import Logging
import Synchronization

/// An in-memory copy of what a service streams (the gateway's caches, the ledger's prices), and
/// the one replication rule every copy follows: a watch sends a snapshot (one event per item), a SYNCED marker, then live
/// changes. Events before the marker build a fresh snapshot that replaces the held one at once,
/// so a reconnect never serves half of one; after it, each event changes the held copy. Until
/// the first marker, and from a broken stream until the next one, the replica is not synced.
public final class Replica<Snapshot: Sendable>: Sendable {
    private let state: Mutex<(snapshot: Snapshot, synced: Bool)>
    private let empty: Snapshot

    public init(empty: Snapshot) {
        self.empty = empty
        self.state = Mutex((empty, false))
    }

    /// Whether it holds a complete snapshot and follows live changes.
    public var isSynced: Bool { state.withLock { $0.synced } }

    /// Reads the held copy (and whether it is synced).
    public func read<Result>(_ body: (Snapshot, Bool) -> Result) -> Result {
        state.withLock { body($0.snapshot, $0.synced) }
    }

    /// Changes the held copy outside the stream (what this gateway itself just wrote).
    public func update(_ body: (inout Snapshot) -> Void) {
        state.withLock { body(&$0.snapshot) }
    }

    /// Follows one watch stream to its end (`isMarker`: the SYNCED event; `apply`: one event's
    /// change to a snapshot).
    public func follow<Events: AsyncSequence>(
        _ events: Events, isMarker: (Events.Element) -> Bool, apply: (inout Snapshot, Events.Element) -> Void
    ) async throws {
        var loading: Snapshot? = empty
        for try await event in events {
            if isMarker(event) {
                let loaded = loading ?? empty
                loading = nil
                state.withLock { $0 = (loaded, true) }
            } else if loading != nil {
                apply(&loading!, event)
            } else {
                state.withLock { apply(&$0.snapshot, event) }
            }
        }
    }

    /// Runs `watch` (which calls `follow`) for the cache's lifetime through `WatchLoop`:
    /// reopened after a backoff when it ends or fails, unsynced in between.
    public func run(_ name: String, logger: Logger, watch: @escaping @Sendable () async throws -> Void) async {
        await WatchLoop.run(name, logger: logger, onDisconnect: { self.state.withLock { $0.synced = false } }, watch)
    }
}
