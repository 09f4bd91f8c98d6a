import ArgumentParser
import Foundation
import Logging
import LumenServer

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the gateway and its services.",
        discussion: """
            By default everything runs in this process: the HTTP facade (REST management API, \
            OpenAI-compatible endpoints) on 127.0.0.1:8080, its metrics (/metrics) on \
            127.0.0.1:9464, and the four RPC services (accounts, \
            keys, ledger, registry), which the facade calls in-process and which are also served \
            over gRPC (HTTP/2, plaintext) on 127.0.0.1:9090. Data lives in SQLite files under \
            --data-dir.

            Every option can also be set by a LUMEN_* environment variable or a key of the YAML \
            file given with --config (see gateway/lumen.example.yaml); flags win over variables, \
            variables over the file. Port 0 picks a free port; the chosen ports are logged.

            Split deployment: run a subset with --services and point the gateway at services in \
            other processes with --keys-address and friends. The processes authenticate each \
            other with a shared secret in LUMEN_INTERNAL_TOKEN (required when splitting; never \
            put it in the config file).
            """
    )

    @Option(help: "YAML configuration file. (LUMEN_CONFIG)")
    var config: String?

    @Option(help: "Directory of the SQLite databases, created if missing. (LUMEN_DATA_DIR, default ./data)")
    var dataDir: String?

    @Option(help: "Interface of the HTTP facade. (LUMEN_HTTP_HOST, default 127.0.0.1)")
    var httpHost: String?

    @Option(help: "Port of the HTTP facade; 0 picks a free one. (LUMEN_HTTP_PORT, default 8080)")
    var httpPort: Int?

    @Option(help: "Interface of the gRPC port. (LUMEN_GRPC_HOST, default 127.0.0.1)")
    var grpcHost: String?

    @Option(help: "Port of the gRPC services; 0 picks a free one. (LUMEN_GRPC_PORT, default 9090)")
    var grpcPort: Int?

    @Option(help: "Interface of the metrics listener (/metrics, /healthz). (LUMEN_METRICS_HOST, default 127.0.0.1)")
    var metricsHost: String?

    @Option(help: "Port of the metrics listener; 0 picks a free one. (LUMEN_METRICS_PORT, default 9464)")
    var metricsPort: Int?

    @Option(help: "Seconds from a request's first byte to the end of its headers; a slower client is disconnected. (LUMEN_READ_HEADER_TIMEOUT, default 10)")
    var readHeaderTimeout: Int?

    @Option(help: "Seconds from the end of a request's headers to the end of its body. (LUMEN_BODY_TIMEOUT, default 60)")
    var bodyTimeout: Int?

    @Option(help: "Seconds a keep-alive connection may wait for its next request. (LUMEN_IDLE_TIMEOUT, default 75)")
    var idleTimeout: Int?

    @Option(help: "HTTP connections held at once; more are closed on arrival. (LUMEN_MAX_CONNECTIONS, default 10000)")
    var maxConnections: Int?

    @Option(help: "Components to run here: comma-separated accounts, keys, ledger, registry, gateway, or all. (LUMEN_SERVICES, default all)")
    var services: String?

    @Option(help: "host:port of a keys service in another process. (LUMEN_KEYS_ADDRESS)")
    var keysAddress: String?

    @Option(help: "host:port of an accounts service in another process. (LUMEN_ACCOUNTS_ADDRESS)")
    var accountsAddress: String?

    @Option(help: "host:port of a ledger service in another process. (LUMEN_LEDGER_ADDRESS)")
    var ledgerAddress: String?

    @Option(help: "host:port of a registry service in another process. (LUMEN_REGISTRY_ADDRESS)")
    var registryAddress: String?

    @Option(help: "trace, debug, info, notice, warning, error or critical. (LUMEN_LOG_LEVEL, default info)")
    var logLevel: String?

    @Option(help: "Seconds between active health probes (GET {base_url}/models) of every upstream backend; 0: off, health then comes from requests alone. (LUMEN_PROBE_INTERVAL, default 0)")
    var probeInterval: Int?

    @Option(help: "Seconds a request's hold lives; one never settled (the gateway died) is then settled at its estimate. Must outlast the longest request. (LUMEN_HOLD_TTL, default 900)")
    var holdTTL: Int?

    @Option(help: "Days of raw usage lines to keep; older settled lines are deleted hourly, their billing totals stay. 0: keep forever. (LUMEN_USAGE_RETENTION_DAYS, default 0)")
    var usageRetentionDays: Int?

    @Option(help: "Seconds that requests in flight at SIGTERM/SIGINT may take to finish (no new ones are accepted); then they are cancelled and billed for what they produced, and the process exits. (LUMEN_SHUTDOWN_GRACE, default 10)")
    var shutdownGrace: Int?

    @Flag(help: """
        Demo mode: on an empty data directory, create a demo organisation, a demo model served by the \
        built-in mock provider and an API key, and print {"api_key", "management_token", "model"} \
        as the first line of standard output. No network needed. (LUMEN_DEMO=1)
        """)
    var demo = false

    func run() async throws {
        let environment = ProcessInfo.processInfo.environment
        let configuration: ServeConfiguration
        let logger: Logger
        let internalToken: String
        do {
            configuration = try resolve(environment: environment)
            logger = try LogSetup.bootstrap(level: configuration.logLevel)
            internalToken = try InternalToken.resolve(environment["LUMEN_INTERNAL_TOKEN"], configuration: configuration)
        } catch let error as ConfigurationError {
            var standardError = FileHandleOutputStream.standardError
            print("error: \(error.description)", to: &standardError)
            throw ExitCode.validationFailure
        }
        do {
            try await Deployment(configuration: configuration, internalToken: internalToken, logger: logger).run()
        } catch let error as ConfigurationError {
            logger.critical("\(error.description)")
            throw ExitCode.failure
        }
    }

    /// Flags over `LUMEN_*` variables over the file over defaults.
    func resolve(environment: [String: String]) throws -> ServeConfiguration {
        var configuration = try ServeConfiguration.load(file: config, environment: environment)
        func pick(_ flag: String?, _ variable: String) -> String? {
            flag ?? environment.nonEmpty(variable)
        }
        if let value = pick(dataDir, "LUMEN_DATA_DIR") { configuration.dataDirectory = value }
        if let value = pick(httpHost, "LUMEN_HTTP_HOST") { configuration.httpHost = value }
        if let value = pick(httpPort.map(String.init), "LUMEN_HTTP_PORT") {
            configuration.httpPort = try ServeConfiguration.port(value, "the HTTP port")
        }
        if let value = pick(grpcHost, "LUMEN_GRPC_HOST") { configuration.grpcHost = value }
        if let value = pick(grpcPort.map(String.init), "LUMEN_GRPC_PORT") {
            configuration.grpcPort = try ServeConfiguration.port(value, "the gRPC port")
        }
        if let value = pick(metricsHost, "LUMEN_METRICS_HOST") { configuration.metricsHost = value }
        if let value = pick(metricsPort.map(String.init), "LUMEN_METRICS_PORT") {
            configuration.metricsPort = try ServeConfiguration.port(value, "the metrics port")
        }
        if let value = pick(services, "LUMEN_SERVICES") { configuration.components = try Component.parseList(value) }
        let addressFlags: [(Component, String?)] = [
            (.accounts, accountsAddress), (.keys, keysAddress), (.ledger, ledgerAddress), (.registry, registryAddress),
        ]
        for (component, flag) in addressFlags {
            let variable = "LUMEN_\(component.rawValue.uppercased())_ADDRESS"
            if let value = pick(flag, variable) {
                configuration.addresses[component] = try ServeConfiguration.address(value, "--\(component.rawValue)-address")
            }
        }
        if let value = pick(logLevel, "LUMEN_LOG_LEVEL") { configuration.logLevel = value }
        func number(_ flag: Int?, _ variable: String, _ option: String, unit: String) throws -> Int? {
            guard let value = pick(flag.map(String.init), variable) else { return nil }
            guard let number = Int(value) else { throw ConfigurationError("\(option) must be a number of \(unit), not \"\(value)\"") }
            return number
        }
        if let seconds = try number(probeInterval, "LUMEN_PROBE_INTERVAL", "--probe-interval", unit: "seconds") {
            configuration.probeIntervalSeconds = try ServeConfiguration.probeInterval(seconds, "--probe-interval")
        }
        if let seconds = try number(holdTTL, "LUMEN_HOLD_TTL", "--hold-ttl", unit: "seconds") {
            configuration.holdTTLSeconds = try ServeConfiguration.holdTTL(seconds, "--hold-ttl")
        }
        if let days = try number(usageRetentionDays, "LUMEN_USAGE_RETENTION_DAYS", "--usage-retention-days", unit: "days") {
            configuration.usageRetentionDays = try ServeConfiguration.retentionDays(days, "--usage-retention-days")
        }
        if let seconds = try number(readHeaderTimeout, "LUMEN_READ_HEADER_TIMEOUT", "--read-header-timeout", unit: "seconds") {
            configuration.readHeaderTimeoutSeconds = try ServeConfiguration.timeout(seconds, "--read-header-timeout")
        }
        if let seconds = try number(bodyTimeout, "LUMEN_BODY_TIMEOUT", "--body-timeout", unit: "seconds") {
            configuration.bodyTimeoutSeconds = try ServeConfiguration.timeout(seconds, "--body-timeout")
        }
        if let seconds = try number(idleTimeout, "LUMEN_IDLE_TIMEOUT", "--idle-timeout", unit: "seconds") {
            configuration.idleTimeoutSeconds = try ServeConfiguration.timeout(seconds, "--idle-timeout")
        }
        if let count = try number(maxConnections, "LUMEN_MAX_CONNECTIONS", "--max-connections", unit: "connections") {
            configuration.maxConnections = try ServeConfiguration.maxConnections(count, "--max-connections")
        }
        if let seconds = try number(shutdownGrace, "LUMEN_SHUTDOWN_GRACE", "--shutdown-grace", unit: "seconds") {
            configuration.shutdownGraceSeconds = try ServeConfiguration.shutdownGrace(seconds, "--shutdown-grace")
        }
        configuration.demo = demo || ["1", "true", "yes"].contains(environment["LUMEN_DEMO"]?.lowercased() ?? "")
        return configuration
    }
}
