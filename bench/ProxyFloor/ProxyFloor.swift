import AsyncHTTPClient
import ConnectionLoops
import Hummingbird
import NIOCore
import NIOPosix
import UpstreamClient

/// The floor under Lumen's figures: the same server (Hummingbird) and upstream client as Lumen's,
/// configured as Lumen's, with nothing in between — no key, no JSON, no ledger. Each
/// `POST /v1/chat/completions` is read whole, sent upstream as it came, and the answer read
/// whole and returned. What Lumen adds on top of this line is what its own work costs.
///
/// As Lumen: each connection is handled on its event loop (`OnConnectionLoop`), one loop per CPU
/// the process may use (`EventLoopCount`). With `--client async-http-client`: the same proxy as
/// before Lumen had its own client — AsyncHTTPClient, handlers on Swift's cooperative pool, NIO's
/// default loop count — for comparison.
///
/// Usage: bench-proxy-floor <port> <upstream base URL> [--client lumen|async-http-client]   (loopback only)
@main
struct ProxyFloor {
    static func main() async throws {
        var arguments = Array(CommandLine.arguments.dropFirst())
        var client = "lumen"
        if let flag = arguments.firstIndex(of: "--client"), flag + 1 < arguments.count {
            client = arguments[flag + 1]
            arguments.removeSubrange(flag...(flag + 1))
        }
        guard arguments.count == 2, let port = Int(arguments[0]), ["lumen", "async-http-client"].contains(client) else {
            print("usage: bench-proxy-floor <port> <upstream base URL, e.g. http://127.0.0.1:9700/v1> [--client lumen|async-http-client]")
            return
        }
        let upstream = arguments[1] + "/chat/completions"
        if client == "lumen" { EventLoopCount.matchAvailableCPUs() }
        let router = Router(context: FloorContext.self)
        if client == "lumen" {
            let http = UpstreamClient()
            router.post("v1/chat/completions") { request, _ -> Response in
                let body = try await request.body.collect(upTo: 1 << 22)
                let answer = try await http.execute(
                    UpstreamHTTPRequest(url: upstream, method: .POST, headers: ["content-type": "application/json"], body: body),
                    headTimeout: .seconds(30))
                let bytes = try await answer.body.collect(upTo: 1 << 26)
                return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: bytes))
            }
            let app = Application(
                router: router, server: .http1OnConnectionLoop(), configuration: .init(address: .hostname("127.0.0.1", port: port)))
            try await app.runService()
            http.shutdown()
        } else {
            var configuration = HTTPClient.Configuration()
            configuration.timeout = .init(connect: .seconds(5), read: .seconds(300))
            configuration.connectionPool = .init(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: 512)
            configuration.decompression = .disabled
            configuration.redirectConfiguration = .disallow
            let http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
            router.post("v1/chat/completions") { request, _ -> Response in
                let body = try await request.body.collect(upTo: 1 << 22)
                var call = HTTPClientRequest(url: upstream)
                call.method = .POST
                call.headers.add(name: "content-type", value: "application/json")
                call.body = .bytes(body)
                let answer = try await http.execute(call, timeout: .seconds(30))
                let bytes = try await answer.body.collect(upTo: 1 << 26)
                return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: bytes))
            }
            let app = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: port)))
            try await app.runService()
            try await http.shutdown()
        }
    }
}

/// Hummingbird's basic context and the connection's event loop.
struct FloorContext: RequestContext {
    var coreContext: CoreRequestContextStorage
    let eventLoop: any EventLoop

    init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        eventLoop = source.channel.eventLoop
    }
}
