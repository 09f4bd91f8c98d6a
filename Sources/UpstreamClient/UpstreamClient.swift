import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import Synchronization

/// The gateway's HTTP/1.1 client for upstream model providers: keep-alive connections kept per
/// host and per event loop, a request written whole, the answer's body streamed with
/// back-pressure.
///
/// Why not AsyncHTTPClient (which Lumen used before): measured side by side in `bench/run.sh`,
/// a proxy built on AsyncHTTPClient spent about 80 µs of CPU per request in the client (its
/// connection pool state machines, request bag, tracing span and URL parsing, and a hop to
/// another event loop both ways); this client spends 20–30 µs, because a request made on an
/// event loop's thread runs its upstream connection on that same loop and nothing between the
/// socket and the caller is shared across threads but the idle-connection list.
///
/// What it does, what it does not:
/// - `http` and `https` (TLS through NIOSSL, the system's trust roots plus any given; SNI and
///   hostname verification), HTTP/1.1 only.
/// - Bounded connecting (`connectTimeout`), a deadline for the response head (per call), and a
///   bound on the silence between two reads of a body (`readTimeout`).
/// - A connection is reused once its request was written whole, its answer read to the end and
///   the upstream did not ask to close; an idle connection is not reused after `idleTimeout`
///   (it is closed when next looked at, or by the read timeout). A request that meets a reused
///   connection closed by the upstream before any byte of the answer (the upstream's keep-alive
///   race) is sent once more on a new connection — it cannot have been answered.
/// - Cancelling the calling task, or dropping the body before its end, closes the connection.
/// - With `maximumConnectionsPerHost`, at most that many connections to one upstream are open
///   at once (answering or idle): a call that finds them all busy waits — in order, at most
///   `maximumWaitingPerHost` calls, and not past its deadline — for one to come free (a finished
///   answer's connection is handed to the first waiting call, a closed one's place too), and is
///   refused at once with `saturated` when too many wait already. So a burst cannot open
///   thousands of connections to a provider.
/// - No redirects, no decompression, no proxies, no cookies: an upstream is called as written.
public final class UpstreamClient: Sendable {
    /// How the client connects and waits.
    public struct Configuration: Sendable {
        /// The longest wait for a TCP connection (and its TLS handshake).
        public var connectTimeout: TimeAmount = .seconds(5)
        /// The longest silence between two reads once an answer has started (a stream pausing
        /// between tokens).
        public var readTimeout: TimeAmount = .seconds(300)
        /// How long an idle connection may wait to be reused.
        public var idleTimeout: TimeAmount = .seconds(60)
        /// Idle connections kept per host and event loop; more are closed.
        public var maximumIdlePerLoop: Int = 256
        /// Connections to one upstream (scheme, host and port) open at once, answering or idle;
        /// beyond, a call waits for one to come free. nil: no cap.
        public var maximumConnectionsPerHost: Int? = nil
        /// Calls waiting for a connection to one upstream at once; one more is refused
        /// (`UpstreamClientError.saturated`), as is a call still waiting at its deadline.
        public var maximumWaitingPerHost: Int = 1_000
        /// Certificates trusted besides the system's roots (PEM), for upstreams behind a
        /// private certificate authority.
        public var additionalTrustRoots: [NIOSSLCertificate] = []

        public init() {}
    }

    let group: any EventLoopGroup
    let configuration: Configuration
    /// Made on the first `https` connection (loading the system's trust roots takes a while).
    private let tls = Mutex<NIOSSLContext?>(nil)
    private let idle = Mutex<Idle>(Idle())
    private let endpoints = Mutex<[String: Endpoint]>([:])

    /// The idle connections and, when connections are capped, each upstream's count and queue:
    /// one lock, so that a connection coming free and a call starting to wait cannot miss each other.
    private struct Idle {
        var connections: [PoolKey: [Parked]] = [:]
        var slots: [Endpoint.Origin: Slots] = [:]
        var nextWaiter = 0
        var closed = false

