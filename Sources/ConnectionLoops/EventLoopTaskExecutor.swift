import NIOCore

/// Runs a task's jobs on one event loop's thread (`withTaskExecutorPreference`).
///
/// A request handler run this way on its connection's loop stays on that thread from the
/// request's bytes to the answer's: its upstream call (`UpstreamClient`) gets a connection on the
/// same loop, and resuming after an await is a job on the loop's queue, not a wake-up of another
/// thread. Measured in `bench/run.sh` (the floor, one core): about 15 % less CPU per request
/// than the same handler on Swift's cooperative pool. Work that blocks must not run here: it
/// would stall every connection of the loop.
public final class EventLoopTaskExecutor: TaskExecutor, Sendable {
    public let eventLoop: any EventLoop

    public init(_ eventLoop: any EventLoop) {
        self.eventLoop = eventLoop
    }

    public func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        eventLoop.execute { job.runSynchronously(on: self.asUnownedTaskExecutor()) }
    }
}
