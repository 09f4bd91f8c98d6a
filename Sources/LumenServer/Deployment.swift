import Accounts
import Conversations
import Dashboard
import Gateway
import GRPCCore
import GRPCInProcessTransport
import GRPCNIOTransportHTTP2
import Hummingbird
import Keys
import Ledger
import Logging
import LumenAPI
import LumenMock
import ModelRegistry
import RPCSupport
import ServiceLifecycle
import SharedRules
import Storage
import UpstreamClient

/// The wiring of one `lumen serve` process: which services run here, how the facade reaches
/// each service (in-process or over HTTP/2), and the lifecycle that runs it all.
public struct Deployment: Sendable {
    /// A listener that is bound and accepting connections.
    public enum Listener: Sendable, Equatable {
        case http(host: String, port: Int)
        case grpc(host: String, port: Int)
        case metrics(host: String, port: Int)
    }

    public let configuration: ServeConfiguration
    public let internalToken: String
    public let logger: Logger
    /// Told about each listener once it is bound (after it was logged).
    public var onListening: @Sendable (Listener) async -> Void

    public init(
        configuration: ServeConfiguration, internalToken: String, logger: Logger,
        onListening: @escaping @Sendable (Listener) async -> Void = { _ in }
    ) {
        self.configuration = configuration
        self.internalToken = internalToken
        self.logger = logger
        self.onListening = onListening
    }

    /// Runs this process's part of the deployment until SIGTERM or SIGINT: claim the ports and
    /// the data, reach the services, open those that run here, set up the demo, serve gRPC and
    /// HTTP, run until signalled.
    public func run() async throws {
        // Nothing touches the data directory before every port is known to be free and the
        // directory's databases are this process's alone.
        try configuration.security.check(configuration)
        try await StartupChecks.ensureFree(StartupChecks.listeners(configuration))
        // With --database every service of this process keeps its tables in PostgreSQL.
        let onPostgres: Set<Component> = configuration.database == nil ? [] : local.intersection(Component.services)
        let lock = try DataDirectoryLock(
            directory: configuration.dataDirectory, services: Component.services.filter { local.contains($0) && !onPostgres.contains($0) })
        defer { lock.release() }
        let postgres = try await PostgresStores(url: configuration.database, claiming: onPostgres, logger: logger)
        defer { postgres?.stop() }
        do {
            // Before anything that serves: whether to trace is decided once, at start.
            let tracing = try configuration.otlpEndpoint.map {
                try TraceExport.start(
                    endpoint: $0, wire: configuration.otlpProtocol, components: local.sorted().map(\.rawValue).joined(separator: ","),
                    logger: logger)
            }
            try await serve(postgres: postgres, tracing: tracing)
        } catch {
            // The schemas' claims are let go (their connections closed) before the error is told.
            await postgres?.release()
            throw error
        }
        await postgres?.release()
    }

    /// Reach the services, open those that run here, set up the demo, serve gRPC and HTTP, run
    /// until signalled; `tracing` exports the traces (stopped last, so that it flushes them all).
    func serve(postgres: PostgresStores?, tracing: (any Service)? = nil) async throws {
        let clients = try ServiceClients(configuration: configuration)
        let opened = try await openServices(clients: clients, postgres: postgres)
        let demo = try await setUpDemo(opened.services)
        if let accounts = opened.accounts { try await applySingleSignOn(to: accounts) }
        // Every listener reports here; once all are up, the demo's credentials are shown last.
        let startup = StartupReport(expected: StartupChecks.listeners(configuration).count) { [configuration, demo] listeners in
            guard let demo else { return }
            for case .http(_, let port) in listeners {
                Demo.announce(
                    demo, httpHost: configuration.httpHost, httpPort: port, tls: configuration.security.serves,
                    dataDirectory: configuration.dataDirectory)
            }
        }
        let onListening: @Sendable (Listener) async -> Void = { [onListening] listener in
            await onListening(listener)
            await startup.listening(listener)
        }

        var lifecycle: [any Service] = (tracing.map { [$0] } ?? []) + clients.lifecycle + opened.background
        var interceptor: AuthInterceptor?
        if !opened.services.isEmpty {
            let (servers, authenticating) = try grpcServers(opened, clients: clients, onListening: onListening)
            lifecycle += servers
            interceptor = authenticating
        }
        if local.contains(.gateway) {
            lifecycle += try gateway(opened, clients: clients, interceptor: interceptor, onListening: onListening)
        }
        try await runUntilSignalled(lifecycle)
    }

