import Logging
import ServiceLifecycle

/// Runs a service (the HTTP facade) whose graceful shutdown may take at most `grace`: it stops
/// accepting and lets requests in flight finish; whatever still runs when the grace is over
/// is cancelled (a cancelled stream is billed for what it produced, like a caller who went
/// away). The services it relies on run beside it and shut down after it.
struct ShutdownGrace: Service {
    let base: any Service
    let grace: Duration
    let logger: Logger

    func run() async throws {
        try await withThrowingTaskGroup(of: Bool.self) { group in
            group.addTask {
                try await base.run()
                return true
            }
            group.addTask {
                // Throws CancellationError when `base` ends first and the group cancels this timer.
                try await gracefulShutdown()
                try await Task.sleep(for: grace)
                return false
            }
            let baseFinished = try await group.next() ?? true
            if !baseFinished {
                logger.warning("shutdown grace over; cancelling the requests still in flight", metadata: ["grace": "\(grace)"])
            }
            group.cancelAll()
            // Wait for `base` to wind down (its cancelled requests settle their holds).
            while let _ = try? await group.next() {}
        }
    }
}
