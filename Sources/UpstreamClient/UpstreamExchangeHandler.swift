import NIOCore
import NIOHTTP1
import NIOSSL
import NIOTLS

/// One request on a connection, as the client hands it to the connection's pipeline.
struct UpstreamExchange {
    var head: HTTPRequestHead
    var body: ByteBuffer?
    /// When the answer's head must have arrived.
    var deadline: NIODeadline
    var answer: EventLoopPromise<UpstreamHTTPResponse>
    /// Takes the connection back once the answer ended and the connection may be reused.
    var park: @Sendable (any Channel) -> Void
}

/// The last handler of an upstream connection: writes one exchange at a time, answers its
/// head, streams its body with back-pressure (a read from the socket is held while the body's
/// consumer is behind), and parks the connection when the body has ended.
final class UpstreamExchangeHandler: ChannelDuplexHandler {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundIn = UpstreamExchange
    typealias OutboundOut = HTTPClientRequestPart

    private enum State {
        case idle
        case awaitingHead(UpstreamExchange, Scheduled<Void>)
        case streaming(UpstreamExchange, UpstreamHTTPBody.Producer.Source, keepAlive: Bool)
        case closed
    }

    private var state = State.idle
    private var context: ChannelHandlerContext?
    /// Counts exchanges, so that a late word from a finished body's consumer is ignored.
    private var generation = 0
    /// The body's consumer is behind: reads from the socket wait.
    private var paused = false
    private var readHeld = false
    /// The request was handed whole to the socket (an upstream may answer before it has read
    /// it all; then the connection cannot be reused).
    private var requestWritten = false

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }

    func handlerRemoved(context: ChannelHandlerContext) { self.context = nil }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let exchange = unwrapOutboundIn(data)
        guard case .idle = state else {
            exchange.answer.fail(UpstreamClientError.closedBeforeAnswer)
            promise?.fail(ChannelError.inappropriateOperationForState)
            return
        }
        generation += 1
        let timer = context.eventLoop.assumeIsolated().scheduleTask(deadline: exchange.deadline) { [self] in
            guard case .awaitingHead(let exchange, _) = state else { return }
            state = .closed
            exchange.answer.fail(UpstreamClientError.headTimeout)
            self.context?.close(promise: nil)
        }
        state = .awaitingHead(exchange, timer)
        // The exchange reached the connection: its outcome comes through `answer` from here on.
        promise?.succeed(())
        requestWritten = false
        let written = context.eventLoop.makePromise(of: Void.self)
        written.futureResult.assumeIsolated().whenComplete { [self] result in
            switch result {
            case .success: requestWritten = true
            case .failure:
                // The connection is failing; `errorCaught` (a TLS failure, say) or
                // `channelInactive` ends the exchange with the reason.
                self.context?.close(promise: nil)
            }
        }
        context.write(wrapOutboundOut(.head(exchange.head)), promise: nil)
        if let body = exchange.body, body.readableBytes > 0 {
            context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
        }
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: written)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            guard case .awaitingHead(let exchange, let timer) = state else { return }
            if head.status.code < 200 { return }  // an interim answer (100 Continue): the real one follows
            timer.cancel()
            let delegate = UpstreamHTTPBody.Delegate(handler: NIOLoopBound(self, eventLoop: context.eventLoop), generation: generation)
            let sequence = UpstreamHTTPBody.Producer.makeSequence(
                backPressureStrategy: .init(lowWatermark: 4, highWatermark: 32), finishOnDeinit: false, delegate: delegate)
            state = .streaming(exchange, sequence.source, keepAlive: head.isKeepAlive)
            exchange.answer.succeed(
                UpstreamHTTPResponse(
                    status: head.status, headers: head.headers, body: UpstreamHTTPBody(producer: sequence.sequence, delegate: delegate)))
        case .body(let part):
            guard case .streaming(_, let source, _) = state else { return }
            if source.yield(part) == .stopProducing { paused = true }
        case .end:
            guard case .streaming(let exchange, let source, let keepAlive) = state else { return }
            paused = false
            if readHeld {
                readHeld = false
                context.read()
            }
            // Parked before the body's consumer hears of the end, so that its next call finds
            // the connection free.
            if keepAlive && requestWritten {
                state = .idle
                exchange.park(context.channel)
            } else {
                state = .closed
                context.close(promise: nil)
            }
            source.finish()
        }
    }

    func read(context: ChannelHandlerContext) {
        if paused {
            readHeld = true
        } else {
            context.read()
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        guard let event = event as? IdleStateHandler.IdleStateEvent, event == .read else {
            context.fireUserInboundEventTriggered(event)
            return
        }
        switch state {
        case .streaming:
            fail(UpstreamClientError.readTimeout, context: context)
        case .idle where generation > 0:
            fail(UpstreamClientError.readTimeout, context: context)  // parked and silent that long: let it go
        case .idle, .awaitingHead, .closed:
            break  // a new connection not yet given its request, or the head's own deadline governs
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        fail(error, context: context)
    }

    func channelInactive(context: ChannelHandlerContext) {
        switch state {
        case .awaitingHead(let exchange, let timer):
            timer.cancel()
            exchange.answer.fail(UpstreamClientError.closedBeforeAnswer)
        case .streaming(_, let source, _):
            source.finish(UpstreamClientError.closedMidAnswer)
        case .idle, .closed:
            break
        }
        state = .closed
        context.fireChannelInactive()
    }

    /// Ends the exchange in progress with `error` and closes the connection.
    private func fail(_ error: any Error, context: ChannelHandlerContext) {
        switch state {
        case .awaitingHead(let exchange, let timer):
            timer.cancel()
            exchange.answer.fail(error)
        case .streaming(_, let source, _):
            source.finish(error)
        case .idle, .closed:
            break
        }
        state = .closed
        context.close(promise: nil)
    }

    /// The body's consumer wants more.
    fileprivate func produceMore(_ generation: Int) {
        guard generation == self.generation, case .streaming = state else { return }
        paused = false
        if readHeld, let context {
            readHeld = false
            context.read()
        }
    }

    /// The body's consumer went away: before the end, the connection cannot be reused.
    fileprivate func consumerLeft(_ generation: Int) {
        guard generation == self.generation, case .streaming(_, let source, _) = state else { return }
        state = .closed
        source.finish()
        context?.close(promise: nil)
    }
}

/// Completes `done` when the TLS handshake has completed; fails it with the reason a
/// connection failed or closed before.
final class HandshakeWaiter: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = NIOAny

    let done: EventLoopPromise<Void>

    init(done: EventLoopPromise<Void>) { self.done = done }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? TLSUserEvent, case .handshakeCompleted = event {
            done.succeed(())
            context.pipeline.syncOperations.removeHandler(self, promise: nil)
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        done.fail(error)
        context.fireErrorCaught(error)
    }

    func channelInactive(context: ChannelHandlerContext) {
        done.fail(UpstreamClientError.closedBeforeAnswer)
        context.fireChannelInactive()
    }
}

