import Foundation
import Logging
import NIOSSL
import PostgresNIO
import Synchronization

/// A PostgreSQL database that Lumen's services keep their tables in: a pool of connections
/// (postgres-nio's `PostgresClient`) from a `postgres://` URL, and each service's migrations.
///
/// Services share one database and keep to their own schema (`registry`, `ledger`, …): no
/// service reads another's tables, as with one SQLite file each. `run()` must run (a lifecycle
/// service) for queries to be answered.
public final class PostgresServiceDatabase: Sendable {
    public let client: PostgresClient
    /// The URL without its password, for logs and messages.
    public let redactedURL: String
    let logger: Logger
    /// Where a connection of its own (a service's claim) connects.
    let connection: PostgresConnection.Configuration
    /// Where the pools connect.
    let pool: PostgresClient.Configuration
    /// The pools of `client(searchPath:)`, running, stopped when `run()` ends.
    let schemaClients = Mutex<[Task<Void, Never>]>([])

    /// Parses `url` (`postgres://user[:password]@host[:port]/database[?sslmode=…]`, sslmode as libpq's,
    /// also `postgresql://`); at most `maxConnections` connections open, as needed, once
    /// `run()` runs.
    public init(url: String, maxConnections: Int = 20, logger: Logger) throws {
        var (configuration, redacted) = try Self.configuration(url)
        self.pool = configuration
        configuration.options.maximumConnections = maxConnections
        self.client = PostgresClient(configuration: configuration, backgroundLogger: logger)
        self.connection = try Self.connectionConfiguration(url)
        self.redactedURL = redacted
        self.logger = logger
    }

    /// Runs `run()` in a task of its own, already running when this returns (so that a query
    /// right after finds the pool running); cancel the task to stop it.
    public func start() -> Task<Void, Never> {
        Task.immediate { await self.run() }
    }

    /// Runs the connection pool until cancelled; then stops the pools of `client(searchPath:)`.
    public func run() async {
        await client.run()
        let running = schemaClients.withLock { clients in
            defer { clients.removeAll() }
            return clients
        }
        for task in running { task.cancel() }
        for task in running { await task.value }
    }

    /// A pool of its own whose connections look for tables in `searchPath` first (a service's
    /// schema: its statements name tables unqualified). It runs from now on (started before
    /// this returns, so that its first query finds it running) until `run()` ends.
    public func client(searchPath: String, maxConnections: Int) -> PostgresClient {
        var configuration = pool
        configuration.options.maximumConnections = maxConnections
        configuration.options.additionalStartupParameters = [("search_path", searchPath)]
        let client = PostgresClient(configuration: configuration, backgroundLogger: logger)
        let running = Task.immediate { await client.run() }
        schemaClients.withLock { $0.append(running) }
        return client
    }

    /// Runs `body` in a transaction (committed when it returns, rolled back when it throws); a
    /// refusal thrown by `body` comes out as itself, not wrapped in postgres-nio's
    /// `PostgresTransactionError` (which stays for failures of the transaction itself).
    public func transaction<Result: Sendable>(
        _ body: @Sendable (PostgresConnection) async throws -> Result
    ) async throws -> Result {
        try await Self.transaction(on: client, logger: logger, body)
    }

    /// `transaction(_:)` on another pool of the database (`client(searchPath:maxConnections:)`).
    public static func transaction<Result: Sendable>(
        on client: PostgresClient, logger: Logger, _ body: @Sendable (PostgresConnection) async throws -> Result
    ) async throws -> Result {
        try await client.withConnection { try await transaction(on: $0, logger: logger, body) }
    }

    /// `transaction(_:)` on a connection already leased.
    public static func transaction<Result: Sendable>(
        on connection: PostgresConnection, logger: Logger, _ body: @Sendable (PostgresConnection) async throws -> Result
    ) async throws -> Result {
        do {
            return try await connection.withTransaction(logger: logger) { try await body($0) }
        } catch let error as PostgresTransactionError {
            if let closureError = error.closureError, error.rollbackError == nil { throw closureError }
            throw error
        }
    }

