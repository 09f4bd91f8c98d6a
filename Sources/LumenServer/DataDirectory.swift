import Accounts
import Foundation
import GRPCCore
import GRPCInProcessTransport
import Keys
import Ledger
import Logging
import LumenAPI
import ModelRegistry
import RPCSupport
import SharedRules
import Storage

/// `lumen admin`'s work on a data directory itself, beside a running server or without one
/// (SQLite in WAL mode): the services it needs run in-process for the occasion, called as the
/// internal caller with a token made for the occasion. Nothing is served.
public enum DataDirectory {
    /// Runs `body` with the keys service of `directory` (or of the PostgreSQL `database`, when
    /// given), as the internal caller.
    public static func withKeys<Result: Sendable>(
        in directory: String, database: String? = nil,
        _ body: @Sendable (Lumen_Keys_V1_KeysService.Client<InProcessTransport.Client>, Metadata) async throws -> Result
    ) async throws -> Result {
        let token = "it-" + Identifier.secret(count: 48)
        return try await withKeysService(in: .directory(directory), database: database) { keys in
            try await withLocalServices([keys], internalToken: token) { client in
                try await CallOrigin.$current.withValue(.onThisMachine) {
                    try await body(Lumen_Keys_V1_KeysService.Client(wrapping: client), .bearer(token))
                }
            }
        }
    }

    /// The keys service on `location`, or on the PostgreSQL `database` (its pool running while
    /// `body` runs; no claim: a server may hold it).
    static func withKeysService<Result: Sendable>(
        in location: ServiceDatabase.Location, database url: String?, _ body: @Sendable (KeysService) async throws -> Result
    ) async throws -> Result {
        try await withStores(in: location, database: url) { stores in
            try await body(KeysService(store: try await stores.keys(), logger: quiet))
        }
    }

    /// Where `lumen admin` finds a service's tables: the data directory, or the schemas of a
    /// PostgreSQL database.
    struct Stores: Sendable {
        let location: ServiceDatabase.Location
        let database: PostgresServiceDatabase?

        func keys() async throws -> KeysService.Store {
            try await open("keys") { try await KeysService.openStore($0, logger: quiet) }
        }

        func ledger() async throws -> LedgerService.Store {
            try await open("ledger") { try await LedgerService.openStore($0, logger: quiet) }
        }

        func registry() async throws -> ModelRegistryService.Store {
            try await open("registry") { try await ModelRegistryService.openStore($0, logger: quiet) }
        }

        func accounts() async throws -> AccountsService.Store {
            try await open("accounts") { try await AccountsService.openStore($0, logger: quiet) }
        }

        private func open<Store>(_ schema: String, _ body: (StoreLocation) async throws -> Store) async throws -> Store {
            guard let database else { return try await body(.sqlite(location)) }
            do {
                return try await body(.postgres(database))
            } catch {
                throw ConfigurationError("cannot open the \(schema) schema in \(database.redactedURL): \(error)")
            }
        }
    }

    /// Runs `body` with the stores of `location`, or of the PostgreSQL `database` (its pool
    /// running while `body` runs).
    static func withStores<Result: Sendable>(
        in location: ServiceDatabase.Location, database url: String?, _ body: @Sendable (Stores) async throws -> Result
    ) async throws -> Result {
        guard let url else { return try await body(Stores(location: location, database: nil)) }
        let database: PostgresServiceDatabase
        do {
            database = try PostgresServiceDatabase(url: url, maxConnections: 2, logger: quiet)
        } catch {
            throw ConfigurationError("--database: \(error)")
        }
        do {
            try await database.checkReachable()
        } catch {
            throw ConfigurationError("--database: \(error)")
        }
        let pool = database.start()
        defer { pool.cancel() }
        return try await body(Stores(location: location, database: database))
    }

    /// Creates an organisation, its administrator and a management token in `location`
    /// (accounts and keys; in the PostgreSQL `database` when given).
    public static func bootstrap(
        organization: String, adminEmail: String, adminName: String = "", in location: ServiceDatabase.Location,
        database: String? = nil
    ) async throws -> OrganizationBootstrap {
        try await withStores(in: location, database: database) { stores in
            let services: [any RegistrableRPCService] = [
                AccountsService(store: try await stores.accounts(), logger: quiet),
                KeysService(store: try await stores.keys(), logger: quiet),
            ]
            let token = "it-" + Identifier.secret(count: 48)
            return try await withLocalServices(services, internalToken: token) { client in
                try await CallOrigin.$current.withValue(.onThisMachine) {
                    try await OrganizationBootstrap.run(
                        organization: organization, adminEmail: adminEmail, adminName: adminName,
                        accounts: Lumen_Accounts_V1_AccountsService.Client(wrapping: client),
                        keys: Lumen_Keys_V1_KeysService.Client(wrapping: client), internalToken: token)
                }
            }
        }
    }

