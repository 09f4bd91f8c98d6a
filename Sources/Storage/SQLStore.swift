import Foundation
import GRDB
import Logging
import PostgresNIO
import Synchronization

/// A service's tables in SQLite or in a PostgreSQL schema, read and written through the same
/// statements: the service's rules are written once, against `SQLSession`.
///
/// Statements use `?` placeholders (numbered `$1, $2, …` for PostgreSQL) and what both dialects
/// accept: `ON CONFLICT … DO NOTHING / DO UPDATE`, `TRUE`/`FALSE`, `lower()`, `substr()`,
/// `coalesce()`; `SQLDialect` spells the few that differ. Text compares byte-wise in both (a
/// PostgreSQL schema's text columns are `COLLATE "C"`), so orders are the same.
///
/// Writes are serialised — one transaction at a time, in the order they arrive — and what a
/// write registers with `afterCommit` runs after its commit, before the next write starts:
/// events published there go out in commit order. A write is not cancelled with its caller: a
/// transaction that began ends in a commit or a rollback.
public protocol SQLStore: Sendable {
    var dialect: SQLDialect { get }
    /// Runs `body` against committed data, outside any write transaction.
    func read<Result: Sendable>(_ body: @escaping @Sendable (any SQLSession) async throws -> Result) async throws -> Result
    /// Runs `body` in a transaction: committed when it returns, rolled back when it throws.
    func write<Result: Sendable>(_ body: @escaping @Sendable (any SQLSession) async throws -> Result) async throws -> Result
    /// Runs `body`'s reads against one committed state (each `read` statement may see a later one).
    func snapshot<Result: Sendable>(_ body: @escaping @Sendable (any SQLSession) async throws -> Result) async throws -> Result
}

public enum SQLDialect: Sendable {
    case sqlite, postgres

    /// A condition: `needle` occurs in `haystack` (both SQL expressions), compared byte-wise.
    public func contains(_ haystack: String, _ needle: String) -> String {
        switch self {
        case .sqlite: "instr(\(haystack), \(needle)) > 0"
        case .postgres: "strpos(\(haystack), \(needle)) > 0"
        }
    }

    /// What ends a `SELECT` that must lock the rows it reads until the transaction ends:
    /// `FOR UPDATE` in PostgreSQL; nothing in SQLite, whose writes are serialised anyway.
    public var forUpdate: String {
        switch self {
        case .sqlite: ""
        case .postgres: " FOR UPDATE"
        }
    }

    /// What follows a text expression in `ORDER BY` so that it sorts byte-wise in both
    /// dialects: nothing in SQLite (BINARY), `COLLATE "C"` in PostgreSQL.
    public var byteOrder: String {
        switch self {
        case .sqlite: ""
        case .postgres: #" COLLATE "C""#
        }
    }

    /// A subquery of the strings of a JSON array bound to one `?` (`id IN (…)` with one value).
    public var jsonStrings: String {
        switch self {
        case .sqlite: "SELECT value FROM json_each(?)"
        case .postgres: "SELECT value FROM json_array_elements_text(CAST(? AS json))"
        }
    }
}

/// One connection's statements, inside a transaction (`SQLStore.write`) or not (`read`).
public protocol SQLSession: Sendable {
    var dialect: SQLDialect { get }
    /// The rows of a query.
    func rows(_ sql: String, _ arguments: [SQLValue]) async throws -> [SQLRow]
    /// Runs a statement that returns no rows.
    func execute(_ sql: String, _ arguments: [SQLValue]) async throws
    /// Runs `action` once the write transaction commits (never when it rolls back).
    func afterCommit(_ action: @escaping @Sendable () -> Void)
}

extension SQLSession {
    public func rows(_ sql: String, _ arguments: SQLValue...) async throws -> [SQLRow] {
        try await rows(sql, arguments)
    }

    public func execute(_ sql: String, _ arguments: SQLValue...) async throws {
        try await execute(sql, arguments)
    }

    /// The first row of a query, if any.
    public func row(_ sql: String, _ arguments: SQLValue...) async throws -> SQLRow? {
        try await rows(sql, arguments).first
    }

