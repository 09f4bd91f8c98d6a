import Foundation
import GRPCCore
import HTTPTypes
import Hummingbird
import RPCSupport
import SharedRules

/// An error as the REST and OpenAI-compatible APIs show it:
/// `{"error": {"type", "code", "message", "param"}}` with a 4xx or 5xx status.
public struct APIError: Error, HTTPResponseError, Sendable {
    public var status: HTTPResponse.Status
    public var code: String
    public var message: String
    public var param: String?
    /// Seconds after which a retry may succeed (`Retry-After`), for 429.
    public var retryAfter: Int64?
    /// A key's minute, for a 429 of its per-minute limits (`x-ratelimit-*`).
    public var rateWindow: RateWindow?
    /// The methods the resource serves (`Allow`), for 405.
    public var allow: String?

    public init(_ status: HTTPResponse.Status, code: String, message: String, param: String? = nil) {
        self.status = status
        self.code = code
        self.message = message
        self.param = param
    }

    /// A 400 for one bad input field.
    public static func invalid(_ code: String, _ message: String, param: String? = nil) -> APIError {
        APIError(.badRequest, code: code, message: message, param: param)
    }

    /// The OpenAI error type for a status.
    var type: String {
        switch status.code {
        case 401: "authentication_error"
        case 402: "insufficient_quota"
        case 403: "permission_error"
        case 429: "rate_limit_error"
        case 400..<500: "invalid_request_error"
        default: "api_error"
        }
    }

    /// The error as a server-sent event (`data: {"error": {…}}`), for a stream that must end
    /// after its answer has begun.
    var event: ByteBuffer {
        let body = APIErrorBody(error: .init(type: type, code: code, message: message, param: param))
        let json = (try? JSONEncoder().encode(body)).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
        return ByteBuffer(string: "data: \(json)\n\n")
    }

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        let body = APIErrorBody(error: .init(type: type, code: code, message: message, param: param))
        var response = try JSONResponse(body, status: status).response(from: request, context: context)
        if status == .unauthorized {
            response.headers[HTTPField.Name("WWW-Authenticate")!] = "Bearer"
        }
        if let retryAfter {
            response.headers[HTTPField.Name("Retry-After")!] = String(retryAfter)
        }
        rateWindow?.add(to: &response.headers)
        if let allow {
            response.headers[.allow] = allow
        }
        return response
    }
}

extension APIError {
    /// Translates a service's error; `params` renames the service's field names to the
    /// names the REST body uses. This is the one place gRPC codes become HTTP statuses
    /// (the table of google/rpc/code.proto).
    /// FAILED_PRECONDITION codes that are conflicts with the state of things (409).
    static let conflicts: Set<String> = ["key_revoked", "last_admin", "cannot_deactivate_self"]

    public init(_ error: ServiceError, params: [String: String] = [:]) {
        let status: HTTPResponse.Status =
            switch error.status {
            // A revoked key, or an organisation's last administrator, is a state the request cannot
            // change: a conflict, not a bad request.
            case .failedPrecondition where Self.conflicts.contains(error.code): .conflict
            case .invalidArgument, .failedPrecondition, .outOfRange: .badRequest
            case .unauthenticated: .unauthorized
            case .permissionDenied: .forbidden
            case .notFound: .notFound
            case .alreadyExists, .aborted: .conflict
            // Out of money is not out of requests: OpenAI SDKs tell 402 from 429.
            case .resourceExhausted where error.code == "insufficient_quota": .paymentRequired
            case .resourceExhausted: .tooManyRequests
            case .cancelled: HTTPResponse.Status(code: 499, reasonPhrase: "Client Closed Request")
            case .unimplemented: .notImplemented
            case .unavailable: .serviceUnavailable
            case .deadlineExceeded: .gatewayTimeout
            default: .internalServerError
            }
        let param = error.param.map { params[$0] ?? $0 }
        self.init(status, code: error.code, message: error.message, param: param)
        self.retryAfter = error.retryAfter
        self.rateWindow = error.rateWindow
    }
}

extension RateWindow {
    /// Adds the window's `x-ratelimit-*` headers.
    func add(to headers: inout HTTPFields) {
        for (name, value) in self.headers {
            if let name = HTTPField.Name(name) { headers[name] = value }
        }
    }
}

extension HTTPResponse.Status {
    /// 402, which swift-http-types does not name.
    static let paymentRequired = HTTPResponse.Status(code: 402, reasonPhrase: "Payment Required")
}

    /// The JSON of an `APIError`; `param` is written as null when absent.
struct APIErrorBody: Encodable {
        struct Inner: Encodable {
            var type: String
            var code: String
            var message: String
            var param: String?

            func encode(to encoder: any Encoder) throws {
                var container = encoder.container(keyedBy: CodingKeys.self)
                try container.encode(type, forKey: .type)
                try container.encode(code, forKey: .code)
                try container.encode(message, forKey: .message)
                try container.encode(param, forKey: .param)
            }

            enum CodingKeys: String, CodingKey { case type, code, message, param }
        }
        var error: Inner
    }

extension APIError {
    /// Runs service calls, turning the gRPC error of a failed one into the API's, with the
    /// fields renamed as this API's body names them (`params`: service name → API name).
    public static func translating<T>(params: [String: String] = [:], _ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch let error as RPCError {
            throw APIError(ServiceError(error), params: params)
        }
    }
}
