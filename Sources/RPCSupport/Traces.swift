import GRPCCore
import SharedRules
import Synchronization
import Tracing

/// Lumen's traces (README, "Tracing"): OpenTelemetry spans, exported over OTLP by the process's
/// tracer, which the wiring bootstraps only when `--otlp-endpoint` is given. Off by default, and
/// then every helper here is one relaxed atomic load that answers nil: nothing is allocated,
/// read from a task-local or injected anywhere.
///
/// Across processes a span's context travels as a W3C `traceparent`: in HTTP headers (a
/// caller's, continued by the HTTP span; the upstream's, from the call's span), in gRPC metadata
/// (`TraceClientInterceptor`, `TraceServerInterceptor`) and in the Meter stream's messages (a
/// hold's, settlement's or release's `traceparent`, which the ledger's span continues).
public enum Traces {
    private static let on = Atomic<Bool>(false)

    /// Whether this process exports traces.
    public static var isOn: Bool { on.load(ordering: .relaxed) }

    /// Called once by the wiring after the tracer is bootstrapped, before anything is served.
    public static func turnOn() { on.store(true, ordering: .relaxed) }

    /// A span, child of the current task's span (a root without one); nil when tracing is off.
    public static func start(_ name: String, kind: SpanKind = .internal) -> (any Span)? {
        guard isOn else { return nil }
        return startSpan(name, context: InstrumentationContext.current ?? .topLevel, ofKind: kind)
    }

    /// A span, child of `parent` (a context kept from the task that started the work, for work
    /// that finishes elsewhere: a stream's body, a completion); nil when tracing is off.
    public static func start(_ name: String, in parent: InstrumentationContext?, kind: SpanKind = .internal) -> (any Span)? {
        guard isOn else { return nil }
        return startSpan(name, context: parent ?? .topLevel, ofKind: kind)
    }

    /// The current task's context when tracing is on, to start spans in later (`start(_:in:)`).
    public static var context: InstrumentationContext? { isOn ? InstrumentationContext.current : nil }

    /// A span continuing `traceparent` (a message's field); nil when tracing is off or the
    /// message carries none.
    public static func start(_ name: String, continuing traceparent: String, kind: SpanKind = .server) -> (any Span)? {
        guard isOn, !traceparent.isEmpty else { return nil }
        var context = InstrumentationContext.topLevel
        InstrumentationSystem.instrument.extract(["traceparent": traceparent], into: &context, using: DictionaryCarrier())
        return startSpan(name, context: context, ofKind: kind)
    }

    /// The W3C `traceparent` naming `span` as the parent, to carry in a message; empty without one.
    public static func traceparent(of span: (any Span)?) -> String {
        guard let span else { return "" }
        var carrier: [String: String] = [:]
        InstrumentationSystem.instrument.inject(span.context, into: &carrier, using: DictionaryCarrier())
        return carrier["traceparent"] ?? ""
    }

    /// Runs `body` with `span` as the current task's span (the parent of spans it starts, the
    /// context its outgoing calls carry); without a span, just runs it.
    public static func within<T>(_ span: (any Span)?, _ body: () async throws -> T) async rethrows -> T {
        guard let span else { return try await body() }
        return try await InstrumentationContext.$current.withValue(span.context) { try await body() }
    }

    /// Ends `span`; a refusal is its error, with its code as `error.type`.
    public static func end(_ span: (any Span)?, refusal: ServiceError? = nil) {
        guard let span else { return }
        if let refusal { fail(span, code: refusal.code, message: refusal.message) }
        span.end()
    }

    /// Marks `span` as failed with the machine-readable `code` (`error.type`).
    public static func fail(_ span: any Span, code: String, message: String) {
        span.attributes["error.type"] = code
        span.setStatus(SpanStatus(code: .error, message: message))
    }
}

/// A `[String: String]` as the carrier of a span's context.
struct DictionaryCarrier: Injector, Extractor {
    func inject(_ value: String, forKey key: String, into carrier: inout [String: String]) { carrier[key] = value }
    func extract(key: String, from carrier: [String: String]) -> String? { carrier[key] }
}