        /// An idle connection to `origin` on `loop` (any loop's when nil) that is still good;
        /// those found closed or idle too long go to `stale`.
        mutating func take(
            _ origin: Endpoint.Origin, on loop: (any EventLoop)?, now: NIODeadline, idleTimeout: TimeAmount, stale: inout [any Channel]
        ) -> (any Channel)? {
            let keys = loop.map { [PoolKey(endpoint: origin, loop: ObjectIdentifier($0))] }
                ?? connections.keys.filter { $0.endpoint == origin }
            for key in keys {
                while let parked = connections[key]?.popLast() {
                    if parked.channel.isActive && now - parked.since < idleTimeout { return parked.channel }
                    stale.append(parked.channel)
                }
            }
            return nil
        }
    }

    /// One upstream's connections under the cap: how many are open, and the calls waiting.
    private struct Slots {
        var open = 0
        var waiting = CircularBuffer<Waiter>()
    }

    /// A call waiting for a connection: handed an idle one, or leave to open one (nil).
    private struct Waiter {
        var id: Int
        var continuation: CheckedContinuation<(any Channel)?, any Error>
        var deadline: Scheduled<Void>?
    }

    private struct Parked {
        var channel: any Channel
        var since: NIODeadline
    }

    struct PoolKey: Hashable {
        var endpoint: Endpoint.Origin
        var loop: ObjectIdentifier
    }

    /// - Parameters:
    ///   - group: the event loops connections run on; a call made on one of its loops' threads
    ///     gets a connection on that loop.
    public init(group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton, configuration: Configuration = .init()) {
        self.group = group
        self.configuration = configuration
    }

    private func tlsContext() throws -> NIOSSLContext {
        try tls.withLock { context in
            if let context { return context }
            var configuration = TLSConfiguration.makeClientConfiguration()
            configuration.applicationProtocols = ["http/1.1"]
            if !self.configuration.additionalTrustRoots.isEmpty {
                configuration.additionalTrustRoots = [.certificates(self.configuration.additionalTrustRoots)]
            }
            let made = try NIOSSLContext(configuration: configuration)
            context = made
            return made
        }
    }

    /// Closes the idle connections and refuses the calls waiting for one; connections in use
    /// close when their answer ends.
    public func shutdown() {
        let (parked, waiting) = idle.withLock { idle in
            idle.closed = true
            defer {
                idle.connections = [:]
                for origin in idle.slots.keys { idle.slots[origin]?.waiting.removeAll() }
            }
            return (idle.connections.values.flatMap { $0 }, idle.slots.values.flatMap(\.waiting))
        }
        for connection in parked { connection.channel.close(promise: nil) }
        for waiter in waiting {
            waiter.deadline?.cancel()
            waiter.continuation.resume(throwing: UpstreamClientError.saturated)
        }
    }

    /// Sends `request` and waits for the head of the answer, at most `headTimeout`. The body
    /// follows as the upstream sends it; read it to the end (or drop it, which closes the
    /// connection).
    public func execute(_ request: UpstreamHTTPRequest, headTimeout: TimeAmount) async throws -> UpstreamHTTPResponse {
        let endpoint = try self.endpoint(request.url)
        // On one of the group's loops, the connection lives beside the caller; elsewhere, any
        // loop's idle connection will do.
        let current = MultiThreadedEventLoopGroup.currentEventLoop
        let loop = group.any()
        let deadline = NIODeadline.now() + headTimeout
        let head = try endpoint.head(for: request)
        if let address = request.address {
            // Pinned to an address the caller checked: a connection of its own, closed after.
            let channel = try await connect(endpoint, to: address, on: loop, deadline: deadline)
            return try await exchange(on: channel, origin: nil, head: head, body: request.body, deadline: deadline)
        }
        let first = try await connection(to: endpoint, preferring: current == nil ? nil : loop, on: loop, deadline: deadline)
        if first.reused {
            do {
                return try await exchange(on: first.channel, origin: endpoint.origin, head: head, body: request.body, deadline: deadline)
            } catch UpstreamClientError.closedBeforeAnswer where !Task.isCancelled {
                // The upstream closed the idle connection as the request went out: it cannot
                // have answered it. Once more on a new connection.
            }
        }
        let channel =
            first.reused ? try await connection(to: endpoint, on: loop, deadline: deadline, fresh: true).channel : first.channel
        return try await exchange(on: channel, origin: endpoint.origin, head: head, body: request.body, deadline: deadline)
    }

