import GRPCCore
import Hummingbird
import Logging
import NIOCore
import RPCSupport

/// Turns every error a route throws into the API's JSON error, so that a client never sees
/// an empty 500: service errors keep their code, unknown routes become `not_found`, and
/// anything unexpected is logged and answered `internal_error`.
struct APIErrorMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(
        _ request: Request, context: Context, next: (Request, Context) async throws -> Response
    ) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as APIError {
            throw error
        } catch let error as RPCError {
            let serviceError = ServiceError(error)
            if serviceError.status == .unknown || serviceError.status == .internalError {
                context.logger.error("service call failed", metadata: ["error": "\(error)"])
            }
            throw APIError(serviceError)
        } catch let error as ServiceError {
            throw APIError(error)
        } catch is NIOTooManyBytesError {
            throw APIError(.contentTooLarge, code: "request_too_large", message: "the request body is too large")
        } catch let error as HTTPError {
            throw APIError(
                error.status, code: Self.code(for: error.status),
                message: error.body ?? Self.message(for: error.status, request: request))
        } catch {
            context.logger.error("request failed", metadata: ["error": "\(error)"])
            throw APIError(.internalServerError, code: "internal_error", message: "internal error")
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
