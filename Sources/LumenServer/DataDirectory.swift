import Accounts
import Foundation
import GRPCCore
import GRPCInProcessTransport
import Keys
import Ledger
import Logging
import LumenAPI
import RPCSupport
import SharedRules
import Storage

/// `lumen admin`'s work on a data directory itself, beside a running server or without one
/// (SQLite in WAL mode): the services it needs run in-process for the occasion, called as the
/// internal caller with a token made for the occasion. Nothing is served.
public enum DataDirectory {
    /// Runs `body` with the keys service of `directory`, as the internal caller.
    public static func withKeys<Result: Sendable>(
        in directory: String,
        _ body: @Sendable (Lumen_Keys_V1_KeysService.Client<InProcessTransport.Client>, Metadata) async throws -> Result
    ) async throws -> Result {
        let token = "it-" + Identifier.secret(count: 48)
        let keys = try KeysService(location: .directory(directory), logger: quiet)
        return try await withLocalServices([keys], internalToken: token) { client in
            try await body(Lumen_Keys_V1_KeysService.Client(wrapping: client), .bearer(token))
        }
    }

    /// Creates an organisation, its administrator and a management token in `location`
    /// (accounts and keys).
    public static func bootstrap(
        organization: String, adminEmail: String, adminName: String = "", in location: ServiceDatabase.Location
    ) async throws -> OrganizationBootstrap {
        let services: [any RegistrableRPCService] = [
            try AccountsService(location: location, logger: quiet),
            try KeysService(location: location, logger: quiet),
        ]
        let token = "it-" + Identifier.secret(count: 48)
        return try await withLocalServices(services, internalToken: token) { client in
            try await OrganizationBootstrap.run(
                organization: organization, adminEmail: adminEmail, adminName: adminName,
                accounts: Lumen_Accounts_V1_AccountsService.Client(wrapping: client),
                keys: Lumen_Keys_V1_KeysService.Client(wrapping: client), internalToken: token)
        }
    }

    /// Checks that every pool's reservation equals the sum of its open holds, on one
    /// consistent snapshot of the ledger database of `directory` (read-only; the server may run).
    public static func checkLedger(in directory: String) throws -> LedgerCheck.Report {
        guard FileManager.default.fileExists(atPath: (directory as NSString).appendingPathComponent("ledger.sqlite")) else {
            throw ConfigurationError("no ledger database in \(directory) (ledger.sqlite); give --data-dir")
        }
        return try LedgerCheck.run(location: .directory(directory))
    }

    /// The services' own logging, warnings and worse only: a command prints its result.
    private static var quiet: Logger {
        var logger = Logger(label: "lumen")
        logger.logLevel = .warning
        return logger
    }
}
