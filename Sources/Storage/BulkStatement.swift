import GRDB
import Logging
import PostgresNIO

/// A statement a group commit runs for many rows at once, declared once — its table, its
/// columns with their types, what a conflict does — and run as each database is best driven:
/// on SQLite once a row, a cached statement on the writer inside the batch's transaction; on
/// PostgreSQL once for all the rows, bound as one array a column (`unnest`), one round trip.
///
/// Rows are `[SQLValue]` in the order of `columns` (for `update`: the key, then what it sets).
public struct BulkStatement: Sendable {
    /// A column and the PostgreSQL type of its array (`text[]`, `bigint[]`, `boolean[]`).
    public struct Column: Sendable {
        public enum Kind: String, Sendable {
            case text, bigint, boolean
        }

        public let name: String
        public let kind: Kind
        /// Whether it may hold NULL (sent to PostgreSQL as a value and a flag: its arrays have no NULLs).
        public let nullable: Bool

        public static func text(_ name: String, nullable: Bool = false) -> Column { Column(name: name, kind: .text, nullable: nullable) }
        public static func bigint(_ name: String, nullable: Bool = false) -> Column { Column(name: name, kind: .bigint, nullable: nullable) }
        public static func boolean(_ name: String) -> Column { Column(name: name, kind: .boolean, nullable: false) }
    }

    /// What an insert does to a row that conflicts on `key`, column by column.
    public enum Merge: Sendable {
        /// Takes the new value.
        case replace
        /// Adds the new value to the stored one.
        case add
        /// Keeps the greater (a missing stored value counts as 0).
        case greatest
    }

    public let columns: [Column]
    /// The statement SQLite runs for one row.
    public let sqlite: String
    /// The statement PostgreSQL runs for all rows, `$1`… one array a column.
    public let postgres: String

    // MARK: Declarations

    /// `INSERT` of rows; on a conflict on `key`, each of `merge`'s columns merged as it says (no
    /// `key`: a conflict is an error, `SQLUniqueViolation`).
    public static func insert(
        into table: String, _ columns: [Column], onConflict key: [String] = [], merge: [String: Merge] = [:]
    ) -> BulkStatement {
        let names = columns.map(\.name).joined(separator: ", ")
        func conflict(_ qualified: String, _ excluded: String, greatest: String) -> String {
            guard !key.isEmpty else { return "" }
            let sets = columns.map(\.name).filter { merge[$0] != nil }.map { name -> String in
                switch merge[name] {
                case .add: "\(name) = \(qualified)\(name) + \(excluded).\(name)"
                case .greatest: "\(name) = \(greatest)(coalesce(\(qualified)\(name), 0), \(excluded).\(name))"
                default: "\(name) = \(excluded).\(name)"
                }
            }
            return "\nON CONFLICT (\(key.joined(separator: ", "))) DO UPDATE SET \(sets.joined(separator: ", "))"
        }
        return BulkStatement(
            columns: columns,
            sqlite: "INSERT INTO \(table) (\(names)) VALUES (\(sqlPlaceholders(columns.count)))"
                + conflict("", "excluded", greatest: "max"),
            postgres: "INSERT INTO \(table) (\(names))\nSELECT \(values(columns)) FROM \(unnest(columns))"
                + conflict("\(table).", "EXCLUDED", greatest: "GREATEST"))
    }

    /// `UPDATE` of the row each `key` names, setting `set`.
    public static func update(_ table: String, key: [Column], set: [Column]) -> BulkStatement {
        let columns = key + set
        return BulkStatement(
            columns: columns,
            // Numbered, as a row's values come: the key first.
            sqlite: "UPDATE \(table) SET "
                + set.enumerated().map { "\($1.name) = ?\(key.count + $0 + 1)" }.joined(separator: ", ") + " WHERE "
                + key.enumerated().map { "\($1.name) = ?\($0 + 1)" }.joined(separator: " AND "),
            postgres: "UPDATE \(table) SET \(set.map { "\($0.name) = \(value($0))" }.joined(separator: ", "))\nFROM \(unnest(columns))\nWHERE "
                + key.map { "\(table).\($0.name) = v.\($0.name)" }.joined(separator: " AND "))
    }

