import AsyncHTTPClient
import Hummingbird
import NIOCore

/// The floor under Lumen's figures: the same server (Hummingbird) and client (AsyncHTTPClient,
/// configured as Lumen's) with nothing in between — no key, no JSON, no ledger. Each
/// `POST /v1/chat/completions` is read whole, sent upstream as it came, and the answer read
/// whole and returned. What Lumen adds on top of this line is what its own work costs.
///
/// Usage: bench-proxy-floor <port> <upstream base URL>   (loopback only)
@main
struct ProxyFloor {
    static func main() async throws {
        let arguments = CommandLine.arguments.dropFirst()
        guard arguments.count == 2, let port = Int(arguments.first!) else {
            print("usage: bench-proxy-floor <port> <upstream base URL, e.g. http://127.0.0.1:9700/v1>")
            return
        }
        let upstream = arguments.last! + "/chat/completions"
        var configuration = HTTPClient.Configuration()
        configuration.timeout = .init(connect: .seconds(5), read: .seconds(300))
        configuration.connectionPool = .init(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: 512)
        configuration.decompression = .disabled
        configuration.redirectConfiguration = .disallow
        let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
        let router = Router()
        router.post("v1/chat/completions") { request, _ -> Response in
            let body = try await request.body.collect(upTo: 1 << 22)
            var call = HTTPClientRequest(url: upstream)
            call.method = .POST
            call.headers.add(name: "content-type", value: "application/json")
            call.body = .bytes(body)
            let answer = try await client.execute(call, timeout: .seconds(30))
            let bytes = try await answer.body.collect(upTo: 1 << 26)
            return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: bytes))
        }
        let app = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: port)))
        try await app.runService()
        try await client.shutdown()
    }
}
