import GRPCCore
import Hummingbird
import Logging
import LumenAPI
import NIOCore
import NIOSSL
import RPCSupport
import ServiceLifecycle
import SharedRules
import UpstreamClient

/// The RPC clients the facade translates into. Each may reach its service in-process or over
/// HTTP/2; the facade cannot tell and does not care.
public struct GatewayServices: Sendable {
    public var accounts: any Lumen_Accounts_V1_AccountsService.ClientProtocol
    /// The dashboard's web chats (the service runs beside accounts).
    public var conversations: any Lumen_Conversations_V1_ConversationsService.ClientProtocol
    public var keys: any Lumen_Keys_V1_KeysService.ClientProtocol
    public var ledger: any Lumen_Ledger_V1_LedgerService.ClientProtocol
    public var registry: any Lumen_Registry_V1_ModelRegistryService.ClientProtocol
    /// The deployment's internal token, with which the gateway opens its watch streams.
    public var internalToken: String
    /// The ledger's own hold meter when the ledger runs in this process; nil: holds travel over
    /// the ledger's `Meter` stream (`LedgerMeter`).
    public var meter: (any HoldMeter)?

    public init(
        accounts: any Lumen_Accounts_V1_AccountsService.ClientProtocol,
        conversations: any Lumen_Conversations_V1_ConversationsService.ClientProtocol,
        keys: any Lumen_Keys_V1_KeysService.ClientProtocol,
        ledger: any Lumen_Ledger_V1_LedgerService.ClientProtocol,
        registry: any Lumen_Registry_V1_ModelRegistryService.ClientProtocol,
        internalToken: String,
        meter: (any HoldMeter)? = nil
    ) {
        self.accounts = accounts
        self.conversations = conversations
        self.keys = keys
        self.ledger = ledger
        self.registry = registry
        self.internalToken = internalToken
        self.meter = meter
    }

    /// The four services' audit logs, read together.
    public var auditLog: AuditLogReader {
        AuditLogReader(accounts: accounts, keys: keys, ledger: ledger, registry: registry)
    }
}

/// The gateway's in-memory copies of the keys, the registry and the users' groups
/// (lifecycle services).
public struct GatewayCaches: Sendable {
    public let keys: KeyCache
    public let registry: RegistryCache
    public let memberships: MembershipCache

    public init(services: GatewayServices, logger: Logger) {
        self.keys = KeyCache(keys: services.keys, internalToken: services.internalToken, logger: logger)
        self.registry = RegistryCache(registry: services.registry, internalToken: services.internalToken, logger: logger)
        self.memberships = MembershipCache(accounts: services.accounts, internalToken: services.internalToken, logger: logger)
    }

    /// Whether every cache holds a complete snapshot.
    public var isSynced: Bool { keys.isSynced && registry.isSynced && memberships.isSynced }

    /// The long-lived parts, to run next to the HTTP server.
    public var services: [any Service] { [keys, registry, memberships] }
}

/// What the metered endpoints need besides the caches: the hold meter (the ledger's own, or
/// its Meter stream), the upstream HTTP client and router (lifecycle services).
public struct GatewayInference: Sendable {
    public let meter: any HoldMeter
    public let http: UpstreamHTTP
    public let metrics: GatewayMetrics
    let router: BackendRouter
    /// The Meter stream, when holds travel over it.
    let stream: LedgerMeter?
    /// The streams being answered, which a revocation or deactivation ends.
    public let streams = OpenStreams()

