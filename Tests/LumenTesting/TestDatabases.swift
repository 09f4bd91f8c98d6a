import Foundation
import Logging
import PostgresNIO
import SharedRules
import Storage

/// The stores a test runs against: SQLite always; PostgreSQL when `LUMEN_TEST_POSTGRES_URL`
/// names a server the test may create databases on (`scripts/test.sh` starts one and sets it,
/// with `LUMEN_TEST_POSTGRES_REQUIRED=1` so that a missing server fails the run instead of
/// leaving the PostgreSQL cases out).
public enum TestStore: String, Sendable, CustomStringConvertible, CaseIterable {
    case sqlite, postgres

    public var description: String { rawValue }

    /// The stores available here.
    public static var available: [TestStore] {
        let environment = ProcessInfo.processInfo.environment
        if environment["LUMEN_TEST_POSTGRES_URL"]?.isEmpty == false { return [.sqlite, .postgres] }
        precondition(
            environment["LUMEN_TEST_POSTGRES_REQUIRED"] != "1",
            "LUMEN_TEST_POSTGRES_REQUIRED=1 but no LUMEN_TEST_POSTGRES_URL: start one with scripts/postgres.sh")
        return [.sqlite]
    }
}

/// A fresh PostgreSQL database for one test, dropped afterwards.
public enum TestPostgres {
    /// Runs `body` with a new, empty database on the server of `LUMEN_TEST_POSTGRES_URL`, its
    /// connection pool running; drops the database afterwards.
    public static func withDatabase<Result: Sendable>(
        _ body: @Sendable (PostgresServiceDatabase) async throws -> Result
    ) async throws -> Result {
        guard let serverURL = ProcessInfo.processInfo.environment["LUMEN_TEST_POSTGRES_URL"], var components = URLComponents(string: serverURL)
        else { throw TestPostgresError.noServer }
        var logger = Logger(label: "test-postgres")
        logger.logLevel = .critical
        let name = "lumen_test_" + Identifier.make("db").lowercased().replacingOccurrences(of: "db_", with: "")
        // Few connections each: many tests run at once against one server.
        let admin = try PostgresServiceDatabase(url: serverURL, maxConnections: 1, logger: logger)
        components.path = "/" + name
        let database = try PostgresServiceDatabase(url: components.string!, maxConnections: 4, logger: logger)
        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await admin.run() }
            group.addTask { await database.run() }
            defer { group.cancelAll() }
            try await admin.client.query(PostgresQuery(unsafeSQL: "CREATE DATABASE \(name)"))
            do {
                let result = try await body(database)
                try await drop(name, admin)
                return result
            } catch {
                try? await drop(name, admin)
                throw error
            }
        }
    }

    static func drop(_ name: String, _ admin: PostgresServiceDatabase) async throws {
        try await admin.client.query(PostgresQuery(unsafeSQL: "DROP DATABASE IF EXISTS \(name) WITH (FORCE)"))
    }
}

enum TestPostgresError: Error, CustomStringConvertible {
    case noServer
    var description: String { "LUMEN_TEST_POSTGRES_URL is not set: scripts/postgres.sh start DIR prints one" }
}
