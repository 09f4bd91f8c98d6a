import HTTPTypes
import Hummingbird
import RPCSupport
import SharedRules
import Synchronization

/// Gives every request a fresh id (`req_…`; for an inference request, its usage line's
/// `request_id`), gives it to the handler as `RequestID.current` (a client's own
/// `x-request-id` is never trusted) and returns it on every response, errors included; the
/// service calls the request makes carry it and the client's address (`CallOrigin`), for the
/// audit log. TRACE (which would echo the request, credentials included) is refused with 405.
/// A refused request gets the access log's line here (`refused`, with its status and code; the
/// route's pattern, never the path, which may hold an invitation's token).
struct RequestIDMiddleware<Context: RequestContext>: RouterMiddleware {
    /// The router's paths and methods, for the `Allow` header of a 405 (filled once the routes exist).
    let routes: RouteTable

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let requestID = Identifier.ordered("req")
        var response: Response
        do {
            guard request.method != .trace else {
                guard let allowed = routes.methods(for: request.uri.path) else {
                    throw APIError(.notFound, code: "not_found", message: "no route for \(request.uri.path)")
                }
                var error = APIError(.methodNotAllowed, code: "method_not_allowed", message: "TRACE is not served")
                error.allow = allowed
                throw error
            }
            let address = (context as? any RemoteAddressRequestContext)?.remoteAddress?.ipAddress ?? ""
            response = try await CallOrigin.$current.withValue(CallOrigin(requestID: requestID, clientAddress: address)) {
                try await RequestID.$current.withValue(requestID) { try await next(request, context) }
            }
        } catch var error as APIError {
            // The router's own 404 for a path it serves with other methods is a 405 with `Allow`
            // (a route of this method that answers 404 itself — no such file — stays a 404).
            if error.status == .notFound, error.code == "not_found", let allowed = routes.methods(for: request.uri.path),
                !allowed.split(separator: ", ").contains(Substring(request.method.rawValue))
            {
                error = APIError(.methodNotAllowed, code: "method_not_allowed", message: "\(request.method) is not served here")
                error.allow = allowed
            }
            response = try error.response(from: request, context: context)
            // The access log's line for a refused request (a served inference logs its own).
            context.logger.info(
                "refused",
                metadata: [
                    "request_id": .string(requestID), "method": .string(request.method.rawValue),
                    "route": .string(context.endpointPath ?? "none"), "status": .stringConvertible(error.status.code),
                    "code": .string(error.code),
                ])
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

/// Which methods each of a router's paths serves (`{name}` captures match any one component,
/// a final `**` any one or more).
final class RouteTable: Sendable {
    private let table = Mutex<[(components: [Substring], methods: [String])]>([])

    /// Records the routes of `router`, once they are all added.
    func record<Context: RequestContext>(_ routes: [Router<Context>.RouteDescription]) {
        var byPath: [String: [String]] = [:]
        for route in routes { byPath["\(route.path)", default: []].append(route.method.rawValue) }
        table.withLock { table in
            table = byPath.map { (path, methods) in
                (path.split(separator: "/"), (methods + (methods.contains("GET") ? ["HEAD"] : [])).sorted())
            }
        }
    }

    /// The `Allow` value for `path`, or nil when no route matches it.
    func methods(for path: String) -> String? {
        let components = path.split(separator: "/")
        return table.withLock { table in
            table.first { entry in
                let catchAll = entry.components.last == "**"
                let fixed = catchAll ? entry.components.dropLast() : entry.components[...]
                return (catchAll ? components.count > fixed.count : components.count == fixed.count)
                    && zip(fixed, components).allSatisfy { $0.hasPrefix("{") || $0.hasPrefix(":") || $0 == $1 }
            }.map { $0.methods.joined(separator: ", ") }
        }
    }
}
