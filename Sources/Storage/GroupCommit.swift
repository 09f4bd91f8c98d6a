import GRDB
import Synchronization

/// Group commit: concurrent writes share one SQLite transaction, so one fsync makes a whole
/// batch durable instead of one fsync per write.
///
/// Callers `submit` operations and wait. The first caller to find nobody writing becomes the
/// leader: it takes everything queued (at most `maxBatch`), applies each operation in its own
/// savepoint inside one transaction, commits, hands leadership to the oldest waiting caller
/// and delivers the results. No background task is needed, and an operation is answered only
/// after the transaction holding it has committed.
///
/// An operation that throws is rolled back alone and its caller gets the error; the rest of
/// the batch commits. With `savepoints` (the default) each operation runs in its own
/// savepoint; without, an operation must leave the database unchanged when it throws (write
/// with a single statement, or throw before writing) — savepoints cost two statements per
/// operation. `beforeCommit` runs once per batch, after its operations and inside its
/// transaction (to write state the operations accumulated in memory). If it or the commit
/// fails, every caller of the batch gets that error and `afterRollback` runs, on the writer,
/// so that such in-memory state can be dropped.
public final class GroupCommit<Operation: Sendable, Outcome: Sendable>: Sendable {
    public typealias Apply = @Sendable (Database, Operation) throws -> Outcome

    private let writer: any DatabaseWriter
    private let apply: Apply
    private let maxBatch: Int
    private let savepoints: Bool
    private let beforeCommit: (@Sendable (Database) throws -> Void)?
    private let afterRollback: (@Sendable () -> Void)?
    private let state = Mutex(State())

    struct State {
        var pending: [(Operation, Ticket)] = []
        var leading = false
    }

    public init(
        writer: any DatabaseWriter, maxBatch: Int = 512, savepoints: Bool = true,
        beforeCommit: (@Sendable (Database) throws -> Void)? = nil, afterRollback: (@Sendable () -> Void)? = nil,
        apply: @escaping Apply
    ) {
        self.writer = writer
        self.apply = apply
        self.maxBatch = maxBatch
        self.savepoints = savepoints
        self.beforeCommit = beforeCommit
        self.afterRollback = afterRollback
    }

    /// Applies `operation` in the next batch and returns its outcome once that batch is durable.
    public func submit(_ operation: Operation) async throws -> Outcome {
        let ticket = Ticket()
        var leading = state.withLock { state in
            state.pending.append((operation, ticket))
            if state.leading { return false }
            state.leading = true
            return true
        }
        while true {
            if leading {
                await commitOneBatch()
                leading = false
            }
            switch await ticket.next() {
            case .done(let result): return try result.get()
            case .lead: leading = true
            }
        }
    }

    private func commitOneBatch() async {
        let batch = state.withLock { state in
            let count = min(state.pending.count, maxBatch)
            defer { state.pending.removeFirst(count) }
            return Array(state.pending.prefix(count))
        }
        let operations = batch.map(\.0)
        let (apply, savepoints, beforeCommit, afterRollback) = (self.apply, self.savepoints, self.beforeCommit, self.afterRollback)
        // The completion-handler form is not cancelled with the leader's task: a cancelled
        // request must not roll back the writes of the others in its batch.
        let results: Result<[Result<Outcome, any Error>], any Error> = await withCheckedContinuation { continuation in
            writer.asyncWrite({ db in
                let outcomes = operations.map { operation -> Result<Outcome, any Error> in
                    do {
                        guard savepoints else { return .success(try apply(db, operation)) }
                        var outcome: Outcome?
                        try db.inSavepoint {
                            outcome = try apply(db, operation)
                            return .commit
                        }
                        return .success(outcome!)
                    } catch {
                        return .failure(error)
                    }
                }
                try beforeCommit?(db)
                return outcomes
            }, completion: { _, result in
                if case .failure = result { afterRollback?() }
                continuation.resume(returning: result)
            })
        }
        let next = state.withLock { state -> Ticket? in
            if let first = state.pending.first { return first.1 }
            state.leading = false
            return nil
        }
        next?.signal(.lead)
        switch results {
        case .success(let outcomes):
            for (entry, outcome) in zip(batch, outcomes) { entry.1.signal(.done(outcome)) }
        case .failure(let error):
            for entry in batch { entry.1.signal(.done(.failure(error))) }
        }
    }

    /// What a waiting caller is told: its outcome, or that it leads the next batch.
    enum Signal: Sendable {
        case lead
        case done(Result<Outcome, any Error>)
    }

    /// A caller's mailbox; it may receive `lead` before its own `done`.
    final class Ticket: Sendable {
        private let state = Mutex<(buffered: [Signal], waiter: CheckedContinuation<Signal, Never>?)>(([], nil))

        func signal(_ signal: Signal) {
            let waiter = state.withLock { state -> CheckedContinuation<Signal, Never>? in
                if let waiter = state.waiter {
                    state.waiter = nil
                    return waiter
                }
                state.buffered.append(signal)
                return nil
            }
            waiter?.resume(returning: signal)
        }

        func next() async -> Signal {
            await withCheckedContinuation { continuation in
                let ready = state.withLock { state -> Signal? in
                    if !state.buffered.isEmpty { return state.buffered.removeFirst() }
                    state.waiter = continuation
                    return nil
                }
                if let ready { continuation.resume(returning: ready) }
            }
        }
    }
}
