import Foundation
import GRDB
import Storage
import Testing

/// The durability the README states: every database in WAL mode, every commit synced to the
/// disk before it returns (`synchronous=FULL`), on a new file and on one opened again.
@Suite("Service databases: WAL, every commit synced")
struct ServiceDatabaseTests {
    static let migrator: DatabaseMigrator = {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1") { db in
            try db.execute(sql: "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)")
        }
        return migrator
    }()

    static func settings(_ writer: any DatabaseWriter) throws -> (journal: String?, synchronous: Int?) {
        try writer.writeWithoutTransaction { db in
            (try String.fetchOne(db, sql: "PRAGMA journal_mode"), try Int.fetchOne(db, sql: "PRAGMA synchronous"))
        }
    }

    @Test("The writer of a new and of a reopened database syncs every commit (synchronous=FULL) in WAL mode")
    func writerSyncsEveryCommit() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("storage-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        do {
            let writer = try ServiceDatabase.open(name: "probe", at: .directory(directory), migrator: Self.migrator)
            let (journal, synchronous) = try Self.settings(writer)
            #expect(journal == "wal")
            #expect(synchronous == 2, "PRAGMA synchronous is \(synchronous.map(String.init) ?? "nil"), FULL is 2")
            try await writer.write { try $0.execute(sql: "INSERT INTO t (v) VALUES ('a')") }
            // The checkpointer turns the writer's automatic checkpoint off, not its syncing.
            let checkpointer = try #require(WALCheckpointer(writer: writer))
            let running = Task { await checkpointer.run(interval: .milliseconds(10)) }
            try await Task.sleep(for: .milliseconds(50))
            #expect(try Self.settings(writer).synchronous == 2)
            running.cancel()
            await running.value
        }
        let reopened = try ServiceDatabase.open(name: "probe", at: .directory(directory), migrator: Self.migrator)
        #expect(try Self.settings(reopened).synchronous == 2)
        #expect(try await reopened.read { try String.fetchAll($0, sql: "SELECT v FROM t") } == ["a"])
    }
}
