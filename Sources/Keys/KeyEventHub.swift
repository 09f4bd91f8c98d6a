import LumenAPI
import Synchronization

/// Fans committed key changes out to the WatchKeys streams.
final class KeyEventHub: Sendable {
    private struct Subscriber {
        let organizationID: String?
        let continuation: AsyncStream<Lumen_Keys_V1_KeyEvent>.Continuation
    }

    private let state = Mutex<(next: Int, subscribers: [Int: Subscriber])>((0, [:]))

    /// Every event published from now on (for one organisation, or all), until `finish()`.
    struct Subscription: Sendable {
        let stream: AsyncStream<Lumen_Keys_V1_KeyEvent>
        let continuation: AsyncStream<Lumen_Keys_V1_KeyEvent>.Continuation

        func finish() { continuation.finish() }
    }

    func subscribe(organizationID: String?) -> Subscription {
        let (stream, continuation) = AsyncStream<Lumen_Keys_V1_KeyEvent>.makeStream(bufferingPolicy: .unbounded)
        let id = state.withLock { state in
            state.next += 1
            state.subscribers[state.next] = Subscriber(organizationID: organizationID, continuation: continuation)
            return state.next
        }
        continuation.onTermination = { [weak self] _ in
            _ = self?.state.withLock { $0.subscribers.removeValue(forKey: id) }
        }
        return Subscription(stream: stream, continuation: continuation)
    }

    func publish(_ event: Lumen_Keys_V1_KeyEvent) {
        let targets = state.withLock { state in
            state.subscribers.values.filter { $0.organizationID == nil || $0.organizationID == event.key.organizationID }
        }
        for target in targets { target.continuation.yield(event) }
    }

    var subscriberCount: Int { state.withLock { $0.subscribers.count } }
}