    /// The client configuration of `url`, and the URL with its password hidden.
    public static func configuration(_ url: String) throws -> (PostgresClient.Configuration, String) {
        guard let components = URLComponents(string: url), let scheme = components.scheme,
            ["postgres", "postgresql"].contains(scheme.lowercased())
        else { throw PostgresURLError("the database URL must be postgres://user@host[:port]/database, not \(redact(url))") }
        guard let host = components.host, !host.isEmpty else { throw PostgresURLError("the database URL names no host") }
        guard let user = components.user, !user.isEmpty else {
            throw PostgresURLError("the database URL names no user (postgres://USER@\(host)/…)")
        }
        let database = String(components.path.drop(while: { $0 == "/" }))
        guard !database.isEmpty else { throw PostgresURLError("the database URL names no database (…@\(host)/DATABASE)") }
        let port = components.port ?? 5432
        // sslmode as libpq reads it: prefer and require encrypt without checking the server's
        // certificate, verify-ca checks its chain, verify-full its chain and name.
        let sslmode = components.queryItems?.first { $0.name == "sslmode" }?.value ?? "prefer"
        func checking(_ verification: CertificateVerification) -> TLSConfiguration {
            var configuration = TLSConfiguration.makeClientConfiguration()
            configuration.certificateVerification = verification
            return configuration
        }
        let tls: PostgresClient.Configuration.TLS
        switch sslmode {
        case "disable": tls = .disable
        case "allow", "prefer": tls = .prefer(checking(.none))
        case "require": tls = .require(checking(.none))
        case "verify-ca": tls = .require(checking(.noHostnameVerification))
        case "verify-full": tls = .require(checking(.fullVerification))
        default: throw PostgresURLError("sslmode must be disable, prefer, require, verify-ca or verify-full, not \(sslmode)")
        }
        let configuration = PostgresClient.Configuration(
            host: host, port: port, username: user.removingPercentEncoding ?? user,
            password: components.password?.removingPercentEncoding, database: database, tls: tls)
        return (configuration, redact(url))
    }

    /// The configuration of one connection to `url` (its TLS as `configuration(_:)` reads it).
    static func connectionConfiguration(_ url: String) throws -> PostgresConnection.Configuration {
        let (pool, _) = try configuration(url)
        let components = URLComponents(string: url)!
        let sslmode = components.queryItems?.first { $0.name == "sslmode" }?.value ?? "prefer"
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.certificateVerification = sslmode == "verify-full" ? .fullVerification : sslmode == "verify-ca" ? .noHostnameVerification : .none
        let context = try NIOSSLContext(configuration: tls)
        let mode: PostgresConnection.Configuration.TLS =
            switch sslmode {
            case "disable": .disable
            case "allow", "prefer": .prefer(context)
            default: .require(context)
            }
        return PostgresConnection.Configuration(
            host: pool.host ?? components.host ?? "", port: pool.port ?? 5432, username: pool.username,
            password: pool.password, database: pool.database, tls: mode)
    }

    /// Claims `service`'s schema for this process: a session-level advisory lock on a connection
    /// of its own, held until `release()` — or until the process ends, `kill -9` included (the
    /// server drops the lock with the connection). A second process claiming the same service on
    /// the same database is refused, as a second process on the same SQLite files is.
    public func claim(service: String) async throws -> PostgresServiceClaim {
        let connection = try await connect()
        var held = false
        do {
            for try await granted in try await connection.query(
                "SELECT pg_try_advisory_lock(hashtext(\("lumen:" + service)))", logger: logger
            ).decode(Bool.self) {
                held = granted
            }
        } catch {
            try? await connection.close()
            throw error
        }
        guard held else {
            try? await connection.close()
            throw PostgresClaimError(
                "the \(service) service already runs on \(redactedURL) in another Lumen process: stop it, or give this one another database")
        }
        return PostgresServiceClaim(connection: connection)
    }

    /// Connects once and lets go: a database that cannot be reached (or refuses the user) is
    /// reported now, in the connection's own words, where the pools would retry for a minute
    /// before giving up.
    public func checkReachable() async throws {
        try await connect().close()
    }

    /// A connection of its own, outside the pools (connect timeout: postgres-nio's, 10 s).
    private func connect() async throws -> PostgresConnection {
        do {
            return try await PostgresConnection.connect(configuration: connection, id: 0, logger: logger)
        } catch {
            throw PostgresURLError("cannot connect to \(redactedURL): \(String(reflecting: error))")
        }
    }

    /// `url` with the password replaced by `***`.
    public static func redact(_ url: String) -> String {
        guard var components = URLComponents(string: url), components.password != nil else { return url }
        components.password = "***"
        return components.string ?? url
    }

    /// Brings `schema` up to date with `migrations` (each a list of statements), once: every
    /// migration not yet recorded in `lumen_migrations` runs in one transaction with its record,
    /// under an advisory lock, so that processes starting together never run one twice. A
    /// database that has migrations this Lumen does not know was written by a newer one: refused.
    /// Brings `schema` up to date with `migrations`, whose statements name its tables
    /// unqualified (they run with the schema first on the search path).
    public func migrate(schema: String, _ migrations: [SQLMigration]) async throws {
        try await migrate(schema: schema, migrations.map { (name: $0.name, statements: $0.statements(.postgres)) }, searchPath: true)
    }

