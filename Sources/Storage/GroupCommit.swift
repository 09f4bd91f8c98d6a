import GRDB
import NIOCore
import NIOPosix
import Synchronization

/// Group commit: concurrent writes share one SQLite transaction, so one fsync makes a whole
/// batch durable instead of one fsync per write.
///
/// Operations are queued (`enqueue`, or `submit` to await the outcome). When no batch is
/// being written, the queue's contents become the next batch (at most `maxBatch`): one
/// transaction on the database writer, each operation applied in turn, then the commit.
/// The next batch starts as soon as that one is done, taking everything queued meanwhile;
/// so under load batches grow by themselves, and an idle ledger commits a lone operation at
/// once — queued from an event loop, once that loop has finished its turn, so that what it
/// queues in the meantime joins the batch. No task and no timer: the work runs on the database
/// writer's queue (the loop's only to start it), and an operation is answered only after the
/// transaction holding it has committed. A caller who does not wait for an operation can still
/// wait for everything queued so far (`flushed`).
///
/// An operation that throws is rolled back alone and its caller gets the error; the rest of
/// the batch commits. With `savepoints` (the default) each operation runs in its own
/// savepoint; without, an operation must leave the database unchanged when it throws (write
/// with a single statement, or throw before writing) — savepoints cost two statements per
/// operation. `beforeCommit` runs once per batch, after its operations and inside its
/// transaction (to write state the operations accumulated in memory). If it or the commit
/// fails, every caller of the batch gets that error and `afterRollback` runs, on the writer,
/// so that such in-memory state can be dropped; once it has committed, `afterCommit` runs, on
/// the writer, before any caller of the batch hears of it (to publish what it made durable).
///
/// An operation may also ask to hear its outcome as soon as it is decided (`enqueue(_:decided:completion:)`):
/// applied in its batch's transaction, the batch not yet committed. Its completion follows as
/// usual — success once durable, or the batch's failure, which voids the decision.
///
/// `synced` may say which operations must be on disk before their callers hear of them; each
/// batch's writer is told whether it holds any. On SQLite a batch with none of them commits
/// without its own fsync (`PRAGMA synchronous = NORMAL` for that one commit): its writes are
/// durable with the next synced commit — the fsync of the log covers everything before it — or
/// the next checkpoint, whichever comes first; what a power failure takes is a suffix of such
/// batches, never a hole. So a lone settlement does not make the next request's hold wait for a
/// sync of its own.
///
/// `lingers` may say which operations may wait up to `linger` for their batch when nothing else
/// is queued (operations no caller waits on: settlements): such an operation, queued while the
/// writer is idle, starts no batch of its own; the next operation that may not wait starts one
/// that takes it along, or it is written alone once `linger` is up — at once when `flushed()`
/// waits for it. So a connection's settlement shares its next request's hold's transaction
/// instead of paying one more transaction of its own.
public final class GroupCommit<Operation: Sendable, Outcome: Sendable>: Sendable {
    public typealias Apply = @Sendable (Database, Operation) throws -> Outcome
    /// Called once per operation with its outcome, on the database writer's queue: it must
    /// not block (resume a continuation, yield to a stream).
    public typealias Completion = @Sendable (Result<Outcome, any Error>) -> Void
    /// Called at most once per operation that asked for it, with its successful outcome before
    /// its batch commits, on the writer: it must not block.
    public typealias Decided = @Sendable (Outcome) -> Void
    /// Writes one batch — each operation's outcome, or the failure of the whole batch — and
    /// calls `done` once it is durable (or failed); `synced` false when no operation of the
    /// batch must be on disk before its caller hears of it (it may commit without a sync).
    /// `decided(i, outcome)` as soon as operation `i` has succeeded, before the batch commits.
    /// The next batch is not written before `done`,
    /// or before `proceed`, which a writer that overlaps batches may call earlier (once its
    /// batch no longer needs to be alone: PostgreSQL's, once it has applied its operations);
    /// such a writer must still call `done` in the order of the batches.
    public typealias BatchWriter = @Sendable (
        _ batch: [Operation], _ synced: Bool, _ decided: @escaping @Sendable (Int, Outcome) -> Void,
        _ proceed: @escaping @Sendable () -> Void,
        _ done: @escaping @Sendable (Result<[Result<Outcome, any Error>], any Error>) -> Void
    ) -> Void

