import GRPCCore
import Hummingbird
import Logging
import NIOCore
import RPCSupport
import SharedRules

/// Turns every error a route throws into the API's JSON error, so that a client never sees
/// an empty 500: service errors keep their code, unknown routes become `not_found`, and
/// anything unexpected is logged and answered `internal_error`.
struct APIErrorMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(
        _ request: Request, context: Context, next: (Request, Context) async throws -> Response
    ) async throws -> Response {
        do {
            return try await next(request, context)
        } catch {
            throw Self.apiError(for: error, request: request, logger: context.logger)
        }
    }

    /// The API's error for anything a route throws: the one translation, used here and by the
    /// inference pipeline's metrics (so that a 413 is counted as a 413).
    static func apiError(for error: any Error, request: Request, logger: Logger) -> APIError {
        switch error {
        case let error as APIError:
            return error
        case let error as RPCError:
            let serviceError = ServiceError(error)
            if serviceError.status == .unknown || serviceError.status == .internalError {
                logger.error("service call failed", metadata: ["error": "\(error)"])
            }
            return APIError(serviceError)
        case let error as ServiceError:
            return APIError(error)
        case is NIOTooManyBytesError:
            return APIError(.contentTooLarge, code: "request_too_large", message: "the request body is too large")
        case let error as HTTPError:
            return APIError(
                error.status, code: Self.code(for: error.status),
                message: error.body ?? Self.message(for: error.status, request: request))
        default:
            logger.error("request failed", metadata: ["error": "\(error)"])
            return APIError(.internalServerError, code: "internal_error", message: "internal error")
        }
    }

    static func code(for status: HTTPResponse.Status) -> String {
        switch status {
        case .notFound: "not_found"
        case .methodNotAllowed: "method_not_allowed"
        case .contentTooLarge: "request_too_large"
        case .unsupportedMediaType: "unsupported_media_type"
        case .badRequest: "invalid_request"
        default: status.code < 500 ? "invalid_request" : "internal_error"
        }
    }

    static func message(for status: HTTPResponse.Status, request: Request) -> String {
        switch status {
        case .notFound: "no route for \(request.method) \(request.uri.path)"
        case .contentTooLarge: "the request body is too large"
        default: status.reasonPhrase
        }
    }
}
