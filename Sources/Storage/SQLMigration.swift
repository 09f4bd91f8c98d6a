import GRDB
import Logging

/// One step of a service's schema, for SQLite and PostgreSQL alike: a service's migrations are
/// one list of these, each named once, with statements of its own per dialect only where the
/// SQL really differs. Statements name tables unqualified: on PostgreSQL they run with the
/// service's schema first on the search path. A migration that has shipped is never edited,
/// only followed by a new one.
public struct SQLMigration: Sendable {
    public let name: String
    let sqlite: [String]
    let postgres: [String]

    /// The same statements in both dialects.
    public init(_ name: String, _ statements: String...) {
        (self.name, self.sqlite, self.postgres) = (name, statements, statements)
    }

    /// Statements of their own per dialect (types, collations, defaults that differ).
    public init(_ name: String, sqlite: [String], postgres: [String]) {
        (self.name, self.sqlite, self.postgres) = (name, sqlite, postgres)
    }

    public func statements(_ dialect: SQLDialect) -> [String] {
        dialect == .sqlite ? sqlite : postgres
    }
}

extension Array where Element == SQLMigration {
    /// The list as GRDB's migrator, for `ServiceDatabase.open`.
    public var sqliteMigrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        for migration in self {
            migrator.registerMigration(migration.name) { db in
                for statement in migration.sqlite { try db.execute(sql: statement) }
            }
        }
        return migrator
    }
}

extension StoreLocation {
    /// A service's tables here, opened and brought up to date with `migrations`: the SQLite
    /// file `<name>.sqlite` of the data directory, or the schema `name` of the PostgreSQL
    /// database.
    public func open(_ name: String, migrations: [SQLMigration], logger: Logger) async throws -> any SQLStore {
        switch self {
        case .sqlite(let location):
            return try SQLiteStore(name: name, at: location, migrations: migrations)
        case .postgres(let database):
            try await database.migrate(schema: name, migrations)
            return PostgresStore(database: database, schema: name, logger: logger)
        }
    }
}