    /// The first column of every row.
    public func column<T: SQLDecodable>(_ type: T.Type = T.self, _ sql: String, _ arguments: SQLValue...) async throws -> [T] {
        try await rows(sql, arguments).map { try $0[0] }
    }

    /// The first column of the first row (a count, an existence test).
    public func value<T: SQLDecodable>(_ type: T.Type = T.self, _ sql: String, _ arguments: SQLValue...) async throws -> T? {
        guard let row = try await rows(sql, arguments).first else { return nil }
        return try row[0] as T
    }
}

/// `?, ?, ?` for `count` values (an `IN (…)` list).
public func sqlPlaceholders(_ count: Int) -> String {
    Array(repeating: "?", count: count).joined(separator: ", ")
}

/// A value bound to a statement or read from a row.
public enum SQLValue: Sendable, Equatable {
    case null
    case integer(Int64)
    case bool(Bool)
    case text(String)
    case blob(Data)
}

extension SQLValue: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral, ExpressibleByBooleanLiteral, ExpressibleByNilLiteral {
    public init(stringLiteral value: String) { self = .text(value) }
    public init(integerLiteral value: Int64) { self = .integer(value) }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(nilLiteral: ()) { self = .null }
}

extension SQLValue {
    public static func of(_ value: String?) -> SQLValue { value.map { .text($0) } ?? .null }
    public static func of(_ value: Int64?) -> SQLValue { value.map { .integer($0) } ?? .null }
    public static func of(_ value: Int) -> SQLValue { .integer(Int64(value)) }
    public static func of(_ value: Bool) -> SQLValue { .bool(value) }
    public static func of(_ value: Data?) -> SQLValue { value.map { .blob($0) } ?? .null }
}

/// One row of a query's result, read by column position.
public struct SQLRow: Sendable {
    public let values: [SQLValue]

    public init(_ values: [SQLValue]) { self.values = values }

    public subscript<T: SQLDecodable>(_ index: Int) -> T {
        get throws {
            guard values.indices.contains(index) else { throw SQLDecodingError(index: index, value: .null, type: "\(T.self)") }
            return try T(sql: values[index], index: index)
        }
    }
}

public protocol SQLDecodable {
    init(sql value: SQLValue, index: Int) throws
}

public struct SQLDecodingError: Error, CustomStringConvertible {
    let index: Int
    let value: SQLValue
    let type: String
    public var description: String { "column \(index) holds \(value), not a \(type)" }
}

extension String: SQLDecodable {
    public init(sql value: SQLValue, index: Int) throws {
        guard case .text(let text) = value else { throw SQLDecodingError(index: index, value: value, type: "text") }
        self = text
    }
}

extension Int64: SQLDecodable {
    public init(sql value: SQLValue, index: Int) throws {
        switch value {
        case .integer(let integer): self = integer
        case .bool(let bool): self = bool ? 1 : 0
        default: throw SQLDecodingError(index: index, value: value, type: "integer")
        }
    }
}

extension Int: SQLDecodable {
    public init(sql value: SQLValue, index: Int) throws {
        self = Int(try Int64(sql: value, index: index))
    }
}

extension Bool: SQLDecodable {
    /// SQLite keeps booleans as integers, PostgreSQL as booleans: both read.
    public init(sql value: SQLValue, index: Int) throws {
        switch value {
        case .integer(let integer): self = integer != 0
        case .bool(let bool): self = bool
        default: throw SQLDecodingError(index: index, value: value, type: "boolean")
        }
    }
}

extension Data: SQLDecodable {
    public init(sql value: SQLValue, index: Int) throws {
        guard case .blob(let data) = value else { throw SQLDecodingError(index: index, value: value, type: "blob") }
        self = data
    }
}

extension Optional: SQLDecodable where Wrapped: SQLDecodable {
    public init(sql value: SQLValue, index: Int) throws {
        self = value == .null ? nil : try Wrapped(sql: value, index: index)
    }
}

/// A statement broke a UNIQUE constraint (or a primary key): the row exists.
public struct SQLUniqueViolation: Error, CustomStringConvertible {
    public let description: String
}

// MARK: - SQLite