    private let write: BatchWriter
    private let synced: (@Sendable (Operation) -> Bool)?
    private let linger: TimeAmount
    private let lingers: (@Sendable (Operation) -> Bool)?
    private let maxBatch: Int
    private let state = Mutex(State())

    enum Start { case now, later, no }

    struct Entry {
        let operation: Operation
        let lingers: Bool
        let decided: Decided?
        let completion: Completion
    }

    struct State {
        var pending: [Entry] = []
        var writing = false
        /// Whether `pending` holds an operation that may not linger.
        var urgent = false
        /// Whether a timer will start the lingering operations' batch.
        var lingering = false
        /// Operations that may linger, queued and not answered yet.
        var lingeringUnanswered = 0
        /// Operations ever queued, and ever answered (in the same order: batches are FIFO).
        var queued = 0
        var answered = 0
        /// Callers of `flushed()`, each waiting until `answered` reaches its mark.
        var barriers: [(mark: Int, continuation: CheckedContinuation<Void, Never>)] = []
    }

    /// Batches written as one SQLite transaction each on `writer` (see above).
    public convenience init(
        writer: any DatabaseWriter, maxBatch: Int = 512, savepoints: Bool = true,
        synced: (@Sendable (Operation) -> Bool)? = nil, linger: Duration = .zero, lingers: (@Sendable (Operation) -> Bool)? = nil,
        beforeCommit: (@Sendable (Database) throws -> Void)? = nil, afterRollback: (@Sendable () -> Void)? = nil,
        afterCommit: (@Sendable () -> Void)? = nil,
        apply: @escaping Apply
    ) {
        self.init(maxBatch: maxBatch, synced: synced, linger: linger, lingers: lingers) { batch, synced, decided, _, done in
            writer.asyncWriteWithoutTransaction { db in
                // The writer's own setting (FULL: every commit synced) is back after the batch,
                // for every other write on this connection.
                let unsynced = !synced
                let result = Result { () throws -> [Result<Outcome, any Error>] in
                    var setting: Int?
                    if unsynced {
                        setting = try Int.fetchOne(db.cachedStatement(sql: "PRAGMA synchronous"))
                        try db.cachedStatement(sql: "PRAGMA synchronous = NORMAL").execute()
                    }
                    defer { if let setting { try? db.cachedStatement(sql: "PRAGMA synchronous = \(setting)").execute() } }
                    var outcomes: [Result<Outcome, any Error>] = []
                    outcomes.reserveCapacity(batch.count)
                    try db.inTransaction {
                        for (index, operation) in batch.enumerated() {
                            do {
                                guard savepoints else {
                                    let outcome = try apply(db, operation)
                                    decided(index, outcome)
                                    outcomes.append(.success(outcome))
                                    continue
                                }
                                var outcome: Outcome?
                                try db.inSavepoint {
                                    outcome = try apply(db, operation)
                                    return .commit
                                }
                                decided(index, outcome!)
                                outcomes.append(.success(outcome!))
                            } catch {
                                outcomes.append(.failure(error))
                            }
                        }
                        try beforeCommit?(db)
                        return .commit
                    }
                    return outcomes
                }
                switch result {
                case .failure: afterRollback?()
                case .success: afterCommit?()
                }
                done(result)
            }
        }
    }

    /// Batches written by `write` (a store other than SQLite), one at a time, in order.
    public init(
        maxBatch: Int = 512, synced: (@Sendable (Operation) -> Bool)? = nil, linger: Duration = .zero,
        lingers: (@Sendable (Operation) -> Bool)? = nil, write: @escaping BatchWriter
    ) {
        self.write = write
        self.synced = synced
        self.linger = TimeAmount(linger)
        self.lingers = linger > .zero ? lingers : nil
        self.maxBatch = maxBatch
    }