    public func migrate(schema: String, _ migrations: [(name: String, statements: [String])], searchPath: Bool = false) async throws {
        do {
            try await transaction { connection in
                // One lock for every schema, taken first: the first process creates and migrates,
                // the others wait and find it done (CREATE … IF NOT EXISTS alone races).
                try await connection.query("SELECT pg_advisory_xact_lock(7206001)", logger: logger)
                try await connection.query(
                    "CREATE TABLE IF NOT EXISTS lumen_migrations (schema_name TEXT NOT NULL, name TEXT NOT NULL, applied_at BIGINT NOT NULL, PRIMARY KEY (schema_name, name))",
                    logger: logger)
                var applied = Set<String>()
                for try await name in try await connection.query(
                    "SELECT name FROM lumen_migrations WHERE schema_name = \(schema)", logger: logger
                ).decode(String.self) {
                    applied.insert(name)
                }
                let known = Set(migrations.map(\.name))
                if let unknown = applied.subtracting(known).sorted().first {
                    throw PostgresMigrationError(
                        "the \(schema) schema has migration \"\(unknown)\", which this Lumen does not know: it was written by a newer version; upgrade Lumen")
                }
                try await connection.query(PostgresQuery(unsafeSQL: "CREATE SCHEMA IF NOT EXISTS \(schema)"), logger: logger)
                if searchPath {
                    try await connection.query(PostgresQuery(unsafeSQL: "SET LOCAL search_path TO \(schema), public"), logger: logger)
                }
                for migration in migrations where !applied.contains(migration.name) {
                    for statement in migration.statements {
                        try await connection.query(PostgresQuery(unsafeSQL: statement), logger: logger)
                    }
                    let now = Int64(Date().timeIntervalSince1970 * 1000)
                    try await connection.query(
                        "INSERT INTO lumen_migrations (schema_name, name, applied_at) VALUES (\(schema), \(migration.name), \(now))",
                        logger: logger)
                }
            }
        } catch let error as PostgresMigrationError {
            throw error
        } catch {
            throw PostgresMigrationError("cannot migrate the \(schema) schema at \(redactedURL): \(String(reflecting: error))")
        }
    }
}

public struct PostgresURLError: Error, CustomStringConvertible, Sendable {
    public var description: String
    init(_ description: String) { self.description = description }
}

/// A service's schema held by another process (`claim`).
public struct PostgresClaimError: Error, CustomStringConvertible, Sendable {
    public var description: String
    init(_ description: String) { self.description = description }
}

/// A service's claim on its schema (`PostgresServiceDatabase.claim`).
public final class PostgresServiceClaim: Sendable {
    let connection: PostgresConnection

    init(connection: PostgresConnection) { self.connection = connection }

    /// Lets the schema go.
    public func release() async { try? await connection.close() }
}

public struct PostgresMigrationError: Error, CustomStringConvertible, Sendable {
    public var description: String
    init(_ description: String) { self.description = description }
}

/// Where a service keeps its tables: a SQLite file (or memory), or a schema of a PostgreSQL
/// database shared by the services.
public enum StoreLocation: Sendable {
    case sqlite(ServiceDatabase.Location)
    case postgres(PostgresServiceDatabase)
}

/// Runs async bodies one at a time, in the order they arrive: a PostgreSQL store's writes, so
/// that what each publishes after its commit goes out in commit order.
public final class SerialWrites: Sendable {
    private struct State {
        var busy = false
        var waiting: [CheckedContinuation<Void, Never>] = []
    }

    private let state = Mutex(State())

    public init() {}

    public func run<Result: Sendable>(_ body: () async throws -> Result) async throws -> Result {
        await acquire()
        defer { release() }
        return try await body()
    }

    private func acquire() async {
        await withCheckedContinuation { continuation in
            let now = state.withLock { state -> Bool in
                if !state.busy {
                    state.busy = true
                    return true
                }
                state.waiting.append(continuation)
                return false
            }
            if now { continuation.resume() }
        }
    }

    private func release() {
        let next = state.withLock { state -> CheckedContinuation<Void, Never>? in
            guard !state.waiting.isEmpty else {
                state.busy = false
                return nil
            }
            return state.waiting.removeFirst()
        }
        next?.resume()
    }
}
