import Crypto
import Foundation
import GRPCCore
import SharedRules

/// Resolves a management token (`mt-…`) or an operator token (`op-…`) to the caller it stands for.
public protocol CredentialResolver: Sendable {
    /// - Throws: `ServiceError` with status UNAUTHENTICATED when the token is unknown,
    ///   revoked, inactive, suspended or expired.
    func resolve(token: String) async throws -> Caller
}

/// Establishes `Caller.current` for every RPC from the `authorization` metadata entry.
///
/// `Bearer mt-…` (a management token) and `Bearer op-…` (an operator token) are resolved
/// through a `CredentialResolver`;
/// `Bearer <token>` equal to the deployment's internal token is `Caller.internal`, or
/// `Caller.person` when `lumen-acting-*` metadata names a person (see `Person`). Anything
/// else, or nothing, fails the call with UNAUTHENTICATED before it reaches a service.
public struct AuthInterceptor: ServerInterceptor {
    private let internalTokenDigest: SHA256.Digest
    private let resolver: any CredentialResolver

    public init(internalToken: String, resolver: any CredentialResolver) {
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
        let origin = CallOrigin.of(request.metadata, peer: context.remotePeer)
        var response = try await CallOrigin.$current.withValue(origin) {
            try await Caller.$current.withValue(caller) { try await next(request, context) }
        }
        // A streaming handler runs inside the producer, after this function returns: bind the
        // caller there too.
        if case .success(var contents) = response.accepted {
            let producer = contents.producer
            contents.producer = { writer in
                try await CallOrigin.$current.withValue(origin) {
                    try await Caller.$current.withValue(caller) { try await producer(writer) }
                }
            }
            response.accepted = .success(contents)
        }
        return response
    }

    func authenticate(_ metadata: Metadata) async throws -> Caller {
        guard let header = metadata[stringValues: "authorization"].first(where: { _ in true }) else {
            throw ServiceError(
                .unauthenticated, "missing_credentials",
                "every call needs `authorization: Bearer <management, operator or internal token>` metadata")
        }
        guard let token = Self.bearerToken(header) else {
            throw ServiceError(
                .unauthenticated, "invalid_authorization", "the authorization metadata must be `Bearer <token>`")
        }
        if token.hasPrefix("mt-") || token.hasPrefix("op-") {
            return try await resolver.resolve(token: token)
        }
        if Self.constantTimeEqual(SHA256.hash(data: Array(token.utf8)), internalTokenDigest) {
            // A Lumen process, for itself or for a person it names.
            if let person = try Person.from(metadata) { return .person(person) }
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
        // By bytes: this runs on every request (`Bearer`, any case, then spaces, then the token).
        let utf8 = header.utf8
        var index = utf8.startIndex
        for expected in "bearer".utf8 {
            guard index != utf8.endIndex, utf8[index] | 0x20 == expected else { return nil }
            index = utf8.index(after: index)
        }
        guard index != utf8.endIndex, utf8[index] == UInt8(ascii: " ") || utf8[index] == UInt8(ascii: "\t") else { return nil }
        var end = utf8.endIndex
        while index != end, utf8[index] == UInt8(ascii: " ") || utf8[index] == UInt8(ascii: "\t") { index = utf8.index(after: index) }
        while index != end, utf8[utf8.index(before: end)] == UInt8(ascii: " ") || utf8[utf8.index(before: end)] == UInt8(ascii: "\t") {
            end = utf8.index(before: end)
        }
        guard index != end else { return nil }
        return String(header[index..<end])
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
    /// Metadata that authenticates a call with `token` (a management token or the internal
    /// token), and names the call's origin when there is one (`CallOrigin.current`).
    public static func bearer(_ token: String) -> Metadata {
        var metadata: Metadata = ["authorization": "Bearer \(token)"]
        metadata.addOrigin()
        return metadata
    }
}
