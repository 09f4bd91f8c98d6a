import Logging
import ServiceLifecycle
import Synchronization

/// Accumulates observations in memory and hands them over in one batch per `interval`, so a
/// per-request fact (a key was used, a backend failed) costs one RPC per interval, not one
/// per request. A batch that cannot be delivered is merged back and retried with the next one;
/// what is pending at shutdown is flushed once more.
final class BatchReporter<Entry: Sendable, Key: Hashable & Sendable>: Service, Sendable {
    typealias Merge = @Sendable (inout Entry, Entry) -> Void
    typealias Flush = @Sendable ([Entry]) async throws -> Void

    private let pending = Mutex<[Key: Entry]>([:])
    private let interval: Duration
    private let merge: Merge
    private let flush: Flush
    private let name: String
    private let logger: Logger

    init(_ name: String, interval: Duration, logger: Logger, merge: @escaping Merge, flush: @escaping Flush) {
        self.name = name
        self.interval = interval
        self.merge = merge
        self.flush = flush
        self.logger = logger
    }

    /// Adds an observation, merged with what is pending under the same key.
    func record(_ entry: Entry, under key: Key) {
        pending.withLock { pending in
            if pending[key] != nil {
                merge(&pending[key]!, entry)
            } else {
                pending[key] = entry
            }
        }
    }

    /// Sends what is pending now.
    func flushNow() async {
        let batch = pending.withLock { pending in
            defer { pending = [:] }
            return pending
        }
        guard !batch.isEmpty else { return }
        do {
            try await flush(Array(batch.values))
        } catch {
            logger.warning("\(name) report failed; will retry", metadata: ["entries": "\(batch.count)", "error": "\(error)"])
            for (key, entry) in batch { record(entry, under: key) }
        }
    }

    func run() async throws {
        _ = try? await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                try await Task.sleep(for: self.interval)
                await self.flushNow()
            }
        }
        await flushNow()
    }
}
