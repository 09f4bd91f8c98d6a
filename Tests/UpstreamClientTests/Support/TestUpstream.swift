import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import Synchronization

/// A small HTTP/1.1 server on loopback that behaves as its path asks, and counts what it saw.
///
/// - `/echo`: 200, the request body back, `x-host` and `x-content-length` as received.
/// - `/big?n=BYTES`: 200, BYTES bytes of `x` in 64 KiB chunks.
/// - `/silent`: reads the request and never answers.
/// - `/stall`: the head and one chunk, then silence.
/// - `/drip`: 200 and a chunk every 10 ms, up to 1,000.
/// - `/close`: 200 with `connection: close`.
/// - `/slow?ms=N`: 200 after N milliseconds.
/// - `/doom`: 200, then the next request on the same connection is met by closing it unanswered
///   (an upstream closing an idle keep-alive connection as a request arrives).
final class TestUpstream: Sendable {
    let port: Int
    private let channel: any Channel
    private let counters: Counters

    final class Counters: Sendable {
        let connections = Atomic<Int>(0)
        let open = Atomic<Int>(0)
        let requests = Atomic<Int>(0)
    }

    /// Connections accepted so far.
    var connections: Int { counters.connections.load(ordering: .relaxed) }
    /// Connections open now.
    var openConnections: Int { counters.open.load(ordering: .relaxed) }
    /// Requests received so far.
    var requests: Int { counters.requests.load(ordering: .relaxed) }

    init(tls: NIOSSLContext? = nil) async throws {
        let counters = Counters()
        self.counters = counters
        channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    counters.connections.add(1, ordering: .relaxed)
                    counters.open.add(1, ordering: .relaxed)
                    channel.closeFuture.whenComplete { _ in counters.open.subtract(1, ordering: .relaxed) }
                    if let tls { try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: tls)) }
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(Behaviour(counters: counters))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        port = channel.localAddress!.port!
    }

    func stop() async throws { try await channel.close() }

    private final class Behaviour: ChannelInboundHandler {
        typealias InboundIn = HTTPServerRequestPart
        typealias OutboundOut = HTTPServerResponsePart

        let counters: Counters
        var head: HTTPRequestHead?
        var body = ByteBuffer()
        var doomed = false

        init(counters: Counters) { self.counters = counters }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch unwrapInboundIn(data) {
            case .head(let head):
                counters.requests.add(1, ordering: .relaxed)
                if doomed {
                    context.close(promise: nil)
                    return
                }
                self.head = head
                body.clear()
            case .body(var part):
                body.writeBuffer(&part)
            case .end:
                guard let head else { return }
                self.head = nil
                answer(head, context: context)
            }
        }

        func answer(_ head: HTTPRequestHead, context: ChannelHandlerContext) {
            let path = head.uri.split(separator: "?").first.map(String.init) ?? head.uri
            switch path {
            case "/echo":
                var headers: HTTPHeaders = ["content-length": "\(body.readableBytes)"]
                headers.add(name: "x-host", value: head.headers.first(name: "host") ?? "")
                headers.add(name: "x-content-length", value: head.headers.first(name: "content-length") ?? "")
                send(.ok, headers, [body], context: context)
            case "/big":
                let size = Int(head.uri.split(separator: "=").last ?? "") ?? 0
                var chunks: [ByteBuffer] = []
                var left = size
                while left > 0 {
                    let count = min(left, 65_536)
                    chunks.append(ByteBuffer(repeating: UInt8(ascii: "x"), count: count))
                    left -= count
                }
                send(.ok, ["content-length": "\(size)"], chunks, context: context)
            case "/silent":
                break
            case "/stall":
                context.write(wrapOutboundOut(.head(.init(version: .http1_1, status: .ok, headers: ["transfer-encoding": "chunked"]))), promise: nil)
                context.writeAndFlush(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: "first")))), promise: nil)
            case "/drip":
                context.writeAndFlush(wrapOutboundOut(.head(.init(version: .http1_1, status: .ok, headers: ["transfer-encoding": "chunked"]))), promise: nil)
                drip(1, context: context)
            case "/close":
                send(.ok, ["content-length": "2", "connection": "close"], [ByteBuffer(string: "ok")], context: context, close: true)
            case "/slow":
                let ms = head.uri.split(separator: "=").last.flatMap { Int64($0) } ?? 100
                let later = NIOLoopBound((self, context), eventLoop: context.eventLoop)
                context.eventLoop.scheduleTask(in: .milliseconds(ms)) {
                    later.value.0.send(.ok, ["content-length": "2"], [ByteBuffer(string: "ok")], context: later.value.1)
                }
            case "/doom":
                doomed = true
                send(.ok, ["content-length": "2"], [ByteBuffer(string: "ok")], context: context)
            default:
                send(.notFound, ["content-length": "0"], [], context: context)
            }
        }

        func drip(_ n: Int, context: ChannelHandlerContext) {
            guard n <= 1_000, context.channel.isActive else { return }
            context.writeAndFlush(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: "chunk \(n)\n")))), promise: nil)
            let next = NIOLoopBound((self, context), eventLoop: context.eventLoop)
            context.eventLoop.scheduleTask(in: .milliseconds(10)) { next.value.0.drip(n + 1, context: next.value.1) }
        }

        func send(
            _ status: HTTPResponseStatus, _ headers: HTTPHeaders, _ chunks: [ByteBuffer], context: ChannelHandlerContext, close: Bool = false
        ) {
            context.write(wrapOutboundOut(.head(.init(version: .http1_1, status: status, headers: headers))), promise: nil)
            for chunk in chunks { context.write(wrapOutboundOut(.body(.byteBuffer(chunk))), promise: nil) }
            let done = context.writeAndFlush(wrapOutboundOut(.end(nil)))
            if close {
                let channel = context.channel
                done.whenComplete { _ in channel.close(promise: nil) }
            }
        }
    }
}