/// A service's SQLite database (GRDB) as an `SQLStore`. Opened with unsafe transactions
/// allowed: a write's transaction spans several accesses of the writer (one a statement, the
/// body being async), which only this store's serialised writes make.
public final class SQLiteStore: SQLStore {
    public let writer: any DatabaseWriter
    let writes = SerialWrites()
    public var dialect: SQLDialect { .sqlite }

    public init(name: String, at location: ServiceDatabase.Location, migrator: DatabaseMigrator) throws {
        self.writer = try ServiceDatabase.open(name: name, at: location, migrator: migrator, allowsUnsafeTransactions: true)
    }

    public convenience init(name: String, at location: ServiceDatabase.Location, migrations: [SQLMigration]) throws {
        try self.init(name: name, at: location, migrator: migrations.sqliteMigrator)
    }

    /// Reads (`read`, `snapshot`) of a database another component writes (the ledger's group
    /// commit): `write` is not for such a store.
    public init(reading writer: any DatabaseWriter) {
        self.writer = writer
    }

    public func snapshot<Result: Sendable>(_ body: @escaping @Sendable (any SQLSession) async throws -> Result) async throws -> Result {
        guard let pool = writer as? DatabasePool else { return try await read(body) }
        return try await body(SQLiteSession(reader: try pool.makeSnapshot()))
    }

    public func read<Result: Sendable>(_ body: @escaping @Sendable (any SQLSession) async throws -> Result) async throws -> Result {
        // An in-memory database is one connection: its reads wait for the write in progress.
        if writer is DatabaseQueue { return try await writes.run { try await body(SQLiteSession(reader: writer)) } }
        return try await body(SQLiteSession(reader: writer))
    }

    public func write<Result: Sendable>(_ body: @escaping @Sendable (any SQLSession) async throws -> Result) async throws -> Result {
        try await Task { [writer, writes] in
            try await writes.run {
                try await writer.writeWithoutTransaction { db in
                    if db.isInsideTransaction { try db.execute(sql: "ROLLBACK") }
                    try db.execute(sql: "BEGIN IMMEDIATE")
                }
                let session = SQLiteSession(writer: writer)
                let result: Result
                do {
                    result = try await body(session)
                    try await writer.writeWithoutTransaction { try $0.execute(sql: "COMMIT") }
                } catch {
                    try? await writer.writeWithoutTransaction { db in
                        if db.isInsideTransaction { try db.execute(sql: "ROLLBACK") }
                    }
                    throw error
                }
                for action in session.committed.withLock({ $0 }) { action() }
                return result
            }
        }.value
    }
}

final class SQLiteSession: SQLSession {
    let reader: any DatabaseReader
    /// The writer, for a write's session.
    let writer: (any DatabaseWriter)?
    let committed = Mutex<[@Sendable () -> Void]>([])
    var dialect: SQLDialect { .sqlite }

    init(reader: any DatabaseReader) {
        self.reader = reader
        self.writer = nil
    }

    init(writer: any DatabaseWriter) {
        self.reader = writer
        self.writer = writer
    }

    func rows(_ sql: String, _ arguments: [SQLValue]) async throws -> [SQLRow] {
        let arguments = StatementArguments(values: arguments)
        let fetch = { @Sendable (db: Database) throws -> [SQLRow] in
            try Self.unique {
                try Row.fetchAll(db.cachedStatement(sql: sql), arguments: arguments).map { row in
                    SQLRow(row)
                }
            }
        }
        if let writer { return try await writer.writeWithoutTransaction(fetch) }
        return try await reader.read(fetch)
    }

    func execute(_ sql: String, _ arguments: [SQLValue]) async throws {
        guard let writer else { preconditionFailure("a statement that writes runs in SQLStore.write") }
        let arguments = StatementArguments(values: arguments)
        try await writer.writeWithoutTransaction { db in
            try Self.unique { try db.cachedStatement(sql: sql).execute(arguments: arguments) }
        }
    }

    func afterCommit(_ action: @escaping @Sendable () -> Void) {
        committed.withLock { $0.append(action) }
    }

    static func unique<T>(_ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch let error as DatabaseError
            where error.extendedResultCode == .SQLITE_CONSTRAINT_UNIQUE || error.extendedResultCode == .SQLITE_CONSTRAINT_PRIMARYKEY
        {
            throw SQLUniqueViolation(description: error.message ?? "UNIQUE constraint failed")
        }
    }
}

