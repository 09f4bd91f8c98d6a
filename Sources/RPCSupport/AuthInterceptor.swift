import Crypto
import Foundation
import GRPCCore

/// Resolves a management token (`mt-…`) to the caller it stands for.
public protocol ManagementTokenResolver: Sendable {
    /// - Throws: `ServiceError` with status UNAUTHENTICATED when the token is unknown,
    ///   revoked, inactive, suspended or expired.
    func resolve(managementToken: String) async throws -> Caller
}

/// Establishes `Caller.current` for every RPC from the `authorization` metadata entry.
///
/// `Bearer mt-…` is a management token, resolved through a `ManagementTokenResolver`;
/// `Bearer <token>` equal to the deployment's internal token is `Caller.internal`. Anything
/// else, or nothing, fails the call with UNAUTHENTICATED before it reaches a service.
public struct AuthInterceptor: ServerInterceptor {
    private let internalTokenDigest: SHA256.Digest
    private let resolver: any ManagementTokenResolver

    public init(internalToken: String, resolver: any ManagementTokenResolver) {
        self.internalTokenDigest = SHA256.hash(data: Array(internalToken.utf8))
        self.resolver = resolver
    }

    public func intercept<Input: Sendable, Output: Sendable>(
        request: StreamingServerRequest<Input>,
        context: ServerContext,
        next: @Sendable (StreamingServerRequest<Input>, ServerContext) async throws -> StreamingServerResponse<Output>
    ) async throws -> StreamingServerResponse<Output> {
        let caller: Caller
        do {
            caller = try await authenticate(request.metadata)
        } catch let error as ServiceError {
            return StreamingServerResponse(error: RPCError(error))
        }
        var response = try await Caller.$current.withValue(caller) {
            try await next(request, context)
        }
        // A streaming handler runs inside the producer, after this function returns: bind the
        // caller there too.
        if case .success(var contents) = response.accepted {
            let producer = contents.producer
            contents.producer = { writer in
                try await Caller.$current.withValue(caller) { try await producer(writer) }
            }
            response.accepted = .success(contents)
        }
        return response
    }

    func authenticate(_ metadata: Metadata) async throws -> Caller {
        guard let header = metadata[stringValues: "authorization"].first(where: { _ in true }) else {
            throw ServiceError(
                .unauthenticated, "missing_credentials",
                "every call needs `authorization: Bearer <management token or internal token>` metadata")
        }
        guard let token = Self.bearerToken(header) else {
            throw ServiceError(
                .unauthenticated, "invalid_authorization", "the authorization metadata must be `Bearer <token>`")
        }
        if token.hasPrefix("mt-") {
            return try await resolver.resolve(managementToken: token)
        }
        if Self.constantTimeEqual(SHA256.hash(data: Array(token.utf8)), internalTokenDigest) {
            return .internal
        }
        if token.hasPrefix("sk-") {
            throw ServiceError(
                .unauthenticated, "invalid_management_token",
                "sk- keys call the model endpoints; the RPC and management APIs take an mt- management token")
        }
        throw ServiceError(.unauthenticated, "invalid_credentials", "the credential is not valid")
    }

    /// The token of an `Authorization: Bearer <token>` value (scheme case-insensitive).
    public static func bearerToken(_ header: String) -> String? {
        let parts = header.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: true)
        guard parts.count == 2, parts[0].lowercased() == "bearer" else { return nil }
        let token = parts[1].trimmingCharacters(in: .whitespaces)
        return token.isEmpty ? nil : token
    }

    /// Compares two digests without an early exit, so timing tells nothing about where they differ.
    public static func constantTimeEqual(_ a: some Sequence<UInt8>, _ b: some Sequence<UInt8>) -> Bool {
        let a = Array(a)
        let b = Array(b)
        guard a.count == b.count else { return false }
        var difference: UInt8 = 0
        for index in a.indices { difference |= a[index] ^ b[index] }
        return difference == 0
    }
}

extension Metadata {
    /// Metadata that authenticates a call with `token` (a management token or the internal token).
    public static func bearer(_ token: String) -> Metadata {
        ["authorization": "Bearer \(token)"]
    }
}
