import GRPCCore
import Logging

/// Logs what a service threw that is not one of its refusals (an `RPCError` or a
/// `ServiceError`): a store failure, a bug. Callers get grpc-swift's `UNKNOWN` without the
/// cause (it may name tables or values); the log line names the method and the cause, so that
/// an operator is not left with `internal_error` alone.
public struct UnexpectedErrors: ServerInterceptor {
    let logger: Logger

    public init(logger: Logger) { self.logger = logger }

    public func intercept<Input: Sendable, Output: Sendable>(
        request: StreamingServerRequest<Input>,
        context: ServerContext,
        next: @Sendable (StreamingServerRequest<Input>, ServerContext) async throws -> StreamingServerResponse<Output>
    ) async throws -> StreamingServerResponse<Output> {
        let method = context.descriptor.fullyQualifiedMethod
        let logger = self.logger
        var response: StreamingServerResponse<Output>
        do {
            response = try await next(request, context)
        } catch {
            Self.log(error, method: method, logger: logger)
            throw error
        }
        if case .success(var contents) = response.accepted {
            let producer = contents.producer
            contents.producer = { writer in
                do {
                    return try await producer(writer)
                } catch {
                    Self.log(error, method: method, logger: logger)
                    throw error
                }
            }
            response.accepted = .success(contents)
        }
        return response
    }

    static func log(_ error: any Error, method: String, logger: Logger) {
        guard !(error is RPCError), !(error is any RPCErrorConvertible), !(error is CancellationError) else { return }
        logger.error("a service call failed unexpectedly", metadata: ["method": "\(method)", "error": "\(String(reflecting: error))"])
    }
}
