import HTTPTypes
import Hummingbird
import NIOHTTP1
import RPCSupport
import SharedRules
import Tracing

/// The HTTP request's span, when this process traces (README, "Tracing"): a server span that
/// continues a caller's `traceparent`, named after the route (`POST /v1/chat/completions`), with
/// the method, the route, the status and the request id, ended once the answer's last byte is
/// written (a stream's too). The spans the handler starts (admission, the hold, the upstream
/// call, the settlement) and the calls it makes to services elsewhere are its children.
///
/// Not Hummingbird's `TracingMiddleware`: that one records the path and the query as sent,
/// and Lumen's paths and queries can hold secrets (an invitation's token, a sign-in's code).
/// Only the route's pattern is recorded here. `/healthz` is not traced.
struct RequestSpan<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard Traces.isOn, request.uri.path != "/healthz" else { return try await next(request, context) }
        var parent = InstrumentationContext.current ?? .topLevel
        InstrumentationSystem.instrument.extract(request.headers, into: &parent, using: HTTPFieldsCarrier())
        let span = startSpan("\(request.method.rawValue)", context: parent, ofKind: .server)
        span.attributes["http.request.method"] = request.method.rawValue
        do {
            var response = try await InstrumentationContext.$current.withValue(span.context) { try await next(request, context) }
            if let route = context.endpointPath {
                span.operationName = "\(request.method.rawValue) \(route)"
                span.attributes["http.route"] = route
            }
            span.attributes["http.response.status_code"] = Int(response.status.code)
            span.attributes["lumen.request_id"] = response.headers[.requestID]
            if response.status.code >= 500 { span.setStatus(SpanStatus(code: .error)) }
            let (ending, body) = (SpanEnding(span), response.body)
            response.body = ResponseBody(contentLength: body.contentLength) { writer in
                defer { ending.end() }
                try await body.write(writer)
            }
            return response
        } catch {
            span.recordError(error)
            span.setStatus(SpanStatus(code: .error))
            span.end()
            throw error
        }
    }
}

/// Ends a span once, when the answer is written or, should that never happen, when dropped.
private final class SpanEnding: @unchecked Sendable {
    // Written once by the body's writer (or on release): no concurrent access.
    private var span: (any Span)?

    init(_ span: any Span) { self.span = span }

    func end() {
        span?.end()
        span = nil
    }

    deinit { span?.end() }
}

/// An HTTP request's header fields as the carrier of a caller's span context.
struct HTTPFieldsCarrier: Extractor {
    func extract(key: String, from carrier: HTTPFields) -> String? {
        HTTPField.Name(key).flatMap { carrier[$0] }
    }
}

/// An upstream request's headers as the carrier of the call's span context.
struct HTTPHeadersCarrier: Injector {
    func inject(_ value: String, forKey key: String, into carrier: inout HTTPHeaders) { carrier.replaceOrAdd(name: key, value: value) }
}

extension Traces {
    /// Ends `span` as failed by `error`: an `APIError`'s or a refusal's code as `error.type`.
    static func end(_ span: (any Span)?, failing error: any Error) {
        guard let span else { return }
        switch error {
        case let error as APIError: fail(span, code: error.code, message: error.message)
        case let error as ServiceError: fail(span, code: error.code, message: error.message)
        default: fail(span, code: "internal", message: "\(error)")
        }
        span.end()
    }
}
