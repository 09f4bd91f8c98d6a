import GRPCCore
import Hummingbird
import Logging
import LumenAPI
import NIOCore
import RPCSupport
import ServiceLifecycle

/// The RPC clients the facade translates into. Each may reach its service in-process or over
/// HTTP/2; the facade cannot tell and does not care.
public struct GatewayServices: Sendable {
    public var accounts: any Lumen_Accounts_V1_AccountsService.ClientProtocol
    public var keys: any Lumen_Keys_V1_KeysService.ClientProtocol
    public var ledger: any Lumen_Ledger_V1_LedgerService.ClientProtocol
    public var registry: any Lumen_Registry_V1_ModelRegistryService.ClientProtocol
    /// The deployment's internal token, with which the gateway opens its watch streams.
    public var internalToken: String

    public init(
        accounts: any Lumen_Accounts_V1_AccountsService.ClientProtocol,
        keys: any Lumen_Keys_V1_KeysService.ClientProtocol,
        ledger: any Lumen_Ledger_V1_LedgerService.ClientProtocol,
        registry: any Lumen_Registry_V1_ModelRegistryService.ClientProtocol,
        internalToken: String
    ) {
        self.accounts = accounts
        self.keys = keys
        self.ledger = ledger
        self.registry = registry
        self.internalToken = internalToken
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

/// What the metered endpoints need besides the caches: the ledger's Meter stream, the
/// upstream HTTP client and router (lifecycle services).
public struct GatewayInference: Sendable {
    public let meter: LedgerMeter
    public let http: UpstreamHTTP
    public let metrics: GatewayMetrics
    let router: BackendRouter

    public init(services: GatewayServices, clock: WallClock = .system, logger: Logger) {
        self.meter = LedgerMeter(ledger: services.ledger, internalToken: services.internalToken, logger: logger)
        self.http = UpstreamHTTP()
        self.metrics = GatewayMetrics()
        self.router = BackendRouter(
            http: http, registry: services.registry, internalToken: services.internalToken, metrics: metrics, clock: clock,
            logger: logger)
    }

    /// The long-lived parts, to run next to the HTTP server.
    public var services: [any Service] { [meter, http, router.health] }
}

/// Where the facade listens.
public struct GatewayConfiguration: Sendable {
    /// Interface to bind; `127.0.0.1` by default so that nothing is exposed by accident.
    public var host: String
    /// Port; 0 picks a free one (logged once bound).
    public var port: Int
    /// How often to probe every upstream backend actively (`GET {base_url}/models`); nil: never,
    /// health then comes from requests alone.
    public var probeInterval: Duration?

    public init(host: String = "127.0.0.1", port: Int = 8080, probeInterval: Duration? = nil) {
        self.host = host
        self.port = port
        self.probeInterval = probeInterval
    }
}

/// The routes of the facade.
public func buildRouter(
    services: GatewayServices, caches: GatewayCaches, inference: GatewayInference, clock: WallClock = .system,
    logger: Logger
) -> Router<BasicRequestContext> {
    let router = Router(context: BasicRequestContext.self)
    router.add(middleware: APIErrorMiddleware())
    // Ready once the caches hold the keys, the registry and the groups: before that, inference requests
    // would be refused, so load balancers should wait.
    router.get("healthz") { _, _ in
        caches.isSynced && inference.meter.isConnected
            ? JSONResponse(["status": "ok"]) : JSONResponse(["status": "starting"], status: .serviceUnavailable)
    }
    // Prometheus text; like /healthz it is open, so bind the gateway to a trusted interface.
    // The ledger's invariant is checked at each scrape (one read of its open holds and pools),
    // for at most two seconds: a slow or absent ledger leaves the check out, not the scrape.
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
    let management = router.group("v1/management")
    APIKeysController(keys: services.keys, ledger: services.ledger).addRoutes(to: management)
    KeyUsageController(keys: services.keys, ledger: services.ledger).addRoutes(to: management)
    BalanceController(ledger: services.ledger).addRoutes(to: management)
    let pipeline = InferencePipeline(
        admission: InferenceAdmission(keys: caches.keys, registry: caches.registry, memberships: caches.memberships, clock: clock),
        meter: inference.meter, router: inference.router, limiter: RateLimiter(),
        metrics: inference.metrics, clock: clock, logger: logger)
    OpenAIController(pipeline: pipeline).addRoutes(to: router.group("v1"))
    return router
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

/// The facade's two halves: the HTTP server with its routes, and the long-lived services it
/// relies on (caches, the ledger's Meter stream, batched reports, the health prober).
///
/// A deployment runs `background` beside the application and shuts the application down
/// first, so that requests still in flight at shutdown settle their holds over a Meter stream
/// that is still open.
public struct Gateway {
    public var application: Application<RouterResponder<BasicRequestContext>>
    public var background: [any Service]
}

/// The facade's parts, unassembled (see `Gateway`).
public func buildGateway(
    configuration: GatewayConfiguration,
    services: GatewayServices,
    logger: Logger,
    onServerRunning: @escaping @Sendable (Int) async -> Void = { _ in }
) -> Gateway {
    let caches = GatewayCaches(services: services, logger: logger)
    let inference = GatewayInference(services: services, logger: logger)
    var background = caches.services + inference.services
    if let interval = configuration.probeInterval {
        background.append(
            HealthProber(interval: interval, registry: caches.registry, http: inference.http, router: inference.router, logger: logger))
    }
    let application = Application(
        router: buildRouter(services: services, caches: caches, inference: inference, logger: logger),
        configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: "lumen"),
        onServerRunning: { channel in await onServerRunning(channel.localAddress?.port ?? configuration.port) },
        logger: logger
    )
    return Gateway(application: application, background: background)
}
