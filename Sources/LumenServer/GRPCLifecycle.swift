import GRPCCore
import Logging
import ServiceLifecycle

/// Runs a `GRPCServer` as a lifecycle service; graceful shutdown stops it accepting RPCs and
/// lets the running ones finish.
struct GRPCServerService<Transport: ServerTransport>: Service {
    let server: GRPCServer<Transport>
    /// Called once the server listens (for example to log its address).
    var onListening: @Sendable () async throws -> Void = {}

    func run() async throws {
        try await withGracefulShutdownHandler {
            try await withThrowingDiscardingTaskGroup { group in
                group.addTask { try await server.serve() }
                try await onListening()
            }
        } onGracefulShutdown: {
            server.beginGracefulShutdown()
        }
    }
}

/// Runs a `GRPCClient`'s connections as a lifecycle service.
struct GRPCClientService<Transport: ClientTransport>: Service {
    let client: GRPCClient<Transport>

    func run() async throws {
        try await withGracefulShutdownHandler {
            try await client.runConnections()
        } onGracefulShutdown: {
            client.beginGracefulShutdown()
        }
    }
}