    /// The components this process runs.
    var local: Set<Component> { configuration.components }

    /// The services this process runs, opened on their stores, and what runs beside them.
    struct OpenedServices {
        var services: [any RegistrableRPCService] = []
        var background: [any Service] = []
        var ledger: LedgerService?
        var keys: KeysService?
        var accounts: AccountsService?
        /// Those whose changes can stale a cached credential resolution.
        var credentialSources: [any CredentialChangeSource] = []
    }

    /// Opens each service of this process on SQLite in the data directory or on its schema in
    /// PostgreSQL; the registry takes the configuration's models.
    func openServices(clients: ServiceClients, postgres: PostgresStores?) async throws -> OpenedServices {
        let location = ServiceDatabase.Location.directory(configuration.dataDirectory)
        let directory = serviceDirectory(clients)
        var opened = OpenedServices()
        var pruning: [(name: String, prune: @Sendable () async throws -> Int64)] = []
        let retention = configuration.auditRetentionDays
        do {
            // The key that signs the audit logs' checkpoints (made on first start).
            let signer =
                local.isDisjoint(with: [.accounts, .keys, .ledger, .registry])
                ? nil : try AuditSigner(path: configuration.auditSigningKeyPath, create: true)
            if local.contains(.accounts) {
                let store = try await postgres?.open("accounts") { try await AccountsService.openStore(.postgres($0), logger: logger) }
                var accounts = try store.map { AccountsService(store: $0, logger: logger) } ?? AccountsService(location: location, logger: logger)
                accounts.auditSigner = signer
                opened.accounts = accounts
                pruning.append(("accounts", { [accounts] in try await accounts.pruneAudit(retentionDays: retention) }))
                opened.services.append(accounts)
                opened.credentialSources.append(accounts)
                // The web chats' own service runs beside accounts, on a store of its own.
                let conversationsStore = try await postgres?.open("conversations") {
                    try await ConversationsService.openStore(.postgres($0), logger: logger)
                }
                let conversations = try conversationsStore.map { ConversationsService(store: $0, logger: logger) }
                    ?? ConversationsService(location: location, logger: logger)
                try await ConversationsHandOver.run(from: accounts, to: conversations, logger: logger)
                opened.services.append(conversations)
            }
            if local.contains(.keys) {
                let store = try await postgres?.open("keys") { try await KeysService.openStore(.postgres($0), logger: logger) }
                var keys = try store.map { KeysService(store: $0, directory: directory, logger: logger) }
                    ?? KeysService(location: location, directory: directory, logger: logger)
                keys.auditSigner = signer
                pruning.append(("keys", { [keys] in try await keys.pruneAudit(retentionDays: retention) }))
                opened.services.append(keys)
                opened.credentialSources.append(keys)
                opened.keys = keys
            }
            if local.contains(.ledger) {
                let store = try await postgres?.open("ledger") { try await LedgerService.openStore(.postgres($0), logger: logger) }
                    ?? LedgerService.Store(sqlite: location)
                // The ledger prices every hold and settlement at the registry's prices, which it follows.
                let prices = PriceBook(registry: try clients.registry(), internalToken: internalToken, logger: logger)
                opened.background.append(prices)
                var ledger = LedgerService(
                    store: store, prices: prices, holdTTL: .seconds(configuration.holdTTLSeconds), directory: directory,
                    logger: logger)
                ledger.auditSigner = signer
                ledger.alertSettings = AlertSettings(internalToken: internalToken, hosts: configuration.alertWebhookHosts)
                pruning.append(("ledger", { [ledger] in try await ledger.pruneAudit(retentionDays: retention) }))
                opened.services.append(ledger)
                opened.ledger = ledger
                opened.background.append(ledger.reconciler(usageRetentionDays: configuration.usageRetentionDays))
                opened.background.append(ledger.alertService(client: UpstreamClient()))
            }
            if local.contains(.registry) {
                let store = try await postgres?.open("registry") { try await ModelRegistryService.openStore(.postgres($0), logger: logger) }
                var registry = try store.map { ModelRegistryService(store: $0, directory: directory, logger: logger) }
                    ?? ModelRegistryService(location: location, directory: directory, logger: logger)
                registry.auditSigner = signer
                pruning.append(("registry", { [registry] in try await registry.pruneAudit(retentionDays: retention) }))
                try await applyCatalog(to: registry)
                opened.services.append(registry)
            } else if !configuration.catalog.models.isEmpty {
                logger.warning("the models in the configuration are applied by the process that runs the registry, not this one")
            }
        } catch let error as StorageError {
            throw ConfigurationError(error.description)
        }
        if retention > 0 && !pruning.isEmpty { opened.background.append(AuditPruning(services: pruning, logger: logger)) }
        return opened
    }

