import ArgumentParser
import Foundation
import LumenServer

struct Admin: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Manage a deployment from the command line.",
        subcommands: [
            Bootstrap.self, GrantCommand.self, GrantsCommand.self, PoolAdmin.self, LedgerAdmin.self, OperatorTokenAdmin.self,
            ModelsAdmin.self, UserAdmin.self, AuditAdmin.self, SSOAdmin.self,
        ]
    )
}

struct LedgerAdmin: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ledger", abstract: "Inspect the ledger.", subcommands: [LedgerCheckCommand.self])
}

struct LedgerCheckCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Check every pool's reservation and balance; list overruns.",
        usage: "lumen admin ledger check [<options>]",
        discussion: """
            Prints JSON {"ok", "pools", "open_holds", "violations": [{"organization_id", "owner", \
            "reserved_micros", "open_holds_micros"}], "overrun_lines", "overrun_micros", \
            "overruns": [{"request_id", "organization_id", "key_id", "owner", "logical_model", \
            "cost_micros", "overrun_micros"}], "pools_below_zero": [{"organization_id", "owner", \
            "balance_micros", "overrun_micros", "unexplained"}]} and exits with status 1 when a \
            pool's reservation disagrees with its open holds or a pool is further below zero than \
            the overruns (settlements above their holds) charged on its path. Reads the ledger's tables directly (one consistent snapshot), in the data directory or \
            in the PostgreSQL database of `--database`, so it may run while `lumen serve` runs.
            """
    )

    @OptionGroup var data: DataDirectoryOptions
    @OptionGroup var database: DatabaseOptions

    func run() async throws {
        let report = try await DataDirectory.checkLedger(in: try data.path, database: try database.url(config: data.config))
        try printJSON(report)
        if !report.ok { throw ExitCode.failure }
    }
}

struct AuditAdmin: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "audit", abstract: "Check the services' audit logs.", subcommands: [AuditVerifyCommand.self])
}

struct AuditVerifyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Recompute every audit log entry's hash; name the first one edited or removed.",
        usage: "lumen admin audit verify [<options>]",
        discussion: """
            Each service's audit log (accounts, keys, ledger, registry) chains its entries: each \
            carries the hash of the one before. Prints JSON {"ok", "services": {"accounts": …, \
            "keys": …, "ledger": …, "registry": {"intact", "entries", "head_hash", \
            "pruned_through"?} or {"intact": false, "broken_sequence", "reason"}}} and exits with \
            status 1 when an entry was changed, removed or reordered. Entries pruned past \
            --audit-retention-days are vouched for by a checkpoint signed with the deployment's \
            audit signing key, which this checks. Entries removed from the end are found by \
            comparing "head_hash" with one kept elsewhere. Reads the tables directly, in the data \
            directory or in the PostgreSQL database of `--database`, so it may run while `lumen \
            serve` runs.
            """
    )

    @OptionGroup var data: DataDirectoryOptions
    @OptionGroup var database: DatabaseOptions

    @Option(help: "The key of `lumen serve --audit-signing-key`. (LUMEN_AUDIT_SIGNING_KEY, default: the configuration's audit_signing_key, else audit-signing.key in the data directory)")
    var auditSigningKey: String?

    func run() async throws {
        let directory = try data.path
        let key = try ServeConfiguration.auditSigningKey(
            flag: auditSigningKey, file: data.config, dataDirectory: directory, environment: ProcessInfo.processInfo.environment)
        let report = try await DataDirectory.verifyAudit(
            in: directory, database: try database.url(config: data.config), signingKey: key)
        try printJSON(report)
        if !report.ok { throw ExitCode.failure }
    }
}

struct Bootstrap: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Create an organisation, its administrator and a management token.",
        usage: "lumen admin bootstrap --org <name> --admin-email <email> [<options>]",
        discussion: """
            Prints JSON {"organization_id", "admin_user_id", "management_token"}. The token is \
            shown this once: store it now. Refuses to create a second organisation of the same \
            name. Works on the data directory directly, so it may run while `lumen serve` runs.
            """
    )

    @Option(help: "Name of the new organisation.")
    var org: String

    @Option(help: "Email of its first administrator.")
    var adminEmail: String

    @Option(help: "Display name of the administrator (default: the part of the email before @).")
    var adminName: String?

    @OptionGroup var data: DataDirectoryOptions
    @OptionGroup var database: DatabaseOptions

    func run() async throws {
        let result = try await DataDirectory.bootstrap(
            organization: org, adminEmail: adminEmail, adminName: adminName ?? "", in: .directory(try data.path),
            database: try database.url(config: data.config))
        try printJSON(BootstrapOutput(result))
    }
}

func printJSON(_ value: some Encodable) throws {
    print(try AdminOutput.json(value))
}

struct FileHandleOutputStream: TextOutputStream {
    let handle: FileHandle
    static var standardError: Self { .init(handle: .standardError) }
    mutating func write(_ string: String) { handle.write(Data(string.utf8)) }
}