    /// A connection for a call to `endpoint`: an idle one (on `preferring`'s loop, or any loop's
    /// when nil; none when `fresh`), else a new one on `loop` — under the cap, once one comes
    /// free (handed over idle, or its place to open another). `reused`: it served calls before.
    private func connection(
        to endpoint: Endpoint, preferring: (any EventLoop)? = nil, on loop: any EventLoop, deadline: NIODeadline, fresh: Bool = false
    ) async throws -> (channel: any Channel, reused: Bool) {
        if let handed = try await obtain(endpoint.origin, preferring: preferring, fresh: fresh, deadline: deadline) {
            return (handed, true)
        }
        guard configuration.maximumConnectionsPerHost != nil else { return (try await connect(endpoint, on: loop, deadline: deadline), false) }
        // This connection holds one of the upstream's places until it closes.
        let channel: any Channel
        do {
            channel = try await connect(endpoint, on: loop, deadline: deadline)
        } catch {
            release(endpoint.origin)
            throw error
        }
        channel.closeFuture.whenComplete { [weak self] _ in self?.release(endpoint.origin) }
        return (channel, false)
    }

    /// An idle connection to `origin` when there is one (not when `fresh`); nil: open a new one
    /// (when connections are capped, a place is held for it — after waiting for one to come free,
    /// if need be: `saturated` when too many wait already or `deadline` passes first).
    private func obtain(
        _ origin: Endpoint.Origin, preferring: (any EventLoop)?, fresh: Bool, deadline: NIODeadline
    ) async throws -> (any Channel)? {
        let now = NIODeadline.now()
        let (idleTimeout, cap, maximumWaiting) =
            (configuration.idleTimeout, configuration.maximumConnectionsPerHost, configuration.maximumWaitingPerHost)
        var stale: [any Channel] = []
        defer { for channel in stale { channel.close(promise: nil) } }
        // Decided at once, without waiting, in most calls.
        enum Decision {
            case now((any Channel)?)
            case refused
            case wait
        }
        let decision = idle.withLock { idle -> Decision in
            if !fresh, let channel = idle.take(origin, on: preferring, now: now, idleTimeout: idleTimeout, stale: &stale) {
                return .now(channel)
            }
            guard let cap else { return .now(nil) }
            if idle.slots[origin, default: Slots()].open < cap {
                idle.slots[origin, default: Slots()].open += 1
                return .now(nil)
            }
            if let channel = idle.take(origin, on: nil, now: now, idleTimeout: idleTimeout, stale: &stale) { return .now(channel) }
            return idle.closed || idle.slots[origin, default: Slots()].waiting.count >= maximumWaiting || deadline <= now ? .refused : .wait
        }
        switch decision {
        case .now(let channel): return channel
        case .refused: throw UpstreamClientError.saturated
        case .wait: break
        }
        let id = idle.withLock { idle in
            idle.nextWaiter += 1
            return idle.nextWaiter
        }
        let loop = group.any()
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<(any Channel)?, any Error>) in
                // Queued under the lock that frees connections: none can come free unseen. The
                // deadline's timer takes the lock too, so it finds the call queued.
                var stale: [any Channel] = []
                let decided = idle.withLock { idle -> Result<(any Channel)?, any Error>? in
                    guard !idle.closed else { return .failure(UpstreamClientError.saturated) }
                    // A place, or an idle connection, came free in between.
                    if idle.slots[origin, default: Slots()].open < (cap ?? .max) {
                        idle.slots[origin, default: Slots()].open += 1
                        return .success(nil)
                    }
                    if let channel = idle.take(origin, on: nil, now: .now(), idleTimeout: idleTimeout, stale: &stale) {
                        return .success(channel)
                    }
                    // Other calls may have started to wait since this one was told to: the bound
                    // is kept here, where the queue grows.
                    if idle.slots[origin, default: Slots()].waiting.count >= maximumWaiting {
                        return .failure(UpstreamClientError.saturated)
                    }
                    let timer = loop.scheduleTask(deadline: deadline) { [weak self] in
                        guard let self else { return }
                        self.abandon(origin, id, UpstreamClientError.saturated)
                    }
                    idle.slots[origin, default: Slots()].waiting.append(Waiter(id: id, continuation: continuation, deadline: timer))
                    return nil
                }
                for channel in stale { channel.close(promise: nil) }
                if let decided { continuation.resume(with: decided) }
            }
        } onCancel: {
            abandon(origin, id, CancellationError())
        }
    }

    /// How many calls wait for a connection to `url`'s upstream now.
    func waiting(for url: String) -> Int {
        guard let origin = try? Endpoint(url).origin else { return 0 }
        return idle.withLock { $0.slots[origin]?.waiting.count ?? 0 }
    }

    /// Takes the call `id` out of `origin`'s queue, if it is still there, and fails it with `error`.
    private func abandon(_ origin: Endpoint.Origin, _ id: Int, _ error: any Error) {
        let waiter = idle.withLock { idle -> Waiter? in
            guard let index = idle.slots[origin]?.waiting.firstIndex(where: { $0.id == id }) else { return nil }
            return idle.slots[origin, default: Slots()].waiting.remove(at: index)
        }
        waiter?.deadline?.cancel()
        waiter?.continuation.resume(throwing: error)
    }

    /// A connection to `origin` closed: its place goes to the first call waiting (which opens
    /// one), or is free.
    private func release(_ origin: Endpoint.Origin) {
        let waiter = idle.withLock { idle -> Waiter? in
            if let next = idle.slots[origin]?.waiting.popFirst() { return next }
            idle.slots[origin]?.open -= 1
            if idle.slots[origin]?.open == 0 { idle.slots[origin] = nil }
            return nil
        }
        waiter?.deadline?.cancel()
        waiter?.continuation.resume(returning: nil)
    }

    /// One request and its answer on `channel`; the connection is parked for reuse after it
    /// under `origin` (nil: closed).
    private func exchange(
        on channel: any Channel, origin: Endpoint.Origin?, head: HTTPRequestHead, body: ByteBuffer?, deadline: NIODeadline
    ) async throws -> UpstreamHTTPResponse {
        let promise = channel.eventLoop.makePromise(of: UpstreamHTTPResponse.self)
        let exchange = UpstreamExchange(head: head, body: body, deadline: deadline, answer: promise) { [weak self] channel in
            if let self, let origin { self.park(channel, origin) } else { channel.close(promise: nil) }
        }
        // A connection closed before the exchange reached its handler fails this write alone
        // (the handler accepts the write as soon as it takes the exchange).
        let written = channel.eventLoop.makePromise(of: Void.self)
        written.futureResult.whenFailure { _ in promise.fail(UpstreamClientError.closedBeforeAnswer) }
        return try await withTaskCancellationHandler {
            channel.writeAndFlush(exchange, promise: written)
            return try await promise.futureResult.get()
        } onCancel: {
            channel.close(promise: nil)
        }
    }

    /// A new connection to `endpoint` (at `address` when given, else its host resolved).
    private func connect(
        _ endpoint: Endpoint, to address: SocketAddress? = nil, on loop: any EventLoop, deadline: NIODeadline
    ) async throws -> any Channel {
        let tls = endpoint.origin.secure ? try tlsContext() : nil
        let readTimeout = configuration.readTimeout
        // A TLS connection is handed out once its handshake is done, so that a refused
        // certificate fails the connect with NIOSSL's reason.
        let handshake = tls == nil ? nil : loop.makePromise(of: Void.self)
        let bootstrap = ClientBootstrap(group: loop)
            .connectTimeout(min(configuration.connectTimeout, max(.zero, deadline - .now())))
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let pipeline = channel.pipeline.syncOperations
                    if let tls, let handshake {
                        try pipeline.addHandler(
                            NIOSSLClientHandler(context: tls, serverHostname: endpoint.origin.isAddress ? nil : endpoint.origin.host))
                        try pipeline.addHandler(HandshakeWaiter(done: handshake))
                    }
                    try pipeline.addHTTPClientHandlers()
                    try pipeline.addHandler(IdleStateHandler(readTimeout: readTimeout))
                    try pipeline.addHandler(UpstreamExchangeHandler())
                }
            }
        let channel: any Channel
        do {
            if let address {
                channel = try await bootstrap.connect(to: address).get()
            } else {
                channel = try await bootstrap.connect(host: endpoint.origin.host, port: endpoint.origin.port).get()
            }
        } catch ChannelError.connectTimeout {
            handshake?.fail(UpstreamClientError.connectTimeout)
            throw UpstreamClientError.connectTimeout
        } catch {
            handshake?.fail(error)
            throw error
        }
        if let handshake {
            let limit = loop.scheduleTask(deadline: min(deadline, .now() + configuration.connectTimeout)) {
                handshake.fail(UpstreamClientError.connectTimeout)
                channel.close(promise: nil)
            }
            defer { limit.cancel() }
            try await withTaskCancellationHandler {
                try await handshake.futureResult.get()
            } onCancel: {
                channel.close(promise: nil)
            }
        }
        return channel
    }

    /// Keeps a connection whose answer ended for the next call on its loop — or hands it to the
    /// first call waiting for a connection to its upstream.
    private func park(_ channel: any Channel, _ origin: Endpoint.Origin) {
        let key = PoolKey(endpoint: origin, loop: ObjectIdentifier(channel.eventLoop))
        let limit = configuration.maximumIdlePerLoop
        let (kept, waiter) = idle.withLock { idle -> (Bool, Waiter?) in
            guard !idle.closed else { return (false, nil) }
            if let next = idle.slots[origin]?.waiting.popFirst() { return (true, next) }
            guard idle.connections[key, default: []].count < limit else { return (false, nil) }
            idle.connections[key, default: []].append(Parked(channel: channel, since: .now()))
            return (true, nil)
        }
        if let waiter {
            waiter.deadline?.cancel()
            waiter.continuation.resume(returning: channel)
        } else if !kept {
            channel.close(promise: nil)
        }
    }

    private func endpoint(_ url: String) throws -> Endpoint {
        if let known = endpoints.withLock({ $0[url] }) { return known }
        let endpoint = try Endpoint(url)
        endpoints.withLock { endpoints in
            if endpoints.count > 10_000 { endpoints = [:] }
            endpoints[url] = endpoint
        }
        return endpoint
    }
}

