import Foundation
import HTTPTypes
import Logging
import LumenAPI
import NIOCore
import NIOHTTP1
import RPCSupport
import ServiceLifecycle
import Tracing
import UpstreamClient
import WireFormats

/// An upstream's answer: its status, content type and body, buffered or streamed.
struct UpstreamResponse: Sendable {
    var status: HTTPResponse.Status
    var contentType: String?
    var body: Body

    enum Body: Sendable {
        /// The whole body.
        case buffered(ByteBuffer)
        /// Chunks as the upstream sends them.
        case streamed(UpstreamHTTPBody)
        /// Chunks produced in-process (the mock provider).
        case chunks([ByteBuffer])
    }

    /// Reads the body to the end (at most `limit` bytes).
    func collect(upTo limit: Int) async throws -> ByteBuffer {
        switch body {
        case .buffered(let buffer): return buffer
        case .streamed(let stream): return try await stream.collect(upTo: limit)
        case .chunks(let chunks):
            var all = ByteBuffer()
            for var chunk in chunks { all.writeBuffer(&chunk) }
            return all
        }
    }

    /// Ends a streamed body now (the connection is closed); the reader sees its end. Bodies
    /// already in memory end by themselves.
    func abort() {
        if case .streamed(let stream) = body { stream.abort() }
    }

    /// Hands each chunk of the body to `body`, in order.
    func forEachChunk(_ body: (ByteBuffer) async throws -> Void) async throws {
        switch self.body {
        case .buffered(let buffer): try await body(buffer)
        case .streamed(let stream): for try await chunk in stream { try await body(chunk) }
        case .chunks(let chunks): for chunk in chunks { try await body(chunk) }
        }
    }
}

/// The shared HTTP client for upstream calls (`UpstreamClient`): keep-alive connections per
/// upstream host and event loop; the providers (`UpstreamProvider`) say what goes over it. A lifecycle service so that it is shut down with the gateway.
public final class UpstreamHTTP: Service, Sendable {
    let client: UpstreamClient

    /// `connectionsPerHost`: the most connections open to one upstream host at once (as many
    /// calls again may wait for one; beyond, a call is refused as `saturated`); nil: no cap.
    public init(connectionsPerHost: Int? = nil) {
        // Connecting is bounded by the client (5 s); the time to the response head by each
        // backend's timeout; a stream may pause between tokens for up to the read timeout.
        var configuration = UpstreamClient.Configuration()
        configuration.connectTimeout = .seconds(5)
        configuration.readTimeout = .seconds(300)
        configuration.idleTimeout = .seconds(60)
        configuration.maximumConnectionsPerHost = connectionsPerHost
        if let connectionsPerHost { configuration.maximumWaitingPerHost = connectionsPerHost }
        self.client = UpstreamClient(configuration: configuration)
    }

    public func run() async throws {
        try? await gracefulShutdown()
        client.shutdown()
    }

    /// `POST url` with `headers` and `body`; the answer's head within `timeout`, its body streamed.
    /// Within a traced call, the call's span goes with it (`traceparent`), whatever the provider.
    func post(_ url: String, headers: HTTPHeaders, body: ByteBuffer, timeout: TimeAmount) async throws -> UpstreamResponse {
        var headers = headers
        if Traces.isOn, let context = InstrumentationContext.current {
            InstrumentationSystem.instrument.inject(context, into: &headers, using: HTTPHeadersCarrier())
        }
        let response = try await client.execute(
            UpstreamHTTPRequest(url: url, method: .POST, headers: headers, body: body), headTimeout: timeout)
        let status = HTTPResponse.Status(code: Int(response.status.code), reasonPhrase: response.status.reasonPhrase)
        return UpstreamResponse(status: status, contentType: response.headers.first(name: "content-type"), body: .streamed(response.body))
    }

    /// `GET url` with `headers`: the answer's status code (its body read and dropped).
    func get(_ url: String, headers: HTTPHeaders, timeout: TimeAmount) async throws -> Int {
        let response = try await client.execute(UpstreamHTTPRequest(url: url, headers: headers), headTimeout: timeout)
        _ = try? await response.body.collect(upTo: 1 << 20)
        return Int(response.status.code)
    }

    /// `path` below a backend's base URL (trailing slashes of the base ignored).
    static func url(_ base: String, _ path: String) -> String {
        var base = base
        while base.hasSuffix("/") { base.removeLast() }
        return base + "/" + path
    }

    /// How long a backend may take to start answering: its `timeout_ms`, 60 s by default.
    static func timeout(of backend: Lumen_Registry_V1_Backend) -> TimeAmount {
        .milliseconds(Int64(backend.timeoutMs > 0 ? backend.timeoutMs : 60_000))
    }

    /// The secret in the environment variable `name`, if it is set and not empty.
    static func credential(_ name: String) -> String? {
        guard !name.isEmpty, let value = getenv(name) else { return nil }
        let secret = String(cString: value)
        return secret.isEmpty ? nil : secret
    }
}
