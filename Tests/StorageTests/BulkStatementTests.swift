import GRDB
import Logging
import LumenTesting
import PostgresNIO
import Storage
import Testing

/// One declaration, two ways to run it: SQLite a row at a time, PostgreSQL all rows at once.
/// The same rows must leave the same table on both.
@Suite("Bulk statements: declared once, the same rows on SQLite and PostgreSQL")
struct BulkStatementTests {
    static let key: [BulkStatement.Column] = [.text("name"), .bigint("part")]
    static let upsert = BulkStatement.insert(
        into: "items", key + [.bigint("note", nullable: true), .boolean("flag"), .bigint("total"), .bigint("seen")],
        onConflict: ["name", "part"], merge: ["note": .replace, "flag": .replace, "total": .add, "seen": .greatest])
    static let plain = BulkStatement.insert(into: "items", key + [.bigint("total")])
    static let update = BulkStatement.update("items", key: key, set: [.bigint("total"), .text("label", nullable: true)])
    static let delete = BulkStatement.delete(from: "items", key: key)
    static let select = BulkStatement.select("name, part, note, flag, total, seen, label", from: "items", key: key)

    /// What the table holds after the same steps, as text, in key order.
    struct Outcome: Equatable {
        var rows: [String]
        var duplicateRefused: Bool
    }

    /// Each step's rows, run in order by `run`.
    static let steps: [(BulkStatement, [[SQLValue]])] = [
        (upsert, [["a", 1, nil, true, 10, 5], ["a", 2, 7, false, 1, 1], ["b", 1, 3, false, 0, 9]]),
        // Conflicts merge: the note and flag replaced, the total added, the greatest seen kept.
        (upsert, [["a", 1, 4, false, 5, 3], ["b", 1, nil, true, 2, 12]]),
        (update, [["a", 2, 100, "two"], ["b", 1, 50, nil], ["zz", 9, 1, "nobody"]]),
        (delete, [["a", 1], ["nope", 0]]),
    ]

    static func render(_ rows: [SQLRow]) throws -> [String] {
        try rows.map { row in
            let note: Int64? = try row[2]
            let label: String? = try row[6]
            return "\(try row[0] as String)/\(try row[1] as Int64) note=\(note.map(String.init) ?? "nil") flag=\(try row[3] as Bool) "
                + "total=\(try row[4] as Int64) seen=\(try row[5] as Int64) label=\(label ?? "nil")"
        }.sorted()
    }

    static let table = """
        CREATE TABLE items (
            name TEXT NOT NULL, part BIGINT NOT NULL, note BIGINT, flag BOOLEAN NOT NULL DEFAULT false,
            total BIGINT NOT NULL DEFAULT 0, seen BIGINT NOT NULL DEFAULT 0, label TEXT,
            PRIMARY KEY (name, part)
        )
        """
    static let keys: [[SQLValue]] = [["a", 1], ["a", 2], ["b", 1], ["c", 3]]

    @Test("Inserts, merges on conflict, updates, deletes and selects by key leave the same rows on either database", arguments: TestStore.available)
    func sameRows(store: TestStore) async throws {
        let expected = [
            "a/2 note=7 flag=false total=100 seen=1 label=two",
            "b/1 note=nil flag=true total=50 seen=12 label=nil",
        ]
        let outcome = try await store == .sqlite ? sqlite() : postgres()
        #expect(outcome == Outcome(rows: expected, duplicateRefused: true))
    }

    func sqlite() throws -> Outcome {
        let queue = try DatabaseQueue()
        return try queue.write { db in
            try db.execute(sql: Self.table)
            for (statement, rows) in Self.steps { try statement.execute(rows, in: db) }
            var found: [SQLRow] = []
            for key in Self.keys { found += try Self.select.rows(key, in: db) }
            let refused: Bool
            do {
                try Self.plain.execute([["a", 2, 1]], in: db)
                refused = false
            } catch is SQLUniqueViolation {
                refused = true
            }
            return Outcome(rows: try Self.render(found), duplicateRefused: refused)
        }
    }

    func postgres() async throws -> Outcome {
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        return try await TestPostgres.withDatabase { [logger] database in
            let found = try await PostgresServiceDatabase.transaction(on: database.client, logger: logger) { connection in
                try await connection.query(PostgresQuery(unsafeSQL: Self.table), logger: logger)
                for (statement, rows) in Self.steps { try await statement.execute(rows, on: connection, logger: logger) }
                return try await Self.select.execute(Self.keys, on: connection, logger: logger)
            }
            let refused: Bool
            do {
                _ = try await PostgresServiceDatabase.transaction(on: database.client, logger: logger) { connection in
                    try await Self.plain.execute([["a", 2, 1]], on: connection, logger: logger)
                }
                refused = false
            } catch is SQLUniqueViolation {
                refused = true
            }
            return Outcome(rows: try Self.render(found), duplicateRefused: refused)
        }
    }

