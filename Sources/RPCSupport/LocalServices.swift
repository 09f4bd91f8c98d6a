import GRPCCore
import GRPCInProcessTransport
import LumenAPI

/// Runs services in this process behind `AuthInterceptor`, reachable through an in-process
/// transport, for as long as `body` runs. Used by one-shot commands (`lumen admin …`) and
/// tests; `lumen serve` wires the same pieces as long-lived services.
///
/// Management tokens are resolved by the keys service among `services` (and their users checked by
/// the accounts service when it is among them).
public func withLocalServices<Result: Sendable>(
    _ services: [any RegistrableRPCService],
    internalToken: String,
    _ body: @Sendable (GRPCClient<InProcessTransport.Client>) async throws -> Result
) async throws -> Result {
    try await withLocalServices(internalToken: internalToken, making: { _ in services }, body)
}

/// Like `withLocalServices(_:internalToken:_:)`, with services made from the in-process
/// client, for services that call each other (the ledger asks accounts and keys who exists).
public func withLocalServices<Result: Sendable>(
    internalToken: String,
    making: (GRPCClient<InProcessTransport.Client>) throws -> [any RegistrableRPCService],
    _ body: @Sendable (GRPCClient<InProcessTransport.Client>) async throws -> Result
) async throws -> Result {
    let transport = InProcessTransport()
    let client = GRPCClient(transport: transport.client)
    let services = try making(client)
    let hasAccounts = services.contains { $0 is any Lumen_Accounts_V1_AccountsService.ServiceProtocol }
    // Resolutions are kept when both the keys and the accounts service run here (as in `lumen serve`).
    let sources = services.compactMap { $0 as? any CredentialChangeSource }
    let resolver = KeysTokenResolver(
        keys: Lumen_Keys_V1_KeysService.Client(wrapping: client),
        accounts: hasAccounts ? Lumen_Accounts_V1_AccountsService.Client(wrapping: client) : nil, internalToken: internalToken,
        local: hasAccounts && sources.count == 2 ? sources : [])
    let server = GRPCServer(
        transport: transport.server, services: services,
        interceptors: [AuthInterceptor(internalToken: internalToken, resolver: resolver)])
    return try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask { try await server.serve() }
        group.addTask { try await client.runConnections() }
        let result: Swift.Result<Result, any Error>
        do {
            result = .success(try await body(client))
        } catch {
            result = .failure(error)
        }
        // Nothing outlives `body`: open streams (watches) are cancelled, not awaited.
        client.beginGracefulShutdown()
        server.beginGracefulShutdown()
        group.cancelAll()
        try await group.waitForAll()
        return try result.get()
    }
}
