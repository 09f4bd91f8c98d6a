import ConnectionLoops
import ArgumentParser
import Foundation
import Logging
import LumenServer

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the gateway and its services.",
        // The settings come from `ServeConfiguration.settings` (listed below the discussion);
        // ArgumentParser lists only its own options.
        usage: "lumen serve [<options>]",
        discussion: """
            By default everything runs in this process: the HTTP facade (the dashboard at /, the \
            REST management API, the OpenAI-compatible endpoints) on 127.0.0.1:8080, its metrics (/metrics) on \
            127.0.0.1:9464, and the four RPC services (accounts, \
            keys, ledger, registry), which the facade calls in-process and which are also served \
            over gRPC (HTTP/2) on 127.0.0.1:9090. Data lives in SQLite files under --data-dir \
            (or in PostgreSQL with --database).

            Plaintext is for loopback: the HTTP and gRPC ports on another interface need \
            --tls-cert and --tls-key (or --insecure-plaintext), and so do calls to services at \
            non-loopback addresses (--tls-ca).

            Every setting below is a flag, a LUMEN_* environment variable (--hold-ttl: \
            LUMEN_HOLD_TTL) and, where one is named, a key of the YAML file given with --config \
            (see gateway/lumen.example.yaml); flags win over variables, variables over the file. \
            Port 0 picks a free port; the chosen ports are logged.

            Split deployment: run a subset with --services and point the gateway at services in \
            other processes with --keys-address and friends. The processes authenticate each \
            other with a shared secret in LUMEN_INTERNAL_TOKEN (required when splitting; never \
            put it in the config file).

            \(ServeConfiguration.help())
            """
    )

    /// The settings as typed; `ServeConfiguration.settings` reads them.
    @Argument(parsing: .allUnrecognized, help: .hidden)
    var arguments: [String] = []

    func validate() throws {
        do {
            _ = try ServeConfiguration.flags(from: arguments)
        } catch let error as ConfigurationError {
            throw ValidationError(error.description)
        }
    }

    func run() async throws {
        EventLoopCount.matchAvailableCPUs()  // before anything starts NIO's event loops
        let environment = ProcessInfo.processInfo.environment
        let configuration: ServeConfiguration
        let logger: Logger
        let internalToken: String
        do {
            configuration = try resolve(environment: environment)
            logger = try LogSetup.bootstrap(level: configuration.logLevel, file: configuration.logFile)
            internalToken = try InternalToken.resolve(environment["LUMEN_INTERNAL_TOKEN"], configuration: configuration)
        } catch let error as ConfigurationError {
            var standardError = FileHandleOutputStream.standardError
            print("error: \(error.description)", to: &standardError)
            throw ExitCode.validationFailure
        }
        defer { LogSetup.flush() }  // a clean end loses no line
        do {
            try await Deployment(configuration: configuration, internalToken: internalToken, logger: logger).run()
        } catch let error as ConfigurationError {
            logger.critical("\(error.description)")
            throw ExitCode.failure
        }
    }

    /// The options given, keyed by flag, as typed (a switch as "true").
    var flags: [String: String] {
        get throws { try ServeConfiguration.flags(from: arguments) }
    }

    /// Flags over `LUMEN_*` variables over the file over defaults (LumenServer decides).
    func resolve(environment: [String: String]) throws -> ServeConfiguration {
        try ServeConfiguration.resolve(flags: try flags, environment: environment)
    }
}
