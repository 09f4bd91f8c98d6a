import Logging
import ServiceLifecycle

/// Keeps a server-streaming watch open for as long as its process runs: when the stream
/// ends or fails (the service restarted, the network blinked) it is opened again after a
/// backoff of 0.1 s doubling up to 5 s, and the cache is marked stale until it resyncs.
/// Graceful shutdown (or cancellation) ends it.
public enum WatchLoop {
    public static func run(
        _ name: String, logger: Logger,
        onDisconnect: @escaping @Sendable () -> Void,
        _ watch: @escaping @Sendable () async throws -> Void
    ) async {
        await cancelWhenGracefulShutdown {
            await loop(name, logger: logger, onDisconnect: onDisconnect, watch)
        }
    }

    private static func loop(
        _ name: String, logger: Logger,
        onDisconnect: @Sendable () -> Void,
        _ watch: @Sendable () async throws -> Void
    ) async {
        var delay = Duration.milliseconds(100)
        while !Task.isCancelled {
            do {
                try await watch()
                delay = .milliseconds(100)
            } catch is CancellationError {
                return
            } catch {
                if Task.isCancelled { return }
                logger.warning("\(name) watch failed; retrying", metadata: ["error": "\(error)", "retry_in": "\(delay)"])
            }
            onDisconnect()
            do {
                try await Task.sleep(for: delay)
            } catch {
                return
            }
            delay = min(delay * 2, .seconds(5))
        }
    }
}
