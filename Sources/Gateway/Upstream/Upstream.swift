import Foundation
import HTTPTypes
import Logging
import LumenAPI
import NIOCore
import NIOHTTP1
import ServiceLifecycle
import UpstreamClient
import WireFormats

/// One call to an upstream backend, as the gateway prepared it.
struct UpstreamRequest: Sendable {
    /// The OpenAI path below the backend's base URL, without a leading slash (`chat/completions`).
    var path: String
    /// The request body's bytes: the caller's, with the model already replaced by the
    /// backend's upstream name (JSON), or as received (multipart uploads).
    var body: ByteBuffer
    var contentType: String
    /// Whether an SSE stream is asked for.
    var stream: Bool
    /// The caller's own upstream credential (`X-Upstream-Authorization`), for BYOK.
    var callerCredential: String?
}

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
/// upstream host and event loop. A lifecycle service so that it is shut down with the gateway.
public final class UpstreamHTTP: Service, Sendable {
    let client: UpstreamClient

    public init() {
        // Connecting is bounded by the client (5 s); the time to the response head by each
        // backend's timeout; a stream may pause between tokens for up to the read timeout.
        var configuration = UpstreamClient.Configuration()
        configuration.connectTimeout = .seconds(5)
        configuration.readTimeout = .seconds(300)
        configuration.idleTimeout = .seconds(60)
        self.client = UpstreamClient(configuration: configuration)
    }

    public func run() async throws {
        try? await gracefulShutdown()
        client.shutdown()
    }

    /// Calls an OpenAI-compatible backend: `POST {base_url}/{path}` with the backend's
    /// credential (from its environment variable) or the caller's own.
    func call(_ request: UpstreamRequest, backend: Lumen_Registry_V1_Backend) async throws -> UpstreamResponse {
        var base = backend.baseURL
        while base.hasSuffix("/") { base.removeLast() }
        var headers = HTTPHeaders()
        headers.add(name: "content-type", value: request.contentType)
        let body = request.body
        if request.stream { headers.add(name: "accept", value: "text/event-stream") }
        if let credential = request.callerCredential ?? Self.credential(backend.credentialEnv) {
            headers.add(name: "authorization", value: "Bearer " + credential)
        }
        let timeout = TimeAmount.milliseconds(Int64(backend.timeoutMs > 0 ? backend.timeoutMs : 60_000))
        let response = try await client.execute(
            UpstreamHTTPRequest(url: base + "/" + request.path, method: .POST, headers: headers, body: body), headTimeout: timeout)
        let status = HTTPResponse.Status(code: Int(response.status.code), reasonPhrase: response.status.reasonPhrase)
        let contentType = response.headers.first(name: "content-type")
        return UpstreamResponse(status: status, contentType: contentType, body: .streamed(response.body))
    }

    /// `GET {base_url}/models` with the backend's credential; the status code of the answer.
    func probe(_ backend: Lumen_Registry_V1_Backend, timeout: TimeAmount) async throws -> Int {
        var base = backend.baseURL
        while base.hasSuffix("/") { base.removeLast() }
        var headers = HTTPHeaders()
        if let credential = Self.credential(backend.credentialEnv) {
            headers.add(name: "authorization", value: "Bearer " + credential)
        }
        let response = try await client.execute(UpstreamHTTPRequest(url: base + "/models", headers: headers), headTimeout: timeout)
        _ = try? await response.body.collect(upTo: 1 << 20)
        return Int(response.status.code)
    }

    /// The secret in the environment variable `name`, if it is set and not empty.
    static func credential(_ name: String) -> String? {
        guard !name.isEmpty, let value = getenv(name) else { return nil }
        let secret = String(cString: value)
        return secret.isEmpty ? nil : secret
    }
}