    /// `imageURLs`: the hosts whose images given by URL this gateway fetches for providers that
    /// take images inline only (`--image-url-hosts`); `tokenSources`: where azure backends get
    /// their Entra ID tokens (`--token-sources`); `connectionsPerHost`: the cap on connections to
    /// one upstream host (`--upstream-max-connections`; nil: none).
    public init(
        services: GatewayServices, inProcess: (any InProcessProvider)? = nil, clock: WallClock = .system,
        imageURLs: HostPolicy = .none, tokenSources: TokenSources = .none, connectionsPerHost: Int? = nil, logger: Logger
    ) {
        if let local = services.meter {
            self.meter = local
            self.stream = nil
        } else {
            let stream = LedgerMeter(ledger: services.ledger, internalToken: services.internalToken, logger: logger)
            self.meter = stream
            self.stream = stream
        }
        self.http = UpstreamHTTP(connectionsPerHost: connectionsPerHost)
        self.metrics = GatewayMetrics()
        self.router = BackendRouter(
            providers: Providers(http: http, inProcess: inProcess, clock: clock, imageURLs: imageURLs, tokenSources: tokenSources),
            registry: services.registry,
            internalToken: services.internalToken, metrics: metrics, clock: clock, logger: logger)
    }

    /// The long-lived parts, to run next to the HTTP server.
    public var services: [any Service] { (stream.map { [$0] } ?? []) + [http, router.health] }
}

/// Where the facade listens, and how it treats connections.
public struct GatewayConfiguration: Sendable {
    /// Interface to bind; `127.0.0.1` by default so that nothing is exposed by accident.
    public var host: String
    /// Port; 0 picks a free one (logged once bound).
    public var port: Int
    /// How often to probe every upstream backend actively (`GET {base_url}/models`); nil: never,
    /// health then comes from requests alone.
    public var probeInterval: Duration?
    /// Timeouts and the connection cap of the HTTP port.
    public var limits: ConnectionLimits
    /// Where `/metrics` (and a second `/healthz`) are served: a listener of their own, on
    /// loopback by default, so that traffic figures are not open to whoever reaches the API.
    /// nil: no such listener.
    public var metrics: (host: String, port: Int)?
    /// What answers the backends of provider `mock` (Lumen's built-in model, `LumenMock`); nil:
    /// such backends are skipped as unreachable.
    public var inProcess: (any InProcessProvider)?
    /// TLS on the API's port (HTTP/1.1 over TLS only); nil: plaintext. The metrics listener
    /// stays plaintext (no secrets; loopback by default).
    public var tls: TLSConfiguration?
    /// Whether people reach the API's port over HTTPS (its own TLS, or a proxy's per the public
    /// URL): every response then carries `Strict-Transport-Security`.
    public var strictTransportSecurity: Bool
    /// The hosts whose images given by URL are fetched for providers that take images inline
    /// only (`--image-url-hosts`); none by default.
    public var imageURLs: HostPolicy
    /// The bearer token sources azure backends may name (`--token-sources`); none by default.
    public var tokenSources: TokenSources
    /// The most connections open to one upstream host at once (`--upstream-max-connections`);
    /// as many requests again wait for one, more get 503 `upstream_busy`. nil: no cap.
    public var upstreamConnectionsPerHost: Int?

    public init(
        host: String = "127.0.0.1", port: Int = 8080, probeInterval: Duration? = nil, limits: ConnectionLimits = .init(),
        metrics: (host: String, port: Int)? = ("127.0.0.1", 9464), inProcess: (any InProcessProvider)? = nil,
        tls: TLSConfiguration? = nil, strictTransportSecurity: Bool = false, imageURLs: HostPolicy = .none,
        tokenSources: TokenSources = .none, upstreamConnectionsPerHost: Int? = nil
    ) {
        self.host = host
        self.port = port
        self.probeInterval = probeInterval
        self.limits = limits
        self.metrics = metrics
        self.inProcess = inProcess
        self.tls = tls
        self.strictTransportSecurity = strictTransportSecurity
        self.imageURLs = imageURLs
        self.tokenSources = tokenSources
        self.upstreamConnectionsPerHost = upstreamConnectionsPerHost
    }
}

