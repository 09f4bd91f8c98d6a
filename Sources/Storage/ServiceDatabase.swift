import Foundation
import GRDB

/// Opens the SQLite database of one service and brings its schema up to date.
///
/// Each service owns one database file (`<data-dir>/<name>.sqlite`) in WAL mode, and no
/// service reads another's file. Migrations are registered by the owning service and run on
/// open; a migration that has shipped is never edited, only followed by a new one.
public enum ServiceDatabase {
    /// Where a service's database lives.
    public enum Location: Sendable, Equatable {
        /// A file `<name>.sqlite` in this directory (created if missing).
        case directory(String)
        /// A private in-memory database, for tests.
        case inMemory
    }

    /// Opens (creating if needed) the database `name` at `location` and runs `migrator`.
    /// `allowsUnsafeTransactions` lets a transaction span several accesses of the writer
    /// (`SQLiteStore`, which alone writes the database it opens).
    ///
    /// - Throws: `StorageError` when the directory cannot be created or the file cannot be
    ///   opened or migrated (for example a database written by a newer Lumen).
    public static func open(
        name: String,
        at location: Location,
        migrator: DatabaseMigrator,
        allowsUnsafeTransactions: Bool = false
    ) throws -> any DatabaseWriter {
        var configuration = Configuration()
        configuration.allowsUnsafeTransactions = allowsUnsafeTransactions
        configuration.foreignKeysEnabled = true
        configuration.busyMode = .timeout(10)
        configuration.label = name
        let writer: any DatabaseWriter
        switch location {
        case .inMemory:
            writer = try DatabaseQueue(configuration: configuration)
        case .directory(let directory):
            do {
                try FileManager.default.createDirectory(
                    atPath: directory, withIntermediateDirectories: true)
            } catch {
                throw StorageError.cannotCreateDirectory(directory, underlying: "\(error)")
            }
            let path = (directory as NSString).appendingPathComponent("\(name).sqlite")
            do {
                let pool = try DatabasePool(path: path, configuration: configuration)
                // FULL makes every commit durable across power loss (the log is synced before
                // the commit returns), not only across a crash of the process. Set on the
                // writer once the pool is open: turning WAL on, GRDB sets NORMAL on it after
                // `prepareDatabase` has run, so a setting made there does not last.
                try pool.writeWithoutTransaction { try $0.execute(sql: "PRAGMA synchronous = FULL") }
                writer = pool
            } catch {
                throw StorageError.cannotOpen(path, underlying: "\(error)")
            }
        }
        do {
            if try writer.read({ try migrator.hasBeenSuperseded($0) }) {
                throw StorageError.newerSchema(name)
            }
            try migrator.migrate(writer)
        } catch let error as StorageError {
            throw error
        } catch {
            throw StorageError.migrationFailed(name, underlying: "\(error)")
        }
        return writer
    }
}

/// Why a service database could not be opened.
public enum StorageError: Error, CustomStringConvertible, Sendable {
    case cannotCreateDirectory(String, underlying: String)
    case cannotOpen(String, underlying: String)
    case newerSchema(String)
    case migrationFailed(String, underlying: String)
    /// The audit signing key cannot be read or written (its path and why).
    case auditSigningKey(String)

    public var description: String {
        switch self {
        case .cannotCreateDirectory(let path, let underlying):
            "cannot create the data directory \(path): \(underlying)"
        case .cannotOpen(let path, let underlying):
            "cannot open the database \(path): \(underlying)"
        case .newerSchema(let name):
            "the \(name) database was written by a newer version of Lumen; upgrade Lumen to open it"
        case .migrationFailed(let name, let underlying):
            "cannot migrate the \(name) database: \(underlying)"
        case .auditSigningKey(let problem):
            "--audit-signing-key: \(problem)"
        }
    }
}