    /// Checks that every pool's reservation equals the sum of its open holds, on one
    /// consistent snapshot of the ledger database of `directory` (read-only; the server may run).
    public static func checkLedger(in directory: String, database: String? = nil) async throws -> LedgerCheck.Report {
        if database != nil {
            return try await withStores(in: .directory(directory), database: database) { stores in
                try await LedgerService.check(try await stores.ledger())
            }
        }
        guard FileManager.default.fileExists(atPath: (directory as NSString).appendingPathComponent("ledger.sqlite")) else {
            throw ConfigurationError("no ledger database in \(directory) (ledger.sqlite); give --data-dir")
        }
        return try await LedgerCheck.run(location: .directory(directory))
    }

    /// Walks the audit log of each service that keeps one, in the data directory or the
    /// PostgreSQL `database` (`lumen admin audit verify`).
    /// A checkpoint of pruned entries is checked with the key at `signingKey` (by default the data
    /// directory's `audit-signing.key`), when there is one.
    public static func verifyAudit(in directory: String, database: String? = nil, signingKey: String? = nil) async throws -> AuditReport {
        let path = signingKey ?? (directory as NSString).appendingPathComponent("audit-signing.key")
        let signer = FileManager.default.fileExists(atPath: path) ? try AuditSigner(path: path, create: false) : nil
        for name in ["accounts", "keys", "ledger", "registry"] where database == nil {
            guard FileManager.default.fileExists(atPath: (directory as NSString).appendingPathComponent("\(name).sqlite")) else {
                throw ConfigurationError("no \(name) database in \(directory) (\(name).sqlite); give --data-dir")
            }
        }
        return try await withStores(in: .directory(directory), database: database) { stores in
            AuditReport(services: [
                "accounts": .init(try await AccountsService.verifyAudit(try await stores.accounts(), signer: signer)),
                "keys": .init(try await KeysService.verifyAudit(try await stores.keys(), signer: signer)),
                "ledger": .init(try await LedgerService.verifyAudit(try await stores.ledger(), signer: signer)),
                "registry": .init(try await ModelRegistryService.verifyAudit(try await stores.registry(), signer: signer)),
            ])
        }
    }

    /// The services' own logging, warnings and worse only: a command prints its result.
    private static var quiet: Logger {
        var logger = Logger(label: "lumen")
        logger.logLevel = .warning
        return logger
    }
}

extension CallOrigin {
    /// A command run on this machine by its current account (the audit log's `cli` actor).
    static var onThisMachine: CallOrigin {
        let name = getpwuid(geteuid()).flatMap { $0.pointee.pw_name.map { String(cString: $0) } }
        return CallOrigin(localUser: name ?? "uid \(geteuid())")
    }
}

/// What `lumen admin audit verify` prints: each service's audit log, intact or where it breaks.
public struct AuditReport: Encodable, Sendable {
    public struct Chain: Encodable, Sendable {
        var intact: Bool
        var entries: Int64
        var headHash: String?
        var brokenSequence: Int64?
        var reason: String?
        var prunedThrough: Int64?

        enum CodingKeys: String, CodingKey {
            case intact, entries, reason
            case headHash = "head_hash"
            case brokenSequence = "broken_sequence"
            case prunedThrough = "pruned_through"
        }

        init(_ verification: AuditVerification) {
            switch verification {
            case .intact(let count, let head, let pruned):
                (intact, entries, headHash, prunedThrough) = (true, count, head, pruned == 0 ? nil : pruned)
            case .broken(let sequence, let why, let checked): (intact, entries, brokenSequence, reason) = (false, checked, sequence, why)
            }
        }
    }

    public var ok: Bool { services.values.allSatisfy(\.intact) }
    var services: [String: Chain]

    enum CodingKeys: String, CodingKey { case ok, services }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(ok, forKey: .ok)
        try container.encode(services, forKey: .services)
    }
}