    /// `DELETE` of the rows each `key` names.
    public static func delete(from table: String, key: [Column]) -> BulkStatement {
        BulkStatement(
            columns: key,
            sqlite: "DELETE FROM \(table) WHERE " + key.map { "\($0.name) = ?" }.joined(separator: " AND "),
            postgres: anyOf(key).map { "DELETE FROM \(table) WHERE \($0)" }
                ?? "DELETE FROM \(table) USING \(unnest(key)) WHERE "
                + key.map { "\(table).\($0.name) = v.\($0.name)" }.joined(separator: " AND "))
    }

    /// `DELETE` of the rows whose `column` is at most a row's value (one row: a cutoff).
    public static func deleteUpTo(from table: String, column: Column) -> BulkStatement {
        BulkStatement(
            columns: [column],
            sqlite: "DELETE FROM \(table) WHERE \(column.name) <= ?",
            postgres: "DELETE FROM \(table) USING \(unnest([column])) WHERE \(table).\(column.name) <= v.\(column.name)")
    }

    /// `SELECT selected` of the rows each `key` names (rows are keys).
    public static func select(_ selected: String, from table: String, key: [Column]) -> BulkStatement {
        let names = key.map(\.name).joined(separator: ", ")
        return BulkStatement(
            columns: key,
            sqlite: "SELECT \(selected) FROM \(table) WHERE " + key.map { "\($0.name) = ?" }.joined(separator: " AND "),
            postgres: "SELECT \(selected) FROM \(table) WHERE " + (anyOf(key) ?? "(\(names)) IN (SELECT \(names) FROM \(unnest(key)))"))
    }

    /// `a = ANY($1::text[])` for a key of one column: the planner reckons its cost by the array's
    /// length and looks each value up in the key's index, where for `IN (SELECT … FROM unnest(…))`
    /// or a join on `unnest` it guesses the rows and, on a table whose statistics lag behind its
    /// growth, scans all of it (seen: a batch's lines read in 7–15 ms instead of 0.3).
    static func anyOf(_ key: [Column]) -> String? {
        guard key.count == 1, let column = key.first, !column.nullable else { return nil }
        return "\(column.name) = ANY($1::\(column.kind.rawValue)[])"
    }

    /// `unnest($1::text[], …) AS v(a, …)`, a nullable column followed by its flag `a_null`.
    static func unnest(_ columns: [Column]) -> String {
        var arrays: [String] = []
        var names: [String] = []
        for column in columns {
            arrays.append("$\(arrays.count + 1)::\(column.kind.rawValue)[]")
            names.append(column.name)
            if column.nullable {
                arrays.append("$\(arrays.count + 1)::boolean[]")
                names.append(column.name + "_null")
            }
        }
        return "unnest(\(arrays.joined(separator: ", "))) AS v(\(names.joined(separator: ", ")))"
    }

    static func value(_ column: Column) -> String {
        column.nullable ? "CASE WHEN v.\(column.name)_null THEN NULL ELSE v.\(column.name) END" : "v.\(column.name)"
    }

    static func values(_ columns: [Column]) -> String { columns.map(value).joined(separator: ", ") }

    // MARK: SQLite

    /// Runs the statement once for each row, on the writer inside its transaction.
    public func execute(_ rows: [[SQLValue]], in db: Database) throws {
        guard !rows.isEmpty else { return }
        let statement = try db.cachedStatement(sql: sqlite)
        try SQLiteSession.unique {
            for row in rows { try statement.execute(arguments: StatementArguments(values: row)) }
        }
    }

    /// The rows a `select` finds for one key.
    public func rows(_ key: [SQLValue], in db: Database) throws -> [SQLRow] {
        try Row.fetchAll(db.cachedStatement(sql: sqlite), arguments: StatementArguments(values: key)).map(SQLRow.init)
    }

    // MARK: PostgreSQL

    /// Runs the statement once for all `rows` (nothing when there are none); the rows it returns.
    /// A duplicate key of an insert without `onConflict` throws `SQLUniqueViolation`, as on SQLite.
    @discardableResult
    public func execute(_ rows: [[SQLValue]], on connection: PostgresConnection, logger: Logger) async throws -> [SQLRow] {
        guard !rows.isEmpty else { return [] }
        var binds = PostgresBindings(capacity: columns.count)
        bind(rows, into: &binds)
        return try await Self.run(PostgresQuery(unsafeSQL: postgres, binds: binds), on: connection, logger: logger)
    }