/// The body of an upstream's answer, chunk by chunk as the connection reads it.
public struct UpstreamHTTPBody: AsyncSequence, Sendable {
    public typealias Element = ByteBuffer
    typealias Producer = NIOThrowingAsyncSequenceProducer<
        ByteBuffer, any Error, NIOAsyncSequenceProducerBackPressureStrategies.HighLowWatermark, Delegate
    >

    struct Delegate: NIOAsyncSequenceProducerDelegate {
        let handler: NIOLoopBound<UpstreamExchangeHandler>
        let generation: Int

        func produceMore() {
            let handler = self.handler
            let generation = self.generation
            handler.eventLoop.execute { handler.value.produceMore(generation) }
        }

        func didTerminate() {
            let handler = self.handler
            let generation = self.generation
            handler.eventLoop.execute { handler.value.consumerLeft(generation) }
        }
    }

    let producer: Producer
    let delegate: Delegate

    /// Ends the body now from any thread: the connection is closed (never reused) and the
    /// reader's next chunk is the end. For an answer that must stop mid-stream (its key was revoked).
    public func abort() { delegate.didTerminate() }

    public struct AsyncIterator: AsyncIteratorProtocol {
        var inner: Producer.AsyncIterator

        public mutating func next() async throws -> ByteBuffer? { try await inner.next() }
    }

    public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(inner: producer.makeAsyncIterator()) }

    /// The whole body; `UpstreamClientError.bodyTooLarge` past `limit` bytes.
    public func collect(upTo limit: Int) async throws -> ByteBuffer {
        var iterator = makeAsyncIterator()
        guard var all = try await iterator.next() else { return ByteBuffer() }
        while var part = try await iterator.next() {
            guard all.readableBytes + part.readableBytes <= limit else { throw UpstreamClientError.bodyTooLarge(limit: limit) }
            all.writeBuffer(&part)
        }
        guard all.readableBytes <= limit else { throw UpstreamClientError.bodyTooLarge(limit: limit) }
        return all
    }
}