extension StatementArguments {
    /// `values` bound in order. Through GRDB's array literal: its other initialisers are generic
    /// (or cast `[Any]`) and run unspecialised from another module, at several times the cost —
    /// measured on the ledger's group commit, where every write of a request binds a dozen values.
    init(values: [SQLValue]) {
        let v: [(any DatabaseValueConvertible)?] = values.map { $0.databaseValue }
        self =
            switch v.count {
            case 0: []
        case 1: [v[0]]
        case 2: [v[0], v[1]]
        case 3: [v[0], v[1], v[2]]
        case 4: [v[0], v[1], v[2], v[3]]
        case 5: [v[0], v[1], v[2], v[3], v[4]]
        case 6: [v[0], v[1], v[2], v[3], v[4], v[5]]
        case 7: [v[0], v[1], v[2], v[3], v[4], v[5], v[6]]
        case 8: [v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7]]
        case 9: [v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8]]
        case 10: [v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8], v[9]]
        case 11: [v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8], v[9], v[10]]
        case 12: [v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8], v[9], v[10], v[11]]
        case 13: [v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8], v[9], v[10], v[11], v[12]]
        case 14: [v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8], v[9], v[10], v[11], v[12], v[13]]
        case 15: [v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8], v[9], v[10], v[11], v[12], v[13], v[14]]
        case 16: [v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8], v[9], v[10], v[11], v[12], v[13], v[14], v[15]]
        case 17: [v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8], v[9], v[10], v[11], v[12], v[13], v[14], v[15], v[16]]
        case 18: [v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8], v[9], v[10], v[11], v[12], v[13], v[14], v[15], v[16], v[17]]
        case 19: [v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8], v[9], v[10], v[11], v[12], v[13], v[14], v[15], v[16], v[17], v[18]]
        case 20: [v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8], v[9], v[10], v[11], v[12], v[13], v[14], v[15], v[16], v[17], v[18], v[19]]
        case 21: [v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8], v[9], v[10], v[11], v[12], v[13], v[14], v[15], v[16], v[17], v[18], v[19], v[20]]
        case 22: [v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8], v[9], v[10], v[11], v[12], v[13], v[14], v[15], v[16], v[17], v[18], v[19], v[20], v[21]]
        case 23: [v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8], v[9], v[10], v[11], v[12], v[13], v[14], v[15], v[16], v[17], v[18], v[19], v[20], v[21], v[22]]
        case 24: [v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8], v[9], v[10], v[11], v[12], v[13], v[14], v[15], v[16], v[17], v[18], v[19], v[20], v[21], v[22], v[23]]
            default: StatementArguments(v)
            }
    }
}

extension SQLValue {
    var databaseValue: DatabaseValue {
        switch self {
        case .null: .null
        case .integer(let value): value.databaseValue
        case .bool(let value): value.databaseValue
        case .text(let value): value.databaseValue
        case .blob(let value): value.databaseValue
        }
    }

    init(_ value: DatabaseValue) {
        switch value.storage {
        case .null: self = .null
        case .int64(let integer): self = .integer(integer)
        case .double(let double): self = .integer(Int64(double))
        case .string(let text): self = .text(text)
        case .blob(let data): self = .blob(data)
        }
    }
}

// MARK: - PostgreSQL

/// A service's schema of a PostgreSQL database as an `SQLStore`: its statements run with the
/// schema first on the search path (a connection pool of its own), so they name tables
/// unqualified, as on SQLite.
public final class PostgresStore: SQLStore {
    /// The schema's pool (its statements may name its tables unqualified).
    public let client: PostgresClient
    let database: PostgresServiceDatabase
    let logger: Logger
    let writes = SerialWrites()
    public var dialect: SQLDialect { .postgres }

    /// `schema` must have been migrated (`PostgresServiceDatabase.migrate`).
    public init(database: PostgresServiceDatabase, schema: String, maxConnections: Int = 10, logger: Logger) {
        self.database = database
        self.client = database.client(searchPath: schema, maxConnections: maxConnections)
        self.logger = logger
    }