    /// Runs writes (inserts, updates, deletes: no `select`) as one statement (`together`).
    public static func execute(together writes: [(BulkStatement, [[SQLValue]])], on connection: PostgresConnection, logger: Logger) async throws {
        if let statement = together(writes) { try await run(statement, on: connection, logger: logger) }
    }

    /// Writes (inserts, updates, deletes: no `select`) as one statement, one round trip for all,
    /// each its part of a `WITH`; those without rows are left out (nil when none has rows). The
    /// parts see one snapshot and none sees another's rows: no two may write the same row, nor
    /// one read what another writes. Without `synchronousCommit`, the transaction the statement
    /// is in commits without waiting for its WAL flush (`set_config('synchronous_commit', 'off',
    /// true)`: as `SET LOCAL`, for that transaction alone — the statement's own when it is sent
    /// alone, with no round trip of its own).
    public static func together(_ writes: [(BulkStatement, [[SQLValue]])], synchronousCommit: Bool = true) -> PostgresQuery? {
        let writes = writes.filter { !$0.1.isEmpty }
        if writes.isEmpty { return nil }
        var binds = PostgresBindings(capacity: writes.reduce(0) { $0 + $1.0.columns.count * 2 })
        if writes.count == 1, synchronousCommit {
            writes[0].0.bind(writes[0].1, into: &binds)
            return PostgresQuery(unsafeSQL: writes[0].0.postgres, binds: binds)
        }
        var parts: [String] = []
        for (statement, rows) in writes {
            let first = binds.count
            statement.bind(rows, into: &binds)
            parts.append("w\(parts.count) AS (\(statement.postgres(placeholdersAfter: first)))")
        }
        if !synchronousCommit {
            parts.append("unsynced AS (SELECT set_config('synchronous_commit', 'off', true))")
            return PostgresQuery(unsafeSQL: "WITH " + parts.joined(separator: ",\n") + "\nSELECT 1 FROM unsynced", binds: binds)
        }
        return PostgresQuery(unsafeSQL: "WITH " + parts.joined(separator: ",\n") + "\nSELECT 1", binds: binds)
    }

    /// `postgres` with its placeholders `$1`… numbered from `offset + 1` (the statement's text is
    /// built here: a `$` in it is a placeholder).
    func postgres(placeholdersAfter offset: Int) -> String {
        guard offset > 0 else { return postgres }
        var text = ""
        var rest = Substring(postgres)
        while let dollar = rest.firstIndex(of: "$") {
            text += rest[...dollar]
            let digits = rest[rest.index(after: dollar)...].prefix { $0.isASCII && $0.isNumber }
            text += Int(digits).map { String($0 + offset) } ?? ""
            rest = rest[digits.endIndex...]
        }
        return text + rest
    }

    /// Binds `rows`, one array a column (and a column of NULL flags after a nullable one).
    func bind(_ rows: [[SQLValue]], into binds: inout PostgresBindings) {
        for (index, column) in columns.enumerated() {
            let cells = rows.map { $0[index] }
            switch column.kind {
            case .text:
                binds.append(cells.map { if case .text(let text) = $0 { text } else { "" } })
            case .bigint:
                binds.append(cells.map { if case .integer(let integer) = $0 { integer } else { Int64(0) } })
            case .boolean:
                binds.append(cells.map { if case .bool(let bool) = $0 { bool } else { false } })
            }
            if column.nullable { binds.append(cells.map { $0 == .null }) }
        }
    }

    /// Runs `statement` (one of the above); the rows it returns.
    @discardableResult
    public static func run(_ statement: PostgresQuery, on connection: PostgresConnection, logger: Logger) async throws -> [SQLRow] {
        var found: [SQLRow] = []
        do {
            for try await row in try await connection.query(statement, logger: logger) {
                found.append(try SQLRow(row))
            }
        } catch let error as PSQLError where error.serverInfo?[.sqlState] == "23505" {
            throw SQLUniqueViolation(description: error.serverInfo?[.message] ?? "duplicate key")
        }
        return found
    }
}

extension SQLRow {
    /// A row GRDB read.
    public init(_ row: Row) {
        self.init(row.databaseValues.map(SQLValue.init))
    }
}