/// gRPC metadata as the carrier of a span's context.
struct MetadataCarrier: Injector, Extractor {
    func inject(_ value: String, forKey key: String, into carrier: inout Metadata) { carrier.replaceOrAddString(value, forKey: key) }
    func extract(key: String, from carrier: Metadata) -> String? { carrier[stringValues: key].first(where: { _ in true }) }
}

/// On the clients of services in other processes: a call made within a span gets a client span
/// of its own, whose context goes with it in the metadata (`traceparent`), so that the
/// service's span (`TraceServerInterceptor`) is its child. Calls made outside any span (watch
/// streams, the Meter stream, background reports) carry nothing and start nothing.
public struct TraceClientInterceptor: ClientInterceptor {
    public init() {}

    public func intercept<Input: Sendable, Output: Sendable>(
        request: StreamingClientRequest<Input>,
        context: ClientContext,
        next: (StreamingClientRequest<Input>, ClientContext) async throws -> StreamingClientResponse<Output>
    ) async throws -> StreamingClientResponse<Output> {
        guard Traces.isOn, let parent = InstrumentationContext.current else { return try await next(request, context) }
        let span = startSpan(context.descriptor.fullyQualifiedMethod, context: parent, ofKind: .client)
        span.attributes["rpc.system"] = "grpc"
        span.attributes["rpc.method"] = context.descriptor.fullyQualifiedMethod
        var request = request
        InstrumentationSystem.instrument.inject(span.context, into: &request.metadata, using: MetadataCarrier())
        do {
            let response = try await next(request, context)
            if case .failure(let error) = response.accepted { Traces.fail(span, code: "\(error.code)", message: error.message) }
            span.end()
            return response
        } catch {
            Traces.fail(span, code: "transport", message: "\(error)")
            span.end()
            throw error
        }
    }
}

/// On the gRPC servers: a call whose metadata carries a `traceparent` is served within a
/// server span continuing it, ended once its answer is written. Calls without one are served as
/// they are.
public struct TraceServerInterceptor: ServerInterceptor {
    public init() {}

    public func intercept<Input: Sendable, Output: Sendable>(
        request: StreamingServerRequest<Input>,
        context: ServerContext,
        next: @Sendable (StreamingServerRequest<Input>, ServerContext) async throws -> StreamingServerResponse<Output>
    ) async throws -> StreamingServerResponse<Output> {
        guard Traces.isOn, request.metadata[stringValues: "traceparent"].first(where: { _ in true }) != nil else {
            return try await next(request, context)
        }
        var parent = InstrumentationContext.topLevel
        InstrumentationSystem.instrument.extract(request.metadata, into: &parent, using: MetadataCarrier())
        let span = startSpan(context.descriptor.fullyQualifiedMethod, context: parent, ofKind: .server)
        span.attributes["rpc.system"] = "grpc"
        span.attributes["rpc.method"] = context.descriptor.fullyQualifiedMethod
        var response: StreamingServerResponse<Output>
        do {
            response = try await InstrumentationContext.$current.withValue(span.context) { try await next(request, context) }
        } catch {
            Traces.fail(span, code: (error as? RPCError).map { "\($0.code)" } ?? "internal", message: "\(error)")
            span.end()
            throw error
        }
        switch response.accepted {
        case .success(var contents):
            // The answer is written (a streaming handler runs) in the producer, after this returns.
            let producer = contents.producer
            contents.producer = { writer in
                do {
                    let trailers = try await InstrumentationContext.$current.withValue(span.context) { try await producer(writer) }
                    span.end()
                    return trailers
                } catch {
                    Traces.fail(span, code: (error as? RPCError).map { "\($0.code)" } ?? "internal", message: "\(error)")
                    span.end()
                    throw error
                }
            }
            response.accepted = .success(contents)
        case .failure(let error):
            Traces.fail(span, code: ServiceError(error).code, message: error.message)
            span.end()
        }
        return response
    }
}
