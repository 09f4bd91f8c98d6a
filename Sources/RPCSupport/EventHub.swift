import GRPCCore
import ServiceLifecycle
import Synchronization

/// Fans committed changes out to the server streams that watch them (`WatchKeys`,
/// `WatchRegistry`). Each subscriber sees every event published after it subscribed and
/// accepted by its filter, in order, until it finishes.
public final class EventHub<Event: Sendable>: Sendable {
    private struct Subscriber {
        let accepts: @Sendable (Event) -> Bool
        let continuation: AsyncStream<Event>.Continuation
    }

    /// One subscriber's stream of events.
    public struct Subscription: Sendable {
        public let stream: AsyncStream<Event>
        let continuation: AsyncStream<Event>.Continuation

        /// Ends the stream (and unsubscribes).
        public func finish() { continuation.finish() }
    }

    private let state = Mutex<(next: Int, subscribers: [Int: Subscriber])>((0, [:]))

    public init() {}

    public func subscribe(where accepts: @escaping @Sendable (Event) -> Bool = { _ in true }) -> Subscription {
        let (stream, continuation) = AsyncStream<Event>.makeStream(bufferingPolicy: .unbounded)
        let id = state.withLock { state in
            state.next += 1
            state.subscribers[state.next] = Subscriber(accepts: accepts, continuation: continuation)
            return state.next
        }
        continuation.onTermination = { [weak self] _ in
            _ = self?.state.withLock { $0.subscribers.removeValue(forKey: id) }
        }
        return Subscription(stream: stream, continuation: continuation)
    }

    public func publish(_ event: Event) {
        let targets = state.withLock { state in state.subscribers.values.filter { $0.accepts(event) } }
        for target in targets { target.continuation.yield(event) }
    }

    /// The number of open subscriptions.
    public var subscriberCount: Int { state.withLock { $0.subscribers.count } }
}

extension EventHub {
    /// Serves a watch RPC: the events of `snapshot`, then `synced`, then every event published
    /// afterwards that `accepts` lets through, until the client goes away (RPC cancellation)
    /// or the server shuts down gracefully.
    ///
    /// It subscribes before reading the snapshot so that no change falls between the two; a
    /// change seen twice is harmless because watch events are whole upserts.
    public func serve(
        to writer: RPCWriter<Event>,
        where accepts: @escaping @Sendable (Event) -> Bool = { _ in true },
        snapshot: () async throws -> [Event],
        synced: Event
    ) async throws {
        let live = subscribe(where: accepts)
        defer { live.finish() }
        try await writer.write(contentsOf: try await snapshot())
        try await writer.write(synced)
        try await withRPCCancellationHandler {
            for await event in live.stream.cancelOnGracefulShutdown() {
                try await writer.write(event)
            }
        } onCancelRPC: {
            live.finish()
        }
    }
}
