import GRPCCore
import GRPCProtobuf

/// An error a Lumen service returns to its caller.
///
/// It becomes a gRPC status whose details carry a `google.rpc.ErrorInfo` with `reason` = the
/// machine-readable `code` (the same string the REST API puts in `error.code`), domain
/// `lumen`, and metadata `param` naming the input field at fault, if one is.
public struct ServiceError: Error, Sendable, Equatable, CustomStringConvertible {
    public var status: RPCError.Code
    public var code: String
    public var message: String
    public var param: String?
    /// For a refusal that passes with time (`rate_limit_exceeded`): the seconds after which a
    /// retry fits. On the wire, the `retry_after` entry of the ErrorInfo's metadata.
    public var retryAfter: Int64?
    /// For a refusal by a key's per-minute limits: its minute (the `x-ratelimit-*` headers). On
    /// the wire, the `rate_window` entry of the ErrorInfo's metadata.
    public var rateWindow: RateWindow?

    public init(_ status: RPCError.Code, _ code: String, _ message: String, param: String? = nil, retryAfter: Int64? = nil) {
        self.status = status
        self.code = code
        self.message = message
        self.param = param
        self.retryAfter = retryAfter
    }

    /// INVALID_ARGUMENT for one bad input field.
    public static func invalid(_ code: String, _ message: String, param: String) -> ServiceError {
        ServiceError(.invalidArgument, code, message, param: param)
    }

    public var description: String { "\(status) \(code): \(message)" }

    public static let domain = "lumen"
}

extension ServiceError: RPCErrorConvertible {
    public var rpcErrorCode: RPCError.Code { status }
    public var rpcErrorMessage: String { message }
    public var rpcErrorMetadata: Metadata {
        var metadata: [String: String] = [:]
        if let param { metadata["param"] = param }
        if let retryAfter { metadata["retry_after"] = String(retryAfter) }
        if let rateWindow { metadata["rate_window"] = rateWindow.text }
        let status = GoogleRPCStatus(
            code: status, message: message,
            details: [.errorInfo(reason: code, domain: Self.domain, metadata: metadata)])
        return status.rpcErrorMetadata
    }
}

extension ServiceError {
    /// Recovers the code and param a Lumen service put into an RPC error; for errors from
    /// elsewhere (transport failures, UNIMPLEMENTED from an older server) the code is derived
    /// from the status.
    public init(_ error: RPCError) {
        let info = (try? error.unpackGoogleRPCStatus())?.details.lazy.compactMap(\.errorInfo).first
        if let info, info.domain == Self.domain {
            self.init(
                error.code, info.reason, error.message, param: info.metadata["param"],
                retryAfter: info.metadata["retry_after"].flatMap { Int64($0) })
            self.rateWindow = info.metadata["rate_window"].flatMap { RateWindow(text: $0) }
        } else {
            self.init(error.code, Self.defaultCode(for: error.code), error.message)
        }
    }

    static func defaultCode(for status: RPCError.Code) -> String {
        switch status {
        case .invalidArgument, .outOfRange, .failedPrecondition: "invalid_request"
        case .unauthenticated: "unauthenticated"
        case .permissionDenied: "permission_denied"
        case .notFound: "not_found"
        case .alreadyExists, .aborted: "conflict"
        case .resourceExhausted: "resource_exhausted"
        case .unimplemented: "not_implemented"
        case .unavailable: "service_unavailable"
        case .deadlineExceeded: "timeout"
        case .cancelled: "cancelled"
        default: "internal_error"
        }
    }
}