/// A call to an upstream.
public struct UpstreamHTTPRequest: Sendable {
    /// `http://host[:port]/path` or `https://…`, query included.
    public var url: String
    public var method: HTTPMethod
    /// Sent as given; `host` and `content-length` are set by the client.
    public var headers: HTTPHeaders
    public var body: ByteBuffer?
    /// Where to connect, instead of the URL's host resolved: an address the caller resolved and
    /// checked itself (the URL's host still names the server: `Host`, TLS's SNI and its
    /// certificate check). Such a connection is never reused.
    public var address: SocketAddress?

    public init(
        url: String, method: HTTPMethod = .GET, headers: HTTPHeaders = [:], body: ByteBuffer? = nil, address: SocketAddress? = nil
    ) {
        self.url = url
        self.method = method
        self.headers = headers
        self.body = body
        self.address = address
    }
}

/// The head of an upstream's answer, and its body as it arrives.
extension UpstreamClient {
    /// The `Host` header and the request target (path and query) this client sends for `url`:
    /// what a signature over the request (AWS SigV4) must cover.
    public static func head(of url: String) throws -> (host: String, target: String) {
        let endpoint = try Endpoint(url)
        return (endpoint.hostHeader, endpoint.target)
    }
}

public struct UpstreamHTTPResponse: Sendable {
    public var status: HTTPResponseStatus
    public var headers: HTTPHeaders
    public var body: UpstreamHTTPBody
}

