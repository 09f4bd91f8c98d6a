import HTTPTypes
import Hummingbird

/// `Strict-Transport-Security` on every response, errors included, for a port people reach over
/// HTTPS: browsers then never try plain HTTP to it again for a year.
struct StrictTransportSecurity<Context: RequestContext>: RouterMiddleware {
    static var header: HTTPField.Name { HTTPField.Name("Strict-Transport-Security")! }
    static var value: String { "max-age=31536000" }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        // Outside the request-id middleware, which turns every error into a response.
        var response = try await next(request, context)
        response.headers[Self.header] = Self.value
        return response
    }
}
