import Foundation
import Logging
import LumenTesting
import PostgresNIO
import Storage
import Testing

@Suite("PostgreSQL: the URL, the migrations")
struct PostgresServiceDatabaseTests {
    @Test("A database URL is read with its parts, its password never shown; a bad one is refused with what is wrong")
    func urls() throws {
        let (configuration, redacted) = try PostgresServiceDatabase.configuration(
            "postgres://lumen:s%3Acret@db.internal:6543/lumen?sslmode=disable")
        #expect(configuration.host == "db.internal" && configuration.port == 6543)
        #expect(configuration.username == "lumen" && configuration.password == "s:cret" && configuration.database == "lumen")
        #expect(redacted == "postgres://lumen:***@db.internal:6543/lumen?sslmode=disable")
        #expect(try PostgresServiceDatabase.configuration("postgresql://u@h/d").0.port == 5432)
        for mode in ["disable", "allow", "prefer", "require", "verify-ca", "verify-full"] {
            #expect(throws: Never.self) { try PostgresServiceDatabase.configuration("postgres://u@h/d?sslmode=\(mode)") }
        }
        let refusals: [(String, String)] = [
            ("mysql://u@h/d", "must be postgres://"),
            ("postgres://h/d", "names no user"),
            ("postgres://u@h", "names no database"),
            ("postgres://u@h/d?sslmode=sometimes", "sslmode must be"),
            ("postgres://u:hunter2@/d", "names no host"),
        ]
        for (url, message) in refusals {
            #expect {
                _ = try PostgresServiceDatabase.configuration(url)
            } throws: { error in
                "\(error)".contains(message) && !"\(error)".contains("hunter2")
            }
        }
    }

    @Test(
        "Migrations run once, whoever starts first; a schema from a newer Lumen is refused",
        .enabled(if: TestStore.available.contains(.postgres), "needs LUMEN_TEST_POSTGRES_URL"))
    func migrations() async throws {
        try await TestPostgres.withDatabase { database in
            let v1: [(name: String, statements: [String])] = [("v1", ["CREATE TABLE probe.items (id BIGINT PRIMARY KEY)"])]
            // Four processes' worth of callers at once: one creates the table, the others find it done.
            try await withThrowingTaskGroup(of: Void.self) { group in
                for _ in 0..<4 { group.addTask { try await database.migrate(schema: "probe", v1) } }
                try await group.waitForAll()
            }
            let v2 = v1 + [(name: "v2", statements: ["ALTER TABLE probe.items ADD COLUMN name TEXT NOT NULL DEFAULT ''"])]
            try await database.migrate(schema: "probe", v2)
            try await database.migrate(schema: "probe", v2)
            var applied: [String] = []
            for try await name in try await database.client.query(
                "SELECT name FROM lumen_migrations WHERE schema_name = 'probe' ORDER BY name"
            ).decode(String.self) {
                applied.append(name)
            }
            #expect(applied == ["v1", "v2"])
            try await database.client.query("INSERT INTO probe.items (id, name) VALUES (1, 'a')")
            await #expect {
                try await database.migrate(schema: "probe", v1)
            } throws: { error in
                "\(error)".contains("written by a newer version")
            }
        }
    }

    @Test(
        "One process a service: a second claim on the same schema is refused until the first lets go",
        .enabled(if: TestStore.available.contains(.postgres), "needs LUMEN_TEST_POSTGRES_URL"))
    func claims() async throws {
        try await TestPostgres.withDatabase { database in
            let keys = try await database.claim(service: "keys")
            let ledger = try await database.claim(service: "ledger")
            await #expect {
                _ = try await database.claim(service: "keys")
            } throws: { error in
                "\(error)".contains("the keys service already runs on") && "\(error)".contains("another Lumen process")
            }
            await keys.release()
            let again = try await database.claim(service: "keys")
            await again.release()
            await ledger.release()
        }
    }
}