/// Why a call failed in the client (connection errors from NIO and NIOSSL pass through as they are).
public enum UpstreamClientError: Error, Equatable, CustomStringConvertible {
    case invalidURL(String)
    case connectTimeout
    /// No response head before the call's deadline.
    case headTimeout
    /// The answer stopped for longer than the read timeout.
    case readTimeout
    /// Every connection this client may open to the upstream is busy and too many calls wait
    /// for one already, or this one waited until its deadline.
    case saturated
    /// The connection closed before the answer's head.
    case closedBeforeAnswer
    /// The connection closed in the middle of the answer's body.
    case closedMidAnswer
    /// The body was longer than the caller's limit.
    case bodyTooLarge(limit: Int)
    /// A header name or value that cannot be sent as given.
    case invalidHeader(String)

    public var description: String {
        switch self {
        case .invalidURL(let url): "not an http(s) URL: \(url)"
        case .connectTimeout: "connect timed out"
        case .headTimeout: "timed out"
        case .readTimeout: "the answer stalled past the read timeout"
        case .saturated: "every connection to the upstream is busy, and too many calls wait for one"
        case .closedBeforeAnswer: "the upstream closed the connection before answering"
        case .closedMidAnswer: "the upstream closed the connection in the middle of its answer"
        case .bodyTooLarge(let limit): "the answer is larger than \(limit) bytes"
        case .invalidHeader(let name): "the header \(name.debugDescription) cannot be sent as given (a line break or NUL, or a name that is not a token)"
        }
    }
}

