import Foundation
import GRDB
import Storage
import Synchronization
import Testing

/// The group commit's two answers: an operation that asks hears its outcome as soon as its batch
/// has applied it — before the commit, which another connection does not see yet — and its
/// completion once the batch is durable; a batch that fails to commit voids the decision.
@Suite("Group commit: decided, then durable")
struct GroupCommitTests {
    enum Failure: Error { case commit }

    static func database() throws -> (DatabasePool, String) {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("group-commit-\(UUID().uuidString).sqlite").path
        let pool = try DatabasePool(path: path)
        try pool.write { try $0.execute(sql: "CREATE TABLE t (id INTEGER PRIMARY KEY)") }
        return (pool, path)
    }

    @Test("A decided outcome comes before the commit (a reader does not see it yet), the completion after")
    func decidedBeforeDurable() async throws {
        let (pool, path) = try Self.database()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let committer = GroupCommit<Int, Int>(writer: pool, savepoints: false) { db, value in
            try db.execute(sql: "INSERT INTO t (id) VALUES (?)", arguments: [value])
            return value * 10
        }
        // What a reader saw when each answer came, in the order they came.
        let seen = Mutex<[(String, Int, Int)]>([])
        let rows: @Sendable () -> Int = { (try? pool.read { try Int.fetchOne($0, sql: "SELECT count(*) FROM t") ?? -1 }) ?? -1 }
        let result: Int = try await withCheckedThrowingContinuation { continuation in
            committer.enqueue(7, decided: { outcome in seen.withLock { $0.append(("decided", outcome, rows())) } }) { result in
                seen.withLock { $0.append(("durable", (try? result.get()) ?? -1, rows())) }
                continuation.resume(with: result)
            }
        }
        #expect(result == 70)
        let answers = seen.withLock { $0 }
        #expect(answers.map(\.0) == ["decided", "durable"])
        #expect(answers.map(\.1) == [70, 70])
        #expect(answers.map(\.2) == [0, 1], "decided before the commit, durable after it")
    }

    @Test("A batch of operations that need no sync commits at synchronous NORMAL; the writer's FULL is back after it")
    func unsyncedBatch() async throws {
        let (pool, path) = try Self.database()
        defer { try? FileManager.default.removeItem(atPath: path) }
        try await pool.writeWithoutTransaction { try $0.execute(sql: "PRAGMA synchronous = FULL") }
        let setting: @Sendable (Database) throws -> Int = { try Int.fetchOne($0, sql: "PRAGMA synchronous") ?? -1 }
        // Negative values must be synced before their callers hear of them; each answers the
        // setting its batch committed at.
        let committer = GroupCommit<Int, Int>(writer: pool, savepoints: false, synced: { $0 < 0 }) { db, value in
            try db.execute(sql: "INSERT INTO t (id) VALUES (?)", arguments: [value])
            return try setting(db)
        }
        let lazy = try await committer.submit(1)
        #expect(lazy == 1, "NORMAL: committed without a sync of its own")
        let after = try await pool.writeWithoutTransaction { try setting($0) }
        #expect(after == 2, "FULL again for every other write")
        let synced = try await committer.submit(-1)
        #expect(synced == 2)
        let rows = try await pool.read { try Int.fetchOne($0, sql: "SELECT count(*) FROM t") ?? 0 }
        #expect(rows == 2)
    }

    @Test("A batch that fails to commit: its operations were decided, and each hears the failure")
    func failedCommitVoidsTheDecision() async throws {
        let (pool, path) = try Self.database()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let committer = GroupCommit<Int, Int>(writer: pool, savepoints: false, beforeCommit: { _ in throw Failure.commit }) {
            db, value in
            try db.execute(sql: "INSERT INTO t (id) VALUES (?)", arguments: [value])
            return value
        }
        let decided = Mutex(0)
        await #expect(throws: Failure.self) {
            let _: Int = try await withCheckedThrowingContinuation { continuation in
                committer.enqueue(1, decided: { _ in decided.withLock { $0 += 1 } }) { continuation.resume(with: $0) }
            }
        }
        #expect(decided.withLock { $0 } == 1)
        let rows = try await pool.read { try Int.fetchOne($0, sql: "SELECT count(*) FROM t") }
        #expect(rows == 0)
    }

    @Test("An operation that throws is not decided; the others are")
    func refusalIsNotDecided() async throws {
        let (pool, path) = try Self.database()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let committer = GroupCommit<Int, Int>(writer: pool) { db, value in
            guard value >= 0 else { throw Failure.commit }
            try db.execute(sql: "INSERT INTO t (id) VALUES (?)", arguments: [value])
            return value
        }
        final class Decided: Sendable { let values = Mutex<[Int]>([]) }
        let decided = Decided()
        var successes = 0
        for value in [1, -1, 2] {
            let result: Result<Int, any Error> = await withCheckedContinuation { continuation in
                committer.enqueue(value, decided: { outcome in decided.values.withLock { $0.append(outcome) } }) {
                    continuation.resume(returning: $0)
                }
            }
            if case .success = result { successes += 1 }
        }
        #expect(successes == 2)
        #expect(decided.values.withLock { $0 } == [1, 2])
    }

    /// A committer whose batches are counted: each answers the number of its batch.
    static func counting(_ pool: DatabasePool, linger: Duration) -> GroupCommit<Int, Int> {
        let batches = Mutex(0)
        return GroupCommit<Int, Int>(
            writer: pool, savepoints: false, synced: { $0 < 0 }, linger: linger, lingers: { $0 > 0 },
            beforeCommit: { _ in batches.withLock { $0 += 1 } }
        ) { db, value in
            try db.execute(sql: "INSERT INTO t (id) VALUES (?)", arguments: [value])
            return batches.withLock { $0 } + 1
        }
    }

    @Test("An operation that may linger, queued alone, waits for the next one that may not and shares its batch")
    func lingeringJoinsTheNextBatch() async throws {
        let (pool, path) = try Self.database()
        defer { try? FileManager.default.removeItem(atPath: path) }
        // A minute: only the next operation can start the batch in time.
        let committer = Self.counting(pool, linger: .seconds(60))
        async let lingering = committer.submit(1)
        let rows = { try await pool.read { try Int.fetchOne($0, sql: "SELECT count(*) FROM t") ?? -1 } }
        try await Task.sleep(for: .milliseconds(50))
        #expect(try await rows() == 0, "not written alone")
        let urgent = try await committer.submit(-1)
        #expect(try await lingering == urgent, "one batch")
        #expect(try await rows() == 2)
    }

    @Test("A lingering operation is written once its time is up, or at once when someone waits for everything queued")
    func lingeringEnds() async throws {
        let (pool, path) = try Self.database()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let short = Self.counting(pool, linger: .milliseconds(5))
        #expect(try await short.submit(1) == 1)
        let long = Self.counting(pool, linger: .seconds(60))
        let answered = Mutex(false)
        long.enqueue(2) { _ in answered.withLock { $0 = true } }
        let started = ContinuousClock.now
        await long.flushed()
        #expect(answered.withLock { $0 })
        #expect(ContinuousClock.now - started < .seconds(30), "not the minute's linger")
    }
}
