import HummingbirdCore
import Logging
import NIOCore

/// A server's connections, each handled on its own event loop's thread: the connection's task
/// (reading requests, the route's handler, writing responses) prefers an
/// `EventLoopTaskExecutor` of the loop the connection's socket is on.
///
/// Why: on Swift's cooperative pool, every request crosses threads four times (the loop reads
/// the request, a pool thread runs the handler, the loop writes upstream and reads the answer, a
/// pool thread resumes, the loop writes the response); here it stays on one thread, and the
/// upstream connection (`UpstreamClient`) sits on the same loop. Handlers must not block:
/// what blocks (password hashing, say) is sent elsewhere, as `People` does.
public struct OnConnectionLoop<Base: ServerChildChannel>: ServerChildChannel {
    public typealias Value = Base.Value

    let base: Base

    public init(_ base: Base) { self.base = base }

    public func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        base.setup(channel: channel, logger: logger)
    }

    public func handle(value: Value, logger: Logger) async {
        await withTaskExecutorPreference(EventLoopTaskExecutor(value.channel.eventLoop)) {
            await base.handle(value: value, logger: logger)
        }
    }
}

extension HTTPServerBuilder {
    /// HTTP/1.1 as `.http1(configuration:)`, each connection handled on its event loop (`OnConnectionLoop`).
    public static func http1OnConnectionLoop(configuration: HTTP1Channel.Configuration = .init()) -> HTTPServerBuilder {
        .init { responder in
            OnConnectionLoop(HTTP1Channel(responder: responder, configuration: configuration))
        }
    }
}