/// A URL split once into what a connection and a request head need.
struct Endpoint: Sendable {
    struct Origin: Hashable, Sendable {
        var secure: Bool
        var host: String
        var port: Int
        /// The host is an IP address (no SNI).
        var isAddress: Bool
    }

    var origin: Origin
    /// The request target: path and query.
    var target: String
    /// The `Host` header's value.
    var hostHeader: String

    init(_ url: String) throws {
        let secure: Bool
        var rest: Substring
        if url.hasPrefix("https://") {
            secure = true
            rest = url.dropFirst(8)
        } else if url.hasPrefix("http://") {
            secure = false
            rest = url.dropFirst(7)
        } else {
            throw UpstreamClientError.invalidURL(url)
        }
        let authorityEnd = rest.firstIndex { $0 == "/" || $0 == "?" || $0 == "#" } ?? rest.endIndex
        let authority = rest[..<authorityEnd]
        rest = rest[authorityEnd...]
        if let fragment = rest.firstIndex(of: "#") { rest = rest[..<fragment] }
        guard !authority.isEmpty, !authority.contains("@"),
            url.utf8.allSatisfy({ $0 > 0x20 && $0 != 0x7F })  // no spaces or controls: the target goes on the request line as is
        else { throw UpstreamClientError.invalidURL(url) }
        var host: Substring
        var port: Int? = nil
        if authority.hasPrefix("[") {  // [v6 address]:port
            guard let close = authority.firstIndex(of: "]") else { throw UpstreamClientError.invalidURL(url) }
            host = authority[authority.index(after: authority.startIndex)..<close]
            let after = authority[authority.index(after: close)...]
            if !after.isEmpty {
                guard after.hasPrefix(":"), let number = Int(after.dropFirst()) else { throw UpstreamClientError.invalidURL(url) }
                port = number
            }
        } else if let colon = authority.lastIndex(of: ":") {
            host = authority[..<colon]
            guard let number = Int(authority[authority.index(after: colon)...]) else { throw UpstreamClientError.invalidURL(url) }
            port = number
        } else {
            host = authority
        }
        guard !host.isEmpty, (port ?? 1) > 0, (port ?? 1) < 65_536 else { throw UpstreamClientError.invalidURL(url) }
        let defaultPort = secure ? 443 : 80
        let isAddress = (try? SocketAddress(ipAddress: String(host), port: 0)) != nil
        origin = Origin(secure: secure, host: String(host), port: port ?? defaultPort, isAddress: isAddress)
        target = rest.isEmpty ? "/" : (rest.hasPrefix("?") ? "/" + rest : String(rest))
        let hostName = authority.hasPrefix("[") ? "[\(host)]" : String(host)
        hostHeader = port == nil || port == defaultPort ? hostName : "\(hostName):\(port!)"
    }

    /// The request's head; `invalidHeader` for a name or value that would break the request's
    /// framing (a line break, NUL, or a name that is not a token).
    func head(for request: UpstreamHTTPRequest) throws -> HTTPRequestHead {
        var headers = HTTPHeaders()
        headers.reserveCapacity(request.headers.count + 2)
        headers.add(name: "host", value: hostHeader)
        for (name, value) in request.headers where !name.equalsIgnoringCase("host") && !name.equalsIgnoringCase("content-length") {
            guard !name.isEmpty, name.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F && $0 != UInt8(ascii: ":") }),
                value.utf8.allSatisfy({ $0 != 0x0D && $0 != 0x0A && $0 != 0x00 })
            else { throw UpstreamClientError.invalidHeader(name) }
            headers.add(name: name, value: value)
        }
        if let body = request.body {
            headers.add(name: "content-length", value: String(body.readableBytes))
        } else if request.method == .POST || request.method == .PUT || request.method == .PATCH {
            headers.add(name: "content-length", value: "0")
        }
        return HTTPRequestHead(version: .http1_1, method: request.method, uri: target, headers: headers)
    }
}

extension String {
    fileprivate func equalsIgnoringCase(_ other: String) -> Bool {
        utf8.count == other.utf8.count && lowercased() == other.lowercased()
    }
}
