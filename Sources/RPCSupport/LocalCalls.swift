import GRPCCore

/// Unary calls to a service in this process, made directly: the request's metadata
/// authenticated as `AuthInterceptor` does it, the caller bound for the handler, and the
/// handler's errors turned into `RPCError`s as grpc-swift's server turns them — without
/// encoding the messages to protobuf and back, the in-process transport's streams and the
/// task hops between them. A service's local client (`KeysService.localClient`) answers its
/// unary methods through this and streams through the in-process transport.
public struct LocalCalls: Sendable {
    let interceptor: AuthInterceptor

    public init(_ interceptor: AuthInterceptor) {
        self.interceptor = interceptor
    }

    /// Runs `handler` for `request` as the server would, and hands its answer to `handleResponse`.
    public func unary<Input: Sendable, Output: Sendable, Result: Sendable>(
        _ request: ClientRequest<Input>,
        _ method: MethodDescriptor,
        _ handler: (ServerRequest<Input>, ServerContext) async throws -> ServerResponse<Output>,
        _ handleResponse: (ClientResponse<Output>) async throws -> Result
    ) async throws -> Result {
        let response: ClientResponse<Output>
        do {
            let caller = try await interceptor.authenticate(request.metadata)
            let origin = CallOrigin.of(request.metadata, peer: "in-process")
            let served = try await CallOrigin.$current.withValue(origin) {
                try await Caller.$current.withValue(caller) {
                    try await withServerContextRPCCancellationHandle { cancellation in
                        try await handler(
                            ServerRequest(metadata: request.metadata, message: request.message),
                            ServerContext(descriptor: method, remotePeer: "in-process", localPeer: "in-process", cancellation: cancellation))
                    }
                }
            }
            response = ClientResponse(
                accepted: served.accepted.map {
                    ClientResponse.Contents(metadata: $0.metadata, message: $0.message, trailingMetadata: $0.trailingMetadata)
                })
        } catch let error as RPCError {
            response = ClientResponse(accepted: .failure(error))
        } catch let error as any RPCErrorConvertible {
            response = ClientResponse(accepted: .failure(RPCError(error)))
        } catch {
            response = ClientResponse(
                accepted: .failure(RPCError(code: .unknown, message: "Service method threw an unknown error.", cause: error)))
        }
        return try await handleResponse(response)
    }
}
