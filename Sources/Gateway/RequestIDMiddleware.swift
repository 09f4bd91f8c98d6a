import HTTPTypes
import Hummingbird
import RPCSupport

/// Gives every request a fresh id (`req_…`; for an inference request, its usage line's
/// `request_id`), gives it to the handler as `RequestID.current` (a client's own
/// `x-request-id` is never trusted) and returns it on every response, errors included. TRACE
/// (which would echo the request, credentials included) is refused with 405.
struct RequestIDMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let requestID = Identifier.make("req")
        var response: Response
        do {
            guard request.method != .trace else {
                throw APIError(.methodNotAllowed, code: "method_not_allowed", message: "TRACE is not served")
            }
            response = try await RequestID.$current.withValue(requestID) { try await next(request, context) }
        } catch let error as APIError {
            response = try error.response(from: request, context: context)
        }
        response.headers[.requestID] = requestID
        return response
    }
}

extension HTTPField.Name {
    /// The id of a request, the same as its usage line's `request_id`.
    static let requestID = HTTPField.Name("x-request-id")!
}

/// The id of the inference request being handled.
enum RequestID {
    @TaskLocal static var current = ""
}
