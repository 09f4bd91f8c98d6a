import ConnectionLoops
import ArgumentParser
import Foundation
import Logging
import LumenServer

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the gateway and its services.",
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

    @Option(help: "A PostgreSQL URL, postgres://user@host/db (also :password, :port, ?sslmode=): the services of this process keep their tables there (a schema each: accounts, keys, ledger, registry) instead of SQLite in the data directory. (LUMEN_DATABASE, database)")
    var database: String?

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

    @Option(help: "Where people reach Lumen, such as https://lumen.example.com (behind a proxy, its public address): invitation links start with it, and with https cookies are Secure and HSTS is sent. (LUMEN_PUBLIC_URL, public_url; default the HTTP port's own address)")
    var publicURL: String?

    @Flag(help: "Show people's Gravatar pictures on their profile, fetched by their browsers from gravatar.com (off: initials only, nothing fetched from elsewhere). (LUMEN_GRAVATAR=1, gravatar)")
    var gravatar = false
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

    @Option(help: "Coins to the dollar: the unit in which /api shows money (1–1000000). (LUMEN_COINS_PER_USD, default 100)")
    var coinsPerUSD: Int?

    @Option(help: "PEM certificate chain of this process: the gRPC and HTTP ports then speak TLS only, and it is presented to the services this process calls. (LUMEN_TLS_CERT, tls.cert)")
    var tlsCert: String?

    @Option(help: "PEM private key of --tls-cert. (LUMEN_TLS_KEY, tls.key)")
    var tlsKey: String?

    @Option(help: "PEM CA certificates of the deployment: calls to --<service>-address go over TLS and their certificates must chain to it (and name the address's host); with --tls-require-client-cert, so must callers' certificates. (LUMEN_TLS_CA, tls.ca)")
    var tlsCa: String?

    @Flag(help: "Mutual TLS: the gRPC port accepts only callers presenting a certificate chained to --tls-ca. (LUMEN_TLS_REQUIRE_CLIENT_CERT=1, tls.require_client_cert)")
    var tlsRequireClientCert = false

    @Flag(help: "Allow plaintext HTTP and gRPC on interfaces other than loopback, and plaintext calls to services at non-loopback addresses (refused otherwise: tokens would cross the network in the clear). (LUMEN_INSECURE_PLAINTEXT=1, insecure_plaintext)")
    var insecurePlaintext = false

    @Flag(help: """
        Demo mode: on an empty data directory, create a demo organisation, a demo model served by the \
        built-in mock provider and an API key, and print {"api_key", "email", "management_token", \
        "model", "password"} (the dashboard's administrator) as the first line of standard \
        output. No network needed. (LUMEN_DEMO=1)
        """)
    var demo = false

    func run() async throws {
        EventLoopCount.matchAvailableCPUs()  // before anything starts NIO's event loops
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

    /// The options given, keyed by flag, as typed.
    var flags: [String: String] {
        let given: [String: String?] = [
            "--data-dir": dataDir, "--database": database, "--http-host": httpHost, "--http-port": httpPort.map(String.init),
            "--grpc-host": grpcHost, "--grpc-port": grpcPort.map(String.init),
            "--metrics-host": metricsHost, "--metrics-port": metricsPort.map(String.init),
            "--read-header-timeout": readHeaderTimeout.map(String.init), "--body-timeout": bodyTimeout.map(String.init),
            "--idle-timeout": idleTimeout.map(String.init), "--max-connections": maxConnections.map(String.init),
            "--services": services, "--keys-address": keysAddress, "--accounts-address": accountsAddress,
            "--ledger-address": ledgerAddress, "--registry-address": registryAddress, "--log-level": logLevel, "--public-url": publicURL,
            "--probe-interval": probeInterval.map(String.init), "--hold-ttl": holdTTL.map(String.init),
            "--usage-retention-days": usageRetentionDays.map(String.init), "--shutdown-grace": shutdownGrace.map(String.init),
            "--coins-per-usd": coinsPerUSD.map(String.init), "--demo": demo ? "true" : nil,
            "--tls-cert": tlsCert, "--tls-key": tlsKey, "--tls-ca": tlsCa,
            "--tls-require-client-cert": tlsRequireClientCert ? "true" : nil,
            "--insecure-plaintext": insecurePlaintext ? "true" : nil,
            "--gravatar": gravatar ? "true" : nil,
        ]
        return given.compactMapValues { $0 }
    }

    /// Flags over `LUMEN_*` variables over the file over defaults (LumenServer decides).
    func resolve(environment: [String: String]) throws -> ServeConfiguration {
        try ServeConfiguration.resolve(flags: flags, file: config, environment: environment)
    }
}
