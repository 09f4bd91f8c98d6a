import ConnectionLoops
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdCore
import HummingbirdTLS
import Logging
import NIOCore
import NIOHTTP1
import NIOHTTPTypes
import NIOSSL
import RPCSupport
import SharedRules
import Synchronization

/// How long a client may take over each part of a request, and how many connections the
/// server holds at once: without them a slow client (slowloris) keeps connections open
/// forever and exhausts the server's descriptors.
public struct ConnectionLimits: Sendable, Equatable {
    /// From a request's first byte to the end of its headers.
    public var readHeaderTimeout: Duration
    /// From the end of a request's headers to the end of its body.
    public var bodyTimeout: Duration
    /// A keep-alive connection with no request in progress is closed after this long.
    public var idleTimeout: Duration
    /// Connections held open at once; more are closed as soon as they are accepted.
    public var maxConnections: Int

    public init(
        readHeaderTimeout: Duration = .seconds(10), bodyTimeout: Duration = .seconds(60), idleTimeout: Duration = .seconds(75),
        maxConnections: Int = 10_000
    ) {
        self.readHeaderTimeout = readHeaderTimeout
        self.bodyTimeout = bodyTimeout
        self.idleTimeout = idleTimeout
        self.maxConnections = maxConnections
    }

    /// The HTTP/1.1 server of the facade with these limits, and JSON errors for requests the
    /// HTTP parser rejects; each connection handled on its own event loop (`OnConnectionLoop`);
    /// over TLS when `tls` is given (the handshake first, then HTTP as without).
    func server(logger: Logger, tls: TLSConfiguration? = nil) -> HTTPServerBuilder {
        let connections = ConnectionCount()
        let limits = self
        let http: HTTPServerBuilder = .http1OnConnectionLoop(
            configuration: .init(
                additionalChannelHandlers: [
                    RequestDeadlines(limits: limits, connections: connections, logger: logger)
                ],
                idleTimeout: TimeAmount(idleTimeout)))
        guard let tls else { return http }
        // The TLS context is made when the server starts: a bad identity fails the start, never
        // falls back to plaintext (LumenServer checks the files before, naming them).
        do {
            return try .tls(http, tlsConfiguration: tls)
        } catch {
            return HTTPServerBuilder { _ in throw error }
        }
    }
}

/// The number of open connections, across every channel of a server.
final class ConnectionCount: Sendable {
    private let count = Atomic<Int>(0)

    /// Counts a new connection; false when it would be one too many (it is not counted then).
    func admit(max: Int) -> Bool {
        let now = count.add(1, ordering: .relaxed).newValue
        if now > max {
            count.subtract(1, ordering: .relaxed)
            return false
        }
        return true
    }

    func release() { count.subtract(1, ordering: .relaxed) }

    var current: Int { count.load(ordering: .relaxed) }
}

