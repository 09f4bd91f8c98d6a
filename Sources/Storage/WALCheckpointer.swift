import GRDB

/// Checkpoints a WAL database beside its writer rather than inside its commits.
///
/// SQLite's automatic checkpoint runs in the commit that takes the log past 1,000 pages, and
/// fsyncs the database file there: every so often one commit — and every operation waiting
/// for it — takes milliseconds (the ledger's p99 on one connection). While `run` runs, the
/// writer's automatic checkpoint is off and a connection of its own copies the log into the
/// database every `interval` (PASSIVE: it never waits for the writer or a reader). A log still
/// past `maxFrames` (a copy made while commits keep coming never finishes, so the log is not
/// started again) gets one checkpoint on the writer (RESTART), after which it starts again from
/// the beginning. When `run` ends, the automatic checkpoint is back.
public struct WALCheckpointer: Sendable {
    let writer: any DatabaseWriter
    let path: String

    /// nil for a database that is not a file in WAL mode (in memory).
    public init?(writer: any DatabaseWriter) {
        guard writer is DatabasePool else { return nil }
        self.writer = writer
        self.path = writer.path
    }

    /// Checkpoints until cancelled.
    public func run(interval: Duration = .milliseconds(100), maxFrames: Int = 16_384) async {
        var configuration = Configuration()
        configuration.label = "checkpoint"
        configuration.busyMode = .immediateError
        guard let connection = try? DatabaseQueue(path: path, configuration: configuration),
            (try? await writer.writeWithoutTransaction({ try $0.execute(sql: "PRAGMA wal_autocheckpoint = 0") })) != nil
        else { return }
        while !Task.isCancelled {
            do {
                try await Task.sleep(for: interval)
            } catch {
                break
            }
            // Busy (another checkpoint, a reader in the way) is normal: the next pass goes on.
            guard let (frames, _) = try? await connection.writeWithoutTransaction({ try $0.checkpoint(.passive) }),
                frames > maxFrames
            else { continue }
            _ = try? await writer.writeWithoutTransaction { try $0.checkpoint(.restart) }
        }
        _ = try? await writer.writeWithoutTransaction { try $0.execute(sql: "PRAGMA wal_autocheckpoint = 1000") }
        _ = try? await connection.writeWithoutTransaction { try $0.checkpoint(.passive) }
    }
}
