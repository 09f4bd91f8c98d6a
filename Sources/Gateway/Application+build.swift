import Hummingbird
import Logging
import LumenAPI
import NIOCore

/// The RPC clients the facade translates into. Each may reach its service in-process or over
/// HTTP/2; the facade cannot tell and does not care.
public struct GatewayServices: Sendable {
    public var accounts: any Lumen_Accounts_V1_AccountsService.ClientProtocol
    public var keys: any Lumen_Keys_V1_KeysService.ClientProtocol
    public var ledger: any Lumen_Ledger_V1_LedgerService.ClientProtocol
    public var registry: any Lumen_Registry_V1_ModelRegistryService.ClientProtocol

    public init(
        accounts: any Lumen_Accounts_V1_AccountsService.ClientProtocol,
        keys: any Lumen_Keys_V1_KeysService.ClientProtocol,
        ledger: any Lumen_Ledger_V1_LedgerService.ClientProtocol,
        registry: any Lumen_Registry_V1_ModelRegistryService.ClientProtocol
    ) {
        self.accounts = accounts
        self.keys = keys
        self.ledger = ledger
        self.registry = registry
    }
}

/// Where the facade listens.
public struct GatewayConfiguration: Sendable {
    /// Interface to bind; `127.0.0.1` by default so that nothing is exposed by accident.
    public var host: String
    /// Port; 0 picks a free one (logged once bound).
    public var port: Int

    public init(host: String = "127.0.0.1", port: Int = 8080) {
        self.host = host
        self.port = port
    }
}

/// The routes of the facade.
public func buildRouter(services: GatewayServices) -> Router<BasicRequestContext> {
    let router = Router(context: BasicRequestContext.self)
    router.add(middleware: APIErrorMiddleware())
    router.get("healthz") { _, _ in
        JSONResponse(["status": "ok"])
    }
    APIKeysController(keys: services.keys).addRoutes(to: router.group("v1/management"))
    return router
}

/// The facade as a runnable application. `onServerRunning` receives the bound port.
public func buildApplication(
    configuration: GatewayConfiguration,
    services: GatewayServices,
    logger: Logger,
    onServerRunning: @escaping @Sendable (Int) async -> Void = { _ in }
) -> some ApplicationProtocol {
    Application(
        router: buildRouter(services: services),
        configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: "lumen"),
        onServerRunning: { channel in await onServerRunning(channel.localAddress?.port ?? configuration.port) },
        logger: logger
    )
}
