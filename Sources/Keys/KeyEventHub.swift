import LumenAPI
import Synchronization

/// Fans committed key changes out to the WatchKeys streams.
final class KeyEventHub: Sendable {
    private struct Subscriber {
        let organizationID: String?
        let continuation: AsyncStream<Lumen_Keys_V1_KeyEvent>.Continuation
    }

    private let state = Mutex<(next: Int, subscribers: [Int: Subscriber])>((0, [:]))

    /// A stream of every event published from now on (for one organisation, or all).
    /// The stream ends when the subscriber stops iterating.
    func subscribe(organizationID: String?) -> AsyncStream<Lumen_Keys_V1_KeyEvent> {
        let (stream, continuation) = AsyncStream<Lumen_Keys_V1_KeyEvent>.makeStream(bufferingPolicy: .unbounded)
        let id = state.withLock { state in
            state.next += 1
            state.subscribers[state.next] = Subscriber(organizationID: organizationID, continuation: continuation)
            return state.next
        }
        continuation.onTermination = { [weak self] _ in
            _ = self?.state.withLock { $0.subscribers.removeValue(forKey: id) }
        }
        return stream
    }

    func publish(_ event: Lumen_Keys_V1_KeyEvent) {
        let targets = state.withLock { state in
            state.subscribers.values.filter { $0.organizationID == nil || $0.organizationID == event.key.organizationID }
        }
        for target in targets { target.continuation.yield(event) }
    }

    var subscriberCount: Int { state.withLock { $0.subscribers.count } }
}