/// The public routes of the facade: `/healthz`, the management API and the OpenAI-compatible
/// endpoints, then whatever `more` adds (the dashboard's, which may use the caches). Every response carries an
/// `x-request-id`, errors included.
public func buildRouter<Context: RequestContext>(
    context: Context.Type, services: GatewayServices, caches: GatewayCaches, inference: GatewayInference,
    clock: WallClock = .system, logger: Logger, strictTransportSecurity: Bool = false,
    more: (Router<Context>, GatewayCaches, WebChat) -> Void = { _, _, _ in }
) -> Router<Context> {
    let (router, routes) = baseRouter(
        context: Context.self, caches: caches, inference: inference, strictTransportSecurity: strictTransportSecurity,
        traced: Traces.isOn)
    let management = router.group("v1/management")
    APIKeysController(keys: services.keys, ledger: services.ledger, cache: caches.keys).addRoutes(to: management)
    KeyUsageController(keys: services.keys, ledger: services.ledger).addRoutes(to: management)
    BalanceController(ledger: services.ledger).addRoutes(to: management)
    UsageOverTimeController(ledger: services.ledger).addRoutes(to: management)
    AlertsController(ledger: services.ledger).addRoutes(to: management)
    RequestLogController(ledger: services.ledger).addRoutes(to: management)
    AuditLogController(reader: services.auditLog).addRoutes(to: management)
    let pipeline = InferencePipeline(
        admission: InferenceAdmission(keys: caches.keys, registry: caches.registry, memberships: caches.memberships, clock: clock),
        meter: inference.meter, router: inference.router,
        metrics: inference.metrics, streams: inference.streams, clock: clock, logger: logger)
    OpenAIController(pipeline: pipeline).addRoutes(to: router.group("v1"))
    MessagesController(pipeline: pipeline).addRoutes(to: router.group("v1"))
    more(router, caches, WebChat(pipeline: pipeline))
    routes.record(router.routes)
    return router
}

/// The operations routes, for the metrics listener: `/metrics` and `/healthz`.
public func buildOperationsRouter(
    services: GatewayServices, caches: GatewayCaches, inference: GatewayInference, clock: WallClock = .system
) -> Router<BasicRequestContext> {
    let (router, routes) = baseRouter(context: BasicRequestContext.self, caches: caches, inference: inference)
    // Prometheus text. The ledger's invariant is checked at each scrape (one read of its open
    // holds and pools), for at most two seconds: a slow or absent ledger leaves the check out,
    // not the scrape.
    var checkOptions = CallOptions.defaults
    checkOptions.timeout = .seconds(2)
    router.get("metrics") { [checkOptions] _, _ in
        let invariant = try? await services.ledger.checkInvariant(
            .init(), metadata: .bearer(services.internalToken), options: checkOptions)
        return Response(
            status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
            body: .init(byteBuffer: ByteBuffer(
                string: inference.metrics.render(
                    caches: caches, meter: inference.meter, invariant: invariant, nowMillis: clock.nowMillis))))
    }
    routes.record(router.routes)
    return router
}

/// A router with what every listener has: request ids and JSON errors on every response, and
/// `/healthz` — ready once the caches hold the keys, the registry and the groups and the Meter
/// stream is open (before that, inference requests would be refused, so load balancers should
/// wait); it tells nothing but that. Record the routes in the table once they are all added.
private func baseRouter<Context: RequestContext>(
    context: Context.Type, caches: GatewayCaches, inference: GatewayInference, strictTransportSecurity: Bool = false,
    traced: Bool = false
) -> (Router<Context>, RouteTable) {
    let router = Router(context: Context.self)
    let routes = RouteTable()
    // Outermost: every response has it, whatever went wrong inside.
    if strictTransportSecurity { router.add(middleware: StrictTransportSecurity()) }
    // Around everything else, to see the answer as it goes out; only in a process that traces.
    if traced { router.add(middleware: RequestSpan()) }
    router.add(middleware: RequestIDMiddleware(routes: routes))
    router.add(middleware: APIErrorMiddleware())
    router.get("healthz") { _, _ in
        caches.isSynced && inference.meter.isConnected
            ? JSONResponse(["status": "ok"]) : JSONResponse(["status": "starting"], status: .serviceUnavailable)
    }
    return (router, routes)
}