    /// Who the services that check principals named by people (keys, ledger, registry) ask
    /// whether they exist: the accounts and keys services, wherever those run.
    func serviceDirectory(_ clients: ServiceClients) -> ServiceDirectory? {
        guard let accounts = try? clients.accounts(), let keys = try? clients.keys() else {
            if !local.isDisjoint(with: [.keys, .ledger, .registry]) {
                logger.warning(
                    "without --accounts-address and --keys-address this process cannot check that the users, clients and keys people name exist, nor whose a key is"
                )
            }
            return nil
        }
        return ServiceDirectory(accounts: accounts, keys: keys, internalToken: internalToken)
    }

    /// With --demo, the demo organisation, model and key (made once, on an empty data directory).
    func setUpDemo(_ services: [any RegistrableRPCService]) async throws -> Demo.Credentials? {
        guard configuration.demo else { return nil }
        guard local == Set(Component.allCases) else {
            throw ConfigurationError("--demo runs everything in one process; drop --services")
        }
        return try await Demo.setUp(
            services: services, internalToken: internalToken, dataDirectory: configuration.dataDirectory, logger: logger)
    }

    /// The services of this process served over gRPC — in-process for this process's own calls,
    /// on the gRPC port for the others — behind the interceptor that authenticates every call.
    func grpcServers(
        _ opened: OpenedServices, clients: ServiceClients, onListening: @escaping @Sendable (Listener) async -> Void
    ) throws -> ([any Service], AuthInterceptor) {
        let interceptor = AuthInterceptor(
            internalToken: internalToken,
            resolver: KeysTokenResolver(
                keys: try clients.keys(), accounts: try? clients.accounts(), internalToken: internalToken,
                // Resolutions are kept only when every change that could stale them is seen
                // here: the keys and the accounts service both run in this process.
                local: local.isSuperset(of: [.keys, .accounts]) ? opened.credentialSources : []))
        var interceptors: [any ServerInterceptor] = [UnexpectedErrors(logger: logger), interceptor]
        // A call from a traced request elsewhere is served within a span continuing it.
        if Traces.isOn { interceptors.insert(TraceServerInterceptor(), at: 0) }
        let inProcessServer = GRPCServer(transport: clients.inProcess.server, services: opened.services, interceptors: interceptors)
        let transport = HTTP2ServerTransport.Posix(
            address: .ipv4(host: configuration.grpcHost, port: configuration.grpcPort),
            transportSecurity: configuration.security.grpcServer)
        let grpcServer = GRPCServer(transport: transport, services: opened.services, interceptors: interceptors)
        let names = local.filter { $0 != .gateway }.sorted().map(\.rawValue).joined(separator: ",")
        let (logger, host, configuredPort) = (logger, configuration.grpcHost, configuration.grpcPort)
        let security = configuration.security.requireClientCertificate ? "mutual TLS" : configuration.security.serves ? "TLS" : "plaintext"
        let served = GRPCServerService(server: grpcServer) {
            let port: Int
            do {
                let address = try await transport.listeningAddress
                port = address.ipv4?.port ?? address.ipv6?.port ?? configuredPort
            } catch {
                throw ConfigurationError("cannot listen for gRPC on \(host):\(configuredPort); is the port in use? (\(error))")
            }
            logger.notice("gRPC listening on \(host):\(port) (services: \(names); \(security))")
            await onListening(.grpc(host: host, port: port))
        }
        return ([GRPCServerService(server: inProcessServer), served], interceptor)
    }