/// One connection's clock: when a request's first byte arrives, its headers must follow within
/// `readHeaderTimeout`, then its body within `bodyTimeout`; otherwise the connection is
/// closed. Sits after the HTTP decoder and puts a small byte watcher in front of it (the first
/// byte of a request is only visible there). Also refuses connections past the cap, and
/// answers requests the parser rejects with the API's JSON error instead of an empty 400.
///
/// A request sets and clears its deadline (a time, no timer): one timer a connection checks it,
/// armed when a deadline is set and none is pending, never further away than the shorter
/// timeout — so a deadline set later is never earlier than the pending check — and re-armed
/// for what is left when it finds the deadline ahead. A request then costs no timer of its own
/// (scheduling and cancelling two a request were a few percent of the event loop's work).
final class RequestDeadlines: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    enum Phase {
        /// No part of a request has arrived since the last response.
        case waiting
        /// Bytes of a request have arrived, its headers are not complete.
        case head
        /// Headers complete, the body is still coming.
        case body
        /// The request is complete; its response is being written.
        case answering
    }

    private let limits: ConnectionLimits
    private let connections: ConnectionCount
    private let logger: Logger
    private var phase = Phase.waiting
    /// When the current part of the request is due, and which part it is; nil between requests.
    private var deadline: (at: NIODeadline, part: String, timeout: Duration)?
    /// The pending check of `deadline`, if any.
    private var check: Scheduled<Void>?
    private var counted = false

    init(limits: ConnectionLimits, connections: ConnectionCount, logger: Logger) {
        self.limits = limits
        self.connections = connections
        self.logger = logger
    }

    func handlerAdded(context: ChannelHandlerContext) {
        guard connections.admit(max: limits.maxConnections) else {
            logger.warning("connection refused: the server holds its maximum", metadata: ["max_connections": "\(limits.maxConnections)"])
            context.close(promise: nil)
            return
        }
        counted = true
        let watcher = FirstByteWatcher { [weak self] in self?.bytesArrived(context) }
        try? context.pipeline.syncOperations.addHandler(watcher, position: .first)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        stopChecking()
        release()
    }

    func channelInactive(context: ChannelHandlerContext) {
        stopChecking()
        release()
        context.fireChannelInactive()
    }

    private func release() {
        if counted {
            counted = false
            connections.release()
        }
    }

    /// A request's first bytes: its headers are now due.
    private func bytesArrived(_ context: ChannelHandlerContext) {
        guard phase == .waiting else { return }
        phase = .head
        schedule(context, after: limits.readHeaderTimeout, "headers")
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head:
            phase = .body
            schedule(context, after: limits.bodyTimeout, "body")
        case .body:
            break
        case .end:
            cancelDeadline()
            phase = .answering
        }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if case .end = unwrapOutboundIn(data), phase == .answering {
            phase = .waiting
        }
        context.write(data, promise: promise)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // Only before a request's head has been handed on: after it, the route answers.
        guard error is HTTPParserError, phase == .waiting || phase == .head else {
            context.fireErrorCaught(error)
            return
        }
        // What the parser refuses (a raw 0xFF in the path, a bare CR or LF, a NUL in a header)
        // gets the API's JSON error, then the connection closes.
        stopChecking()
        let body = APIErrorBody(error: .init(
            type: "invalid_request_error", code: "invalid_http",
            message: "the request is not valid HTTP/1.1 (\(error))", param: nil))
        let bytes = (try? JSONEncoder().encode(body)) ?? Data()
        let head = HTTPResponse(
            status: .badRequest,
            headerFields: [
                .contentType: "application/json; charset=utf-8", .contentLength: "\(bytes.count)", .connection: "close",
                .requestID: Identifier.ordered("req"),
            ])
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        context.write(wrapOutboundOut(.body(ByteBuffer(bytes: bytes))), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil))).assumeIsolated().whenComplete { _ in context.close(promise: nil) }
    }

    private func schedule(_ context: ChannelHandlerContext, after timeout: Duration, _ part: String) {
        let now = NIODeadline.now()
        deadline = (now + TimeAmount(timeout), part, timeout)
        if check == nil { armCheck(context, now: now) }
    }

    /// The next check: at the deadline, or sooner when it is further than the shorter timeout.
    private func armCheck(_ context: ChannelHandlerContext, now: NIODeadline) {
        guard let deadline else { return }
        let shortest = now + TimeAmount(min(limits.readHeaderTimeout, limits.bodyTimeout))
        check = context.eventLoop.assumeIsolatedUnsafeUnchecked().scheduleTask(deadline: min(deadline.at, shortest)) {
            self.check = nil
            guard let due = self.deadline else { return }  // between requests: no check until the next one
            let now = NIODeadline.now()
            guard now >= due.at else {
                self.armCheck(context, now: now)
                return
            }
            self.deadline = nil
            self.logger.debug("connection closed: the request's \(due.part) took too long", metadata: ["timeout": "\(due.timeout)"])
            context.close(promise: nil)
        }
    }

    private func cancelDeadline() {
        deadline = nil
    }

    private func stopChecking() {
        deadline = nil
        check?.cancel()
        check = nil
    }
}

/// Tells its owner when bytes arrive, ahead of the HTTP decoder.
final class FirstByteWatcher: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    private let arrived: () -> Void

    init(_ arrived: @escaping () -> Void) {
        self.arrived = arrived
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        arrived()
        context.fireChannelRead(data)
    }
}
