import Logging
import LumenAPI
import RPCSupport
import SharedRules
import ServiceLifecycle
import Synchronization

/// The streams being answered now, so that revoking or suspending a key, or deactivating the
/// person or client who owns it, ends them: `StreamGuard` looks every `interval` and stops
/// each stream whose key or owner may no longer be used — its upstream connection is closed,
/// the caller gets an error event, and what was produced until then is charged.
public final class OpenStreams: Sendable {
    /// One stream: whose it is, and how to stop it.
    struct Entry: Sendable {
        /// The key (empty for the dashboard's web chat).
        var keyID: String
        /// The key's owner: a user or client id (or the organisation's).
        var ownerID: String
        /// Ends the stream with the reason given.
        var stop: @Sendable (ServiceError) -> Void
    }

    private let entries = Mutex<(next: Int, open: [Int: Entry])>((0, [:]))

    public init() {}

    /// Registers a stream; pass the id back to `close` when it ends.
    func open(_ entry: Entry) -> Int {
        entries.withLock { state in
            state.next += 1
            state.open[state.next] = entry
            return state.next
        }
    }

    func close(_ id: Int) {
        _ = entries.withLock { $0.open.removeValue(forKey: id) }
    }

    /// How many streams are open.
    var count: Int { entries.withLock { $0.open.count } }

    /// The keys of the open streams.
    var keyIDs: Set<String> { entries.withLock { Set($0.open.values.lazy.map(\.keyID).filter { !$0.isEmpty }) } }

    /// Stops (and forgets) every stream `refusal` finds a reason for.
    func stop(where refusal: (Entry) -> ServiceError?) {
        let stopped: [(Entry, ServiceError)] = entries.withLock { state in
            var stopped: [(Entry, ServiceError)] = []
            for (id, entry) in state.open {
                if let reason = refusal(entry) {
                    stopped.append((entry, reason))
                    state.open[id] = nil
                }
            }
            return stopped
        }
        for (entry, reason) in stopped { entry.stop(reason) }
    }
}

/// Ends open streams whose key was revoked, suspended, made inactive or expired, or whose
/// owner was deactivated, within `interval` of the change reaching the gateway's caches.
struct StreamGuard: Service {
    let streams: OpenStreams
    let caches: GatewayCaches
    let clock: WallClock
    var interval: Duration = .milliseconds(500)

    func run() async throws {
        while !Task.isShuttingDownGracefully {
            do {
                try await cancelWhenGracefulShutdown { try await Task.sleep(for: interval) }
            } catch {
                return
            }
            check()
        }
    }

    func check() {
        guard streams.count > 0 else { return }
        let refusals = caches.keys.refusals(keyIDs: streams.keyIDs, nowMillis: clock.nowMillis)
        streams.stop { entry in
            if let refusal = refusals[entry.keyID] { return refusal }
            if caches.memberships.isInactive(entry.ownerID) {
                return ServiceError(.unauthenticated, "owner_inactive", "the user or client this stream belongs to was deactivated")
            }
            return nil
        }
    }
}

/// Why a stream was stopped, set once from any thread.
final class StreamStop: Sendable {
    private let value = Mutex<ServiceError?>(nil)

    var reason: ServiceError? {
        get { value.withLock { $0 } }
        set { value.withLock { $0 = newValue } }
    }
}