    /// The HTTP facade with the dashboard, its metrics listener and what runs beside them, in
    /// the order they stop: the HTTP server first (requests in flight finish within the grace),
    /// then the caches and the Meter stream they settled over, then the services.
    func gateway(
        _ opened: OpenedServices, clients: ServiceClients, interceptor: AuthInterceptor?,
        onListening: @escaping @Sendable (Listener) async -> Void
    ) throws -> [any Service] {
        // A keys service in this process answers the gateway's unary calls directly.
        let keys: any Lumen_Keys_V1_KeysService.ClientProtocol
        if let localKeys = opened.keys, let interceptor {
            keys = localKeys.localClient(
                authenticating: interceptor, streams: Lumen_Keys_V1_KeysService.Client(wrapping: clients.inProcessClient))
        } else {
            keys = try clients.keys()
        }
        let gatewayServices = GatewayServices(
            accounts: try clients.accounts(), conversations: try clients.conversations(), keys: keys, ledger: try clients.ledger(), registry: try clients.registry(),
            internalToken: internalToken,
            // A ledger in this process takes the holds into its group commit directly.
            meter: opened.ledger?.localMeter)
        let (host, logger) = (configuration.httpHost, logger)
        let httpTLS = configuration.security.serves
        let metricsHost = configuration.metricsHost
        // People reach Lumen over HTTPS when its port is on TLS or its public URL says so.
        let publicURL = Dashboard.PublicURL(configuration.effectivePublicURL)
        let secure = httpTLS || publicURL.value.lowercased().hasPrefix("https://")
        let dashboard = try Dashboard(
            services: gatewayServices, coins: Coins(perUSD: Int64(configuration.coinsPerUSD)), publicURL: publicURL, secure: secure,
            gravatar: configuration.gravatar)
        let gateway = buildGateway(
            context: DashboardContext.self,
            configuration: .init(
                host: host, port: configuration.httpPort,
                probeInterval: configuration.probeIntervalSeconds > 0 ? .seconds(configuration.probeIntervalSeconds) : nil,
                limits: .init(
                    readHeaderTimeout: .seconds(configuration.readHeaderTimeoutSeconds),
                    bodyTimeout: .seconds(configuration.bodyTimeoutSeconds),
                    idleTimeout: .seconds(configuration.idleTimeoutSeconds), maxConnections: configuration.maxConnections),
                metrics: (metricsHost, configuration.metricsPort), inProcess: MockProvider(),
                tls: try configuration.security.http(), strictTransportSecurity: secure, imageURLs: configuration.imageURLs,
                tokenSources: configuration.tokenSources,
                upstreamConnectionsPerHost: configuration.upstreamMaxConnections > 0 ? configuration.upstreamMaxConnections : nil),
            services: gatewayServices, logger: logger, more: dashboard.addRoutes,
            onServerRunning: { [configuration] port in
                if configuration.publicURL == nil {  // the port bound, when 0 asked for a free one
                    var bound = configuration
                    bound.httpPort = port
                    publicURL.set(bound.effectivePublicURL)
                }
                logger.notice("HTTP listening on \(host):\(port)\(httpTLS ? " (TLS)" : "")")
                await onListening(.http(host: host, port: port))
            },
            onOperationsRunning: { port in
                logger.notice("metrics listening on \(metricsHost):\(port)")
                await onListening(.metrics(host: metricsHost, port: port))
            })
        var services: [any Service] = gateway.background
        if let operations = gateway.operations { services.append(operations) }
        services.append(ShutdownGrace(base: gateway.application, grace: .seconds(configuration.shutdownGraceSeconds), logger: logger))
        return services
    }

