import GRPCCore
import LumenAPI
import RPCSupport

/// The keys service as a client in its own process: the unary calls go straight to the
/// service (`LocalCalls`: authenticated and answered as the server would, without protobuf or
/// the in-process transport — a full key list of 20,000 keys spent a quarter of its time
/// encoding and decoding its pages); the watch, a stream, goes through `streams` (the
/// in-process transport's client).
public struct KeysLocalClient: Lumen_Keys_V1_KeysService.ClientProtocol {
    let service: KeysService
    let calls: LocalCalls
    let streams: any Lumen_Keys_V1_KeysService.ClientProtocol

    typealias Method = Lumen_Keys_V1_KeysService.Method

    public func createKey<Result: Sendable>(
        request: ClientRequest<Lumen_Keys_V1_CreateKeyRequest>,
        serializer: some MessageSerializer<Lumen_Keys_V1_CreateKeyRequest>,
        deserializer: some MessageDeserializer<Lumen_Keys_V1_CreateKeyResponse>,
        options: CallOptions,
        onResponse handleResponse: @Sendable @escaping (ClientResponse<Lumen_Keys_V1_CreateKeyResponse>) async throws -> Result
    ) async throws -> Result {
        try await calls.unary(request, Method.CreateKey.descriptor, service.createKey, handleResponse)
    }

    public func getKey<Result: Sendable>(
        request: ClientRequest<Lumen_Keys_V1_GetKeyRequest>,
        serializer: some MessageSerializer<Lumen_Keys_V1_GetKeyRequest>,
        deserializer: some MessageDeserializer<Lumen_Keys_V1_GetKeyResponse>,
        options: CallOptions,
        onResponse handleResponse: @Sendable @escaping (ClientResponse<Lumen_Keys_V1_GetKeyResponse>) async throws -> Result
    ) async throws -> Result {
        try await calls.unary(request, Method.GetKey.descriptor, service.getKey, handleResponse)
    }

    public func listKeys<Result: Sendable>(
        request: ClientRequest<Lumen_Keys_V1_ListKeysRequest>,
        serializer: some MessageSerializer<Lumen_Keys_V1_ListKeysRequest>,
        deserializer: some MessageDeserializer<Lumen_Keys_V1_ListKeysResponse>,
        options: CallOptions,
        onResponse handleResponse: @Sendable @escaping (ClientResponse<Lumen_Keys_V1_ListKeysResponse>) async throws -> Result
    ) async throws -> Result {
        try await calls.unary(request, Method.ListKeys.descriptor, service.listKeys, handleResponse)
    }

    public func updateKey<Result: Sendable>(
        request: ClientRequest<Lumen_Keys_V1_UpdateKeyRequest>,
        serializer: some MessageSerializer<Lumen_Keys_V1_UpdateKeyRequest>,
        deserializer: some MessageDeserializer<Lumen_Keys_V1_UpdateKeyResponse>,
        options: CallOptions,
        onResponse handleResponse: @Sendable @escaping (ClientResponse<Lumen_Keys_V1_UpdateKeyResponse>) async throws -> Result
    ) async throws -> Result {
        try await calls.unary(request, Method.UpdateKey.descriptor, service.updateKey, handleResponse)
    }

    public func revokeKey<Result: Sendable>(
        request: ClientRequest<Lumen_Keys_V1_RevokeKeyRequest>,
        serializer: some MessageSerializer<Lumen_Keys_V1_RevokeKeyRequest>,
        deserializer: some MessageDeserializer<Lumen_Keys_V1_RevokeKeyResponse>,
        options: CallOptions,
        onResponse handleResponse: @Sendable @escaping (ClientResponse<Lumen_Keys_V1_RevokeKeyResponse>) async throws -> Result
    ) async throws -> Result {
        try await calls.unary(request, Method.RevokeKey.descriptor, service.revokeKey, handleResponse)
    }

    public func authenticate<Result: Sendable>(
        request: ClientRequest<Lumen_Keys_V1_AuthenticateRequest>,
        serializer: some MessageSerializer<Lumen_Keys_V1_AuthenticateRequest>,
        deserializer: some MessageDeserializer<Lumen_Keys_V1_AuthenticateResponse>,
        options: CallOptions,
        onResponse handleResponse: @Sendable @escaping (ClientResponse<Lumen_Keys_V1_AuthenticateResponse>) async throws -> Result
    ) async throws -> Result {
        try await calls.unary(request, Method.Authenticate.descriptor, service.authenticate, handleResponse)
    }