/// The facade as a runnable application, with its caches and metering as services of its own
/// (tests run it whole with `app.test(.router)`). `onServerRunning` receives the bound port.
public func buildApplication(
    configuration: GatewayConfiguration,
    services: GatewayServices,
    logger: Logger,
    onServerRunning: @escaping @Sendable (Int) async -> Void = { _ in }
) -> some ApplicationProtocol {
    var gateway = buildGateway(
        configuration: configuration, services: services, logger: logger, onServerRunning: onServerRunning)
    gateway.application.addServices(gateway.background)
    return gateway.application
}

/// The facade's parts: the HTTP server of the API, the operations routes (and their listener,
/// when configured), and the long-lived services they rely on (caches, the ledger's Meter
/// stream, batched reports, the health prober).
///
/// A deployment runs `background` beside the servers and shuts the servers down first, so
/// that requests still in flight at shutdown settle their holds over a Meter stream that is
/// still open.
public struct Gateway<Context: RequestContext> where Context: InitializableFromSource<ApplicationRequestContextSource> {
    public var application: Application<RouterResponder<Context>>
    public var operationsRouter: Router<BasicRequestContext>
    public var operations: Application<RouterResponder<BasicRequestContext>>?
    public var background: [any Service]
}

/// The facade's parts, unassembled (see `Gateway`), its requests in a `BasicRequestContext`.
public func buildGateway(
    configuration: GatewayConfiguration,
    services: GatewayServices,
    logger: Logger,
    onServerRunning: @escaping @Sendable (Int) async -> Void = { _ in },
    onOperationsRunning: @escaping @Sendable (Int) async -> Void = { _ in }
) -> Gateway<BasicRequestContext> {
    buildGateway(
        context: BasicRequestContext.self, configuration: configuration, services: services, logger: logger,
        onServerRunning: onServerRunning, onOperationsRunning: onOperationsRunning)
}

/// The facade's parts, unassembled (see `Gateway`), with the routes `more` adds (the
/// dashboard's), its requests in a `Context`. `onServerRunning` receives the API's bound
/// port, `onOperationsRunning` the metrics listener's.
public func buildGateway<Context: RequestContext>(
    context: Context.Type,
    configuration: GatewayConfiguration,
    services: GatewayServices,
    logger: Logger,
    more: (Router<Context>, GatewayCaches, WebChat) -> Void = { _, _, _ in },
    onServerRunning: @escaping @Sendable (Int) async -> Void = { _ in },
    onOperationsRunning: @escaping @Sendable (Int) async -> Void = { _ in }
) -> Gateway<Context> where Context: InitializableFromSource<ApplicationRequestContextSource> {
    let caches = GatewayCaches(services: services, logger: logger)
    let inference = GatewayInference(
        services: services, inProcess: configuration.inProcess, imageURLs: configuration.imageURLs,
        tokenSources: configuration.tokenSources, connectionsPerHost: configuration.upstreamConnectionsPerHost, logger: logger)
    var background = caches.services + inference.services
    background.append(StreamGuard(streams: inference.streams, caches: caches, clock: .system))
    background.append(BackendConfigurationCheck(registry: caches.registry, router: inference.router, logger: logger))
    if let interval = configuration.probeInterval {
        background.append(
            HealthProber(interval: interval, registry: caches.registry, router: inference.router, logger: logger))
    }
    let application = Application(
        router: buildRouter(
            context: Context.self, services: services, caches: caches, inference: inference, logger: logger,
            strictTransportSecurity: configuration.strictTransportSecurity, more: more),
        server: configuration.limits.server(logger: logger, tls: configuration.tls),
        configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: "lumen"),
        onServerRunning: { channel in await onServerRunning(channel.localAddress?.port ?? configuration.port) },
        logger: logger
    )
    let operationsRouter = buildOperationsRouter(services: services, caches: caches, inference: inference)
    let operations = configuration.metrics.map { address in
        Application(
            router: operationsRouter,
            server: configuration.limits.server(logger: logger),
            configuration: .init(address: .hostname(address.host, port: address.port), serverName: "lumen"),
            onServerRunning: { channel in await onOperationsRunning(channel.localAddress?.port ?? address.port) },
            logger: logger)
    }
    return Gateway(application: application, operationsRouter: operationsRouter, operations: operations, background: background)
}