    static let tally = BulkStatement.insert(
        into: "tallies", [.text("name"), .bigint("n"), .text("label", nullable: true)], onConflict: ["name"], merge: ["n": .add])
    static let untally = BulkStatement.delete(from: "tallies", key: [.text("name")])

    @Test(
        "Writes to different tables sent together, as one statement, leave what they leave one by one; a duplicate in any part refuses them all",
        .enabled(if: TestStore.available.contains(.postgres)))
    func together() async throws {
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        try await TestPostgres.withDatabase { [logger] database in
            func run(_ writes: [(BulkStatement, [[SQLValue]])]) async throws {
                try await PostgresServiceDatabase.transaction(on: database.client, logger: logger) { connection in
                    try await BulkStatement.execute(together: writes, on: connection, logger: logger)
                }
            }
            func tallies() async throws -> [String] {
                var found: [String] = []
                let rows = try await database.client.query(PostgresQuery(unsafeSQL: "SELECT name, n, label FROM tallies ORDER BY name"), logger: logger)
                for try await (name, n, label) in rows.decode((String, Int64, String?).self) { found.append("\(name)=\(n) \(label ?? "nil")") }
                return found
            }
            try await database.client.query(PostgresQuery(unsafeSQL: Self.table), logger: logger)
            try await database.client.query(PostgresQuery(unsafeSQL: "CREATE TABLE tallies (name TEXT PRIMARY KEY, n BIGINT NOT NULL, label TEXT)"), logger: logger)
            // Placeholders of each part numbered after the parts before it; a part without rows left out.
            try await run([(Self.upsert, Self.steps[0].1), (Self.delete, []), (Self.tally, [["x", 1, nil], ["y", 2, "why"]])])
            try await run([(Self.update, [["a", 2, 100, "two"]]), (Self.untally, [["x"]]), (Self.tally, [["y", 5, nil]])])
            let items = try await PostgresServiceDatabase.transaction(on: database.client, logger: logger) { connection in
                try await Self.select.execute(Self.keys, on: connection, logger: logger)
            }
            #expect(try Self.render(items) == [
                "a/1 note=nil flag=true total=10 seen=5 label=nil",
                "a/2 note=7 flag=false total=100 seen=1 label=two",
                "b/1 note=3 flag=false total=0 seen=9 label=nil",
            ])
            #expect(try await tallies() == ["y=7 why"])
            await #expect(throws: SQLUniqueViolation.self) {
                try await run([(Self.tally, [["z", 1, "zed"]]), (Self.plain, [["a", 2, 1]])])
            }
            #expect(try await tallies() == ["y=7 why"])
        }
    }

    @Test(
        "Writes sent together without a synchronous commit turn it off for their own transaction alone: committed, and the connection's setting is back after it",
        .enabled(if: TestStore.available.contains(.postgres)))
    func withoutSynchronousCommit() async throws {
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        try await TestPostgres.withDatabase { [logger] database in
            @Sendable func setting(_ connection: PostgresConnection) async throws -> String {
                var found = ""
                for try await (value) in try await connection.query("SHOW synchronous_commit", logger: logger).decode(String.self) { found = value }
                return found
            }
            try await database.client.query(PostgresQuery(unsafeSQL: "CREATE TABLE tallies (name TEXT PRIMARY KEY, n BIGINT NOT NULL, label TEXT)"), logger: logger)
            let writes: [(BulkStatement, [[SQLValue]])] = [(Self.tally, [["x", 1, nil]])]
            let (inside, after) = try await database.client.withConnection { connection in
                // Inside a transaction: off from the statement on, for that transaction.
                let inside = try await PostgresServiceDatabase.transaction(on: connection, logger: logger) { connection in
                    try await BulkStatement.run(try #require(BulkStatement.together(writes, synchronousCommit: false)), on: connection, logger: logger)
                    return try await setting(connection)
                }
                // Alone: the statement's own transaction, committed; the setting back after it.
                try await BulkStatement.run(
                    try #require(BulkStatement.together([(Self.tally, [["y", 2, "why"]])], synchronousCommit: false)), on: connection, logger: logger)
                return (inside, try await setting(connection))
            }
            #expect(inside == "off")
            #expect(after == "on")
            var found: [String] = []
            let rows = try await database.client.query(PostgresQuery(unsafeSQL: "SELECT name, n FROM tallies ORDER BY name"), logger: logger)
            for try await (name, n) in rows.decode((String, Int64).self) { found.append("\(name)=\(n)") }
            #expect(found == ["x=1", "y=2"])
            #expect(BulkStatement.together([(Self.tally, [])], synchronousCommit: false) == nil)
        }
    }
}