    public func createOperatorToken<Result: Sendable>(
        request: ClientRequest<Lumen_Keys_V1_CreateOperatorTokenRequest>,
        serializer: some MessageSerializer<Lumen_Keys_V1_CreateOperatorTokenRequest>,
        deserializer: some MessageDeserializer<Lumen_Keys_V1_CreateOperatorTokenResponse>,
        options: CallOptions,
        onResponse handleResponse: @Sendable @escaping (ClientResponse<Lumen_Keys_V1_CreateOperatorTokenResponse>) async throws -> Result
    ) async throws -> Result {
        try await calls.unary(request, Method.CreateOperatorToken.descriptor, service.createOperatorToken, handleResponse)
    }

    public func listOperatorTokens<Result: Sendable>(
        request: ClientRequest<Lumen_Keys_V1_ListOperatorTokensRequest>,
        serializer: some MessageSerializer<Lumen_Keys_V1_ListOperatorTokensRequest>,
        deserializer: some MessageDeserializer<Lumen_Keys_V1_ListOperatorTokensResponse>,
        options: CallOptions,
        onResponse handleResponse: @Sendable @escaping (ClientResponse<Lumen_Keys_V1_ListOperatorTokensResponse>) async throws -> Result
    ) async throws -> Result {
        try await calls.unary(request, Method.ListOperatorTokens.descriptor, service.listOperatorTokens, handleResponse)
    }

    public func revokeOperatorToken<Result: Sendable>(
        request: ClientRequest<Lumen_Keys_V1_RevokeOperatorTokenRequest>,
        serializer: some MessageSerializer<Lumen_Keys_V1_RevokeOperatorTokenRequest>,
        deserializer: some MessageDeserializer<Lumen_Keys_V1_RevokeOperatorTokenResponse>,
        options: CallOptions,
        onResponse handleResponse: @Sendable @escaping (ClientResponse<Lumen_Keys_V1_RevokeOperatorTokenResponse>) async throws -> Result
    ) async throws -> Result {
        try await calls.unary(request, Method.RevokeOperatorToken.descriptor, service.revokeOperatorToken, handleResponse)
    }

    public func listAuditLog<Result: Sendable>(
        request: ClientRequest<Lumen_Common_V1_ListAuditLogRequest>,
        serializer: some MessageSerializer<Lumen_Common_V1_ListAuditLogRequest>,
        deserializer: some MessageDeserializer<Lumen_Common_V1_ListAuditLogResponse>,
        options: CallOptions,
        onResponse handleResponse: @Sendable @escaping (ClientResponse<Lumen_Common_V1_ListAuditLogResponse>) async throws -> Result
    ) async throws -> Result {
        try await calls.unary(request, Method.ListAuditLog.descriptor, service.listAuditLog, handleResponse)
    }

    public func verifyAuditLog<Result: Sendable>(
        request: ClientRequest<Lumen_Common_V1_VerifyAuditLogRequest>,
        serializer: some MessageSerializer<Lumen_Common_V1_VerifyAuditLogRequest>,
        deserializer: some MessageDeserializer<Lumen_Common_V1_VerifyAuditLogResponse>,
        options: CallOptions,
        onResponse handleResponse: @Sendable @escaping (ClientResponse<Lumen_Common_V1_VerifyAuditLogResponse>) async throws -> Result
    ) async throws -> Result {
        try await calls.unary(request, Method.VerifyAuditLog.descriptor, service.verifyAuditLog, handleResponse)
    }

    public func watchKeys<Result: Sendable>(
        request: ClientRequest<Lumen_Keys_V1_WatchKeysRequest>,
        serializer: some MessageSerializer<Lumen_Keys_V1_WatchKeysRequest>,
        deserializer: some MessageDeserializer<Lumen_Keys_V1_KeyEvent>,
        options: CallOptions,
        onResponse handleResponse: @Sendable @escaping (StreamingClientResponse<Lumen_Keys_V1_KeyEvent>) async throws -> Result
    ) async throws -> Result {
        try await streams.watchKeys(
            request: request, serializer: serializer, deserializer: deserializer, options: options, onResponse: handleResponse)
    }
}

extension KeysService {
    /// A client of this service for callers in its process (the gateway, the token resolver):
    /// `interceptor` is the one the service's servers authenticate with, `streams` the
    /// in-process transport's client, for the watch.
    public func localClient(
        authenticating interceptor: AuthInterceptor, streams: any Lumen_Keys_V1_KeysService.ClientProtocol
    ) -> KeysLocalClient {
        KeysLocalClient(service: self, calls: LocalCalls(interceptor), streams: streams)
    }
}