    public func read<Result: Sendable>(_ body: @escaping @Sendable (any SQLSession) async throws -> Result) async throws -> Result {
        try await body(PostgresSession(run: .client(client), logger: logger))
    }

    public func snapshot<Result: Sendable>(_ body: @escaping @Sendable (any SQLSession) async throws -> Result) async throws -> Result {
        try await PostgresServiceDatabase.transaction(on: client, logger: logger) { [logger] connection in
            try await connection.query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY", logger: logger)
            return try await body(PostgresSession(run: .connection(connection), logger: logger))
        }
    }

    public func write<Result: Sendable>(_ body: @escaping @Sendable (any SQLSession) async throws -> Result) async throws -> Result {
        try await Task { [client, writes, logger] in
            try await writes.run {
                let session = try await PostgresServiceDatabase.transaction(on: client, logger: logger) { connection in
                    let session = PostgresSession(run: .connection(connection), logger: logger)
                    return (session, try await body(session))
                }
                for action in session.0.committed.withLock({ $0 }) { action() }
                return session.1
            }
        }.value
    }
}

final class PostgresSession: SQLSession {
    enum Runner: Sendable {
        case client(PostgresClient)
        case connection(PostgresConnection)
    }

    let run: Runner
    let logger: Logger
    let committed = Mutex<[@Sendable () -> Void]>([])
    var dialect: SQLDialect { .postgres }

    init(run: Runner, logger: Logger) {
        self.run = run
        self.logger = logger
    }

    func rows(_ sql: String, _ arguments: [SQLValue]) async throws -> [SQLRow] {
        let query = try Self.query(sql, arguments)
        let sequence: PostgresRowSequence
        do {
            switch run {
            case .client(let client): sequence = try await client.query(query, logger: logger)
            case .connection(let connection): sequence = try await connection.query(query, logger: logger)
            }
            var rows: [SQLRow] = []
            for try await row in sequence {
                rows.append(try SQLRow(row))
            }
            return rows
        } catch let error as PSQLError where error.serverInfo?[.sqlState] == "23505" {
            throw SQLUniqueViolation(description: error.serverInfo?[.message] ?? "duplicate key")
        }
    }

    func execute(_ sql: String, _ arguments: [SQLValue]) async throws {
        _ = try await rows(sql, arguments)
    }

    func afterCommit(_ action: @escaping @Sendable () -> Void) {
        committed.withLock { $0.append(action) }
    }

    /// `sql` with its `?` numbered (outside quotes), and its values bound.
    static func query(_ sql: String, _ arguments: [SQLValue]) throws -> PostgresQuery {
        var numbered = ""
        numbered.reserveCapacity(sql.utf8.count + 8)
        var count = 0
        var quoted: Character?
        for character in sql {
            if let quote = quoted {
                if character == quote { quoted = nil }
                numbered.append(character)
            } else if character == "'" || character == "\"" {
                quoted = character
                numbered.append(character)
            } else if character == "?" {
                count += 1
                numbered += "$\(count)"
            } else {
                numbered.append(character)
            }
        }
        precondition(count == arguments.count, "\(count) placeholders, \(arguments.count) values: \(sql)")
        var binds = PostgresBindings(capacity: arguments.count)
        for argument in arguments {
            switch argument {
            case .null: binds.appendNull()
            case .integer(let value): binds.append(value)
            case .bool(let value): binds.append(value)
            case .text(let value): binds.append(value)
            case .blob(let value): try binds.append(value)
            }
        }
        return PostgresQuery(unsafeSQL: numbered, binds: binds)
    }
}

extension SQLRow {
    /// A PostgreSQL row's values, by column position.
    public init(_ row: PostgresRow) throws {
        self.init(try row.map(SQLValue.init))
    }
}

extension SQLValue {
    /// A PostgreSQL cell's value: integers, booleans, `BYTEA` and text (and what reads as text).
    public init(_ cell: PostgresCell) throws {
        guard cell.bytes != nil else {
            self = .null
            return
        }
        switch cell.dataType {
        case .int2, .int4, .int8: self = .integer(try cell.decode(Int64.self))
        case .bool: self = .bool(try cell.decode(Bool.self))
        case .bytea: self = .blob(try cell.decode(Data.self))
        default: self = .text(try cell.decode(String.self))
        }
    }
}