    /// Runs `lifecycle` until SIGTERM or SIGINT, then stops it in reverse order.
    func runUntilSignalled(_ lifecycle: [any Service]) async throws {
        logger.info(
            "starting",
            metadata: [
                "data_dir": "\(configuration.dataDirectory)",
                "services": "\(local.sorted().map(\.rawValue).joined(separator: ","))",
            ])
        var groupConfiguration = ServiceGroupConfiguration(
            services: lifecycle, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        // A safety net: past the HTTP grace, the rest (flushes, streams, servers) gets 5 s more.
        groupConfiguration.maximumGracefulShutdownDuration = .seconds(configuration.shutdownGraceSeconds + 5)
        groupConfiguration.maximumCancellationDuration = .seconds(5)
        try await ServiceGroup(configuration: groupConfiguration).run()
    }

    /// Upserts the configuration's models and backends, through the registry's own RPCs so
    /// that its rules apply: a bad definition stops the start with the registry's message.
    func applyCatalog(to registry: ModelRegistryService) async throws {
        let catalog = configuration.catalog
        guard !catalog.models.isEmpty else { return }
        let token = internalToken
        do {
            try await withLocalServices([registry], internalToken: token) { client in
                let registry = Lumen_Registry_V1_ModelRegistryService.Client(wrapping: client)
                for model in catalog.models {
                    _ = try await registry.upsertModel(.with { $0.model = model }, metadata: .bearer(token))
                }
                for backend in catalog.backends {
                    _ = try await registry.upsertBackend(.with { $0.backend = backend }, metadata: .bearer(token))
                }
            }
        } catch let error as RPCError {
            let cause = ServiceError(error)
            throw ConfigurationError("the models in the configuration are not valid: \(cause.message) (\(cause.param ?? cause.code))")
        }
        logger.info(
            "registry updated from the configuration",
            metadata: ["models": "\(catalog.models.count)", "backends": "\(catalog.backends.count)"])
    }
}

/// Collects the listeners as they come up and runs `whenAllUp` once with them, when the last
/// expected one has reported.
actor StartupReport {
    private let expected: Int
    private var listeners: [Deployment.Listener] = []
    private let whenAllUp: @Sendable ([Deployment.Listener]) -> Void

    init(expected: Int, whenAllUp: @escaping @Sendable ([Deployment.Listener]) -> Void) {
        self.expected = expected
        self.whenAllUp = whenAllUp
    }

    func listening(_ listener: Deployment.Listener) {
        listeners.append(listener)
        if listeners.count == expected { whenAllUp(listeners) }
    }
}

/// The PostgreSQL database of `--database` for the lifetime of a process: its connection pool
/// running, and the schemas of the services this process runs there claimed (one process a
/// service, as the data directory's lock files make it for SQLite).
final class PostgresStores: Sendable {
    let database: PostgresServiceDatabase
    let pool: Task<Void, Never>
    let claims: [PostgresServiceClaim]

    /// nil without a URL, or without a service to run on it (a gateway).
    init?(url: String?, claiming services: Set<Component>, logger: Logger) async throws {
        guard let url, !services.isEmpty else { return nil }
        let database: PostgresServiceDatabase
        do {
            database = try PostgresServiceDatabase(url: url, logger: logger)
        } catch {
            throw ConfigurationError("--database: \(error)")
        }
        self.database = database
        self.pool = database.start()
        var claims: [PostgresServiceClaim] = []
        do {
            for service in services.sorted() { claims.append(try await database.claim(service: service.rawValue)) }
        } catch {
            for claim in claims { await claim.release() }
            pool.cancel()
            throw ConfigurationError("\(error)")
        }
        self.claims = claims
        logger.info("PostgreSQL", metadata: ["database": "\(database.redactedURL)", "services": "\(services.sorted().map(\.rawValue))"])
    }