    /// Queues `operation`; `completion` gets its outcome once the batch holding it is durable;
    /// `decided`, when given, its successful outcome as soon as it is applied (see above).
    public func enqueue(_ operation: Operation, decided: Decided? = nil, completion: @escaping Completion) {
        let mayLinger = lingers?(operation) ?? false
        let start = state.withLock { state -> Start in
            state.pending.append(Entry(operation: operation, lingers: mayLinger, decided: decided, completion: completion))
            state.queued += 1
            if mayLinger { state.lingeringUnanswered += 1 } else { state.urgent = true }
            if state.writing { return .no }
            if !state.urgent {
                if state.lingering { return .no }
                state.lingering = true
                return .later
            }
            state.writing = true
            return .now
        }
        switch start {
        case .no: return
        case .later:
            let loop = MultiThreadedEventLoopGroup.currentEventLoop ?? MultiThreadedEventLoopGroup.singleton.any()
            loop.scheduleTask(in: linger) { self.lingered() }
            return
        case .now: break
        }
        // Queued from an event loop (a request's handler), the batch starts once that loop has
        // run what it has in hand: the operations of the other requests it is serving join it.
        // Started at once, the writer would wake on the same core in the middle of the loop's
        // turn and take batches of one or two (at 32 connections, 2.6 operations a batch against
        // 21 this way), each paying a transaction, the book's flush and its pages written again.
        if let loop = MultiThreadedEventLoopGroup.currentEventLoop {
            loop.execute { self.writeNextBatch() }
        } else {
            writeNextBatch()
        }
    }

    /// Whether operations that may linger are queued or in a batch not answered yet (their
    /// effects may not be applied yet).
    public var lingeringInFlight: Bool {
        state.withLock { $0.lingeringUnanswered > 0 }
    }

    /// Applies `operation` in the next batch and returns its outcome once that batch is durable.
    public func submit(_ operation: Operation) async throws -> Outcome {
        try await withCheckedThrowingContinuation { continuation in
            enqueue(operation) { continuation.resume(with: $0) }
        }
    }

    /// Returns once every operation queued before the call has been answered (committed or
    /// failed), at once when none is outstanding: a read after it sees their writes.
    public func flushed() async {
        if state.withLock({ $0.answered >= $0.queued }) { return }
        startLingering()
        await withCheckedContinuation { continuation in
            let done = state.withLock { state -> Bool in
                if state.answered >= state.queued { return true }
                state.barriers.append((state.queued, continuation))
                return false
            }
            if done { continuation.resume() }
        }
    }

    /// The lingering operations' time is up: their batch starts unless one has taken them.
    private func lingered() {
        state.withLock { $0.lingering = false }
        startLingering()
    }

    /// Starts a batch of the operations queued while the writer is idle (lingering ones).
    private func startLingering() {
        let start = state.withLock { state -> Bool in
            guard !state.writing, !state.pending.isEmpty else { return false }
            state.writing = true
            return true
        }
        if start { writeNextBatch() }
    }

    private func writeNextBatch() {
        let maxBatch = self.maxBatch
        let batch = state.withLock { state -> [Entry]? in
            if state.pending.isEmpty {
                state.writing = false
                return nil
            }
            if state.pending.count <= maxBatch {
                defer {
                    state.pending = []
                    state.urgent = false
                }
                return state.pending
            }
            defer { state.pending.removeFirst(maxBatch) }
            return Array(state.pending.prefix(maxBatch))
        }
        guard let batch else { return }
        let proceeded = Atomic(false)
        let proceed: @Sendable () -> Void = {
            if !proceeded.exchange(true, ordering: .acquiringAndReleasing) { self.writeNextBatch() }
        }
        let operations = batch.map { $0.operation }  // not `\.operation`: a key path of a generic type is built at run time, each call
        let mustSync = synced.map { operations.contains(where: $0) } ?? true
        write(operations, mustSync, { index, outcome in batch[index].decided?(outcome) }, proceed) { result in
            // Queue the next batch first (when the writer has not let it start already): it runs
            // on the writer after this completion returns.
            proceed()
            switch result {
            case .success(let outcomes):
                for (entry, outcome) in zip(batch, outcomes) { entry.completion(outcome) }
            case .failure(let error):
                for entry in batch { entry.completion(.failure(error)) }
            }
            let lingered = batch.count { $0.lingers }
            let released = self.state.withLock { state -> [CheckedContinuation<Void, Never>] in
                state.answered += batch.count
                state.lingeringUnanswered -= lingered
                guard !state.barriers.isEmpty else { return [] }
                let answered = state.answered
                defer { state.barriers.removeAll { $0.mark <= answered } }
                return state.barriers.filter { $0.mark <= answered }.map { $0.continuation }
            }
            for continuation in released { continuation.resume() }
        }
    }
}