    /// Opens a service's schema (migrating it); a failure names the database and the schema.
    func open<Store>(_ schema: String, _ body: (PostgresServiceDatabase) async throws -> Store) async throws -> Store {
        do {
            return try await body(database)
        } catch {
            throw ConfigurationError("cannot open the \(schema) schema in \(database.redactedURL): \(error)")
        }
    }

    func stop() {
        pool.cancel()
    }

    /// Lets the schemas go.
    func release() async {
        for claim in claims { await claim.release() }
    }
}

/// How this process reaches each service: in-process when it runs here, over HTTP/2 when it has
/// an address; the clients' connections run with the lifecycle.
struct ServiceClients {
    let local: Set<Component>
    let inProcess = InProcessTransport()
    let inProcessClient: GRPCClient<InProcessTransport.Client>
    let remote: [Component: GRPCClient<HTTP2ClientTransport.Posix>]

    init(configuration: ServeConfiguration) throws {
        local = configuration.components
        inProcessClient = GRPCClient(transport: inProcess.client)
        var remote: [Component: GRPCClient<HTTP2ClientTransport.Posix>] = [:]
        for (component, address) in configuration.addresses.sorted(by: { $0.key < $1.key }) where !local.contains(component) {
            let (host, port) = ServeConfiguration.split(address)
            remote[component] = GRPCClient(
                transport: try HTTP2ClientTransport.Posix(
                    target: TransportSecuritySettings.target(host: host, port: port),
                    transportSecurity: configuration.security.grpcClient),
                // Calls made within a traced request carry its span to the service.
                interceptors: Traces.isOn ? [TraceClientInterceptor()] : [])
        }
        self.remote = remote
    }

    /// The clients' connections, to run with the lifecycle.
    var lifecycle: [any Service] {
        [GRPCClientService(client: inProcessClient)] + remote.sorted { $0.key < $1.key }.map { GRPCClientService(client: $0.value) }
    }

    /// The RPC client of `component`: `make` over the in-process client when it runs here,
    /// `makeRemote` over its HTTP/2 client when it has an address.
    func client<C>(
        _ component: Component, _ make: (GRPCClient<InProcessTransport.Client>) -> C,
        _ makeRemote: (GRPCClient<HTTP2ClientTransport.Posix>) -> C
    ) throws -> C {
        if local.contains(component) { return make(inProcessClient) }
        if let client = remote[component] { return makeRemote(client) }
        throw ConfigurationError(
            "this process needs the \(component.rawValue) service: run it here (--services) or give --\(component.rawValue)-address")
    }

    func accounts() throws -> any Lumen_Accounts_V1_AccountsService.ClientProtocol {
        try client(.accounts, { Lumen_Accounts_V1_AccountsService.Client(wrapping: $0) }, { Lumen_Accounts_V1_AccountsService.Client(wrapping: $0) })
    }

    /// The conversations service runs wherever accounts does (`--accounts-address`).
    func conversations() throws -> any Lumen_Conversations_V1_ConversationsService.ClientProtocol {
        try client(
            .accounts, { Lumen_Conversations_V1_ConversationsService.Client(wrapping: $0) },
            { Lumen_Conversations_V1_ConversationsService.Client(wrapping: $0) })
    }

    func keys() throws -> any Lumen_Keys_V1_KeysService.ClientProtocol {
        try client(.keys, { Lumen_Keys_V1_KeysService.Client(wrapping: $0) }, { Lumen_Keys_V1_KeysService.Client(wrapping: $0) })
    }

    func ledger() throws -> any Lumen_Ledger_V1_LedgerService.ClientProtocol {
        try client(.ledger, { Lumen_Ledger_V1_LedgerService.Client(wrapping: $0) }, { Lumen_Ledger_V1_LedgerService.Client(wrapping: $0) })
    }

    func registry() throws -> any Lumen_Registry_V1_ModelRegistryService.ClientProtocol {
        try client(
            .registry, { Lumen_Registry_V1_ModelRegistryService.Client(wrapping: $0) },
            { Lumen_Registry_V1_ModelRegistryService.Client(wrapping: $0) })
    }
}
