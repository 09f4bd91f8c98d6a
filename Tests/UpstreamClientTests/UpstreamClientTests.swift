import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import Synchronization
import Testing

@testable import UpstreamClient

@Suite("The upstream HTTP client")
struct UpstreamClientTests {
    /// Runs `body` with a client and a test upstream, and stops both.
    func withUpstream(
        tls: Bool = false, configure: (inout UpstreamClient.Configuration) throws -> Void = { _ in },
        _ body: (UpstreamClient, TestUpstream, String) async throws -> Void
    ) async throws {
        var serverTLS: NIOSSLContext? = nil
        if tls {
            let configuration = TLSConfiguration.makeServerConfiguration(
                certificateChain: [.certificate(try NIOSSLCertificate(bytes: Array(TestCertificates.server.utf8), format: .pem))],
                privateKey: .privateKey(try NIOSSLPrivateKey(bytes: Array(TestCertificates.serverKey.utf8), format: .pem)))
            serverTLS = try NIOSSLContext(configuration: configuration)
        }
        let upstream = try await TestUpstream(tls: serverTLS)
        var configuration = UpstreamClient.Configuration()
        try configure(&configuration)
        let client = UpstreamClient(configuration: configuration)
        do {
            try await body(client, upstream, tls ? "https://localhost:\(upstream.port)" : "http://127.0.0.1:\(upstream.port)")
        } catch {
            client.shutdown()
            try await upstream.stop()
            throw error
        }
        client.shutdown()
        try await upstream.stop()
    }

    func post(_ client: UpstreamClient, _ url: String, _ body: String = "{}", timeout: TimeAmount = .seconds(5)) async throws -> (HTTPResponseStatus, HTTPHeaders, String) {
        let response = try await client.execute(
            UpstreamHTTPRequest(url: url, method: .POST, headers: ["content-type": "application/json"], body: ByteBuffer(string: body)),
            headTimeout: timeout)
        let bytes = try await response.body.collect(upTo: 1 << 26)
        return (response.status, response.headers, String(buffer: bytes))
    }

    /// Waits until `condition` holds (at most 5 s).
    func eventually(_ condition: () -> Bool) async throws -> Bool {
        for _ in 0..<500 {
            if condition() { return true }
            try await Task.sleep(for: .milliseconds(10))
        }
        return condition()
    }

    @Test("sends the body with its length and the host, and keeps one connection for calls one after another")
    func keepAlive() async throws {
        try await withUpstream { client, upstream, base in
            for n in 0..<20 {
                let (status, headers, body) = try await post(client, base + "/echo", #"{"n":\#(n)}"#)
                #expect(status == .ok)
                #expect(body == #"{"n":\#(n)}"#)
                #expect(headers.first(name: "x-host") == "127.0.0.1:\(upstream.port)")
                #expect(headers.first(name: "x-content-length") == "\(body.utf8.count)")
            }
            #expect(upstream.connections == 1)
        }
    }

    @Test("calls at the same time get connections of their own, kept for the next calls")
    func concurrentCalls() async throws {
        try await withUpstream { client, upstream, base in
            for _ in 0..<3 {
                try await withThrowingTaskGroup(of: String.self) { group in
                    for n in 0..<16 { group.addTask { try await post(client, base + "/echo", "\(n)").2 } }
                    var answers = Set<String>()
                    for try await answer in group { answers.insert(answer) }
                    #expect(answers == Set((0..<16).map(String.init)))
                }
            }
            #expect(upstream.connections <= 16 * 2)  // the later rounds reuse the first round's
            #expect(upstream.requests == 48)
        }
    }

    @Test("with a cap, a burst takes the capped connections in turn, each handed on as an answer ends")
    func connectionCap() async throws {
        try await withUpstream(configure: {
            $0.maximumConnectionsPerHost = 2
            $0.maximumWaitingPerHost = 6
        }) { client, upstream, base in
            // Eight calls at once, each answered after 150 ms: two connections, the others wait their turn.
            let started = ContinuousClock.now
            try await withThrowingTaskGroup(of: String.self) { group in
                for _ in 0..<8 { group.addTask { try await post(client, base + "/slow?ms=150").2 } }
                for try await answer in group { #expect(answer == "ok") }
            }
            #expect(upstream.connections == 2)
            #expect(ContinuousClock.now - started >= .milliseconds(600))  // four rounds of two
            #expect(client.waiting(for: base) == 0)
        }
    }

    @Test("with a cap, calls wait in a bounded queue: one more is refused at once, one past its deadline then")
    func connectionQueue() async throws {
        try await withUpstream(configure: {
            $0.maximumConnectionsPerHost = 2
            $0.maximumWaitingPerHost = 2
        }) { client, upstream, base in
            // Two calls the upstream never answers hold both connections; two more wait.
            let holding = (0..<2).map { _ in Task { try await post(client, base + "/silent", timeout: .seconds(60)) } }
            let holdingBoth = try await eventually { upstream.openConnections == 2 }
            #expect(holdingBoth)
            let waiting = (0..<2).map { n in Task { try await post(client, base + "/echo", "\(n)", timeout: .seconds(60)).2 } }
            let queued = try await eventually { client.waiting(for: base) == 2 }
            #expect(queued)
            // The queue is full: the next call is refused at once.
            await #expect(throws: UpstreamClientError.saturated) { try await post(client, base + "/echo", timeout: .seconds(60)) }
            // The holding calls end (their connections close): their places go to the waiting calls.
            for task in holding { task.cancel() }
            let (first, second) = (try await waiting[0].value, try await waiting[1].value)
            #expect(Set([first, second]) == ["0", "1"])
            // (one new connection each, or the second handed the first's once it answered)
            #expect((3...4).contains(upstream.connections) && client.waiting(for: base) == 0)
            // A call that would wait past its own deadline is refused then.
            let more = (0..<2).map { _ in Task { try await post(client, base + "/silent", timeout: .seconds(60)) } }
            let heldAgain = try await eventually { upstream.requests == 6 }
            #expect(heldAgain)
            await #expect(throws: UpstreamClientError.saturated) { try await post(client, base + "/echo", timeout: .milliseconds(100)) }
            #expect(client.waiting(for: base) == 0)
            for task in more { task.cancel() }
        }
    }

    @Test("with a cap, a burst at once against a busy connection queues no more calls than the bound")
    func connectionQueueBurst() async throws {
        try await withUpstream(configure: {
            $0.maximumConnectionsPerHost = 1
            $0.maximumWaitingPerHost = 1
        }) { client, upstream, base in
            let holding = Task { try await post(client, base + "/silent", timeout: .seconds(60)) }
            let held = try await eventually { upstream.openConnections == 1 }
            #expect(held)
            // Twenty calls at once, told to wait at the same moment: one is queued (the bound), every
            // other refused.
            final class Count: Sendable { let value = Mutex(0) }
            let count = Count()
            let calls = (0..<20).map { n in
                Task {
                    do {
                        return try await post(client, base + "/echo", "\(n)", timeout: .seconds(60)).2
                    } catch UpstreamClientError.saturated {
                        count.value.withLock { $0 += 1 }
                        return "refused"
                    }
                }
            }
            let settled = try await eventually { count.value.withLock { $0 } == 19 }
            #expect(settled, "refused: \(count.value.withLock { $0 }), waiting: \(client.waiting(for: base))")
            #expect(client.waiting(for: base) == 1)
            // The holding call ends: its place goes to the one waiting.
            holding.cancel()
            var answered = 0
            for call in calls where try await call.value != "refused" { answered += 1 }
            #expect(answered == 1 && count.value.withLock { $0 } == 19)
        }
    }

    @Test("with a cap, a closed connection's place goes to the next waiting call")
    func connectionCapAfterClose() async throws {
        try await withUpstream(configure: { $0.maximumConnectionsPerHost = 1 }) { client, upstream, base in
            try await withThrowingTaskGroup(of: String.self) { group in
                for _ in 0..<4 { group.addTask { try await post(client, base + "/close").2 } }
                for try await answer in group { #expect(answer == "ok") }
            }
            #expect(upstream.connections == 4)  // one at a time, each closed by the upstream
            let closed = try await eventually { upstream.openConnections == 0 }
            #expect(closed)
        }
    }

    @Test("a large answer arrives whole, and a larger one than asked is refused")
    func largeBodies() async throws {
        try await withUpstream { client, _, base in
            let size = 8 << 20
            let response = try await client.execute(UpstreamHTTPRequest(url: base + "/big?n=\(size)"), headTimeout: .seconds(5))
            let body = try await response.body.collect(upTo: size)
            #expect(body.readableBytes == size)
            let again = try await client.execute(UpstreamHTTPRequest(url: base + "/big?n=\(size)"), headTimeout: .seconds(5))
            await #expect(throws: UpstreamClientError.bodyTooLarge(limit: 1 << 20)) { try await again.body.collect(upTo: 1 << 20) }
            // A large request body goes out whole too.
            let sent = String(repeating: "y", count: 4 << 20)
            let answer1 = try await post(client, base + "/echo", sent)
            #expect(answer1.2 == sent)
        }
    }

    @Test("an upstream that does not answer in time is a head timeout, and its connection is not reused")
    func headTimeout() async throws {
        // Every other way the call could end takes a minute: it ends with `headTimeout` at the
        // call's own 200 ms deadline, or the bound below catches it. (No tight bound on time:
        // with every suite running at once on two cores, event loops wait seconds for a core.)
        try await withUpstream(configure: { $0.connectTimeout = .seconds(60); $0.readTimeout = .seconds(60) }) { client, upstream, base in
            let started = ContinuousClock.now
            await #expect(throws: UpstreamClientError.headTimeout) {
                try await post(client, base + "/silent", timeout: .milliseconds(200))
            }
            #expect(ContinuousClock.now - started < .seconds(30))
            let closed = try await eventually { upstream.openConnections == 0 }
            #expect(closed)
            let answer2 = try await post(client, base + "/echo", "after")
            #expect(answer2.2 == "after")
            #expect(upstream.connections == 2)
        }
    }

    @Test("an answer that stalls past the read timeout fails its body")
    func readTimeout() async throws {
        try await withUpstream(configure: { $0.readTimeout = .milliseconds(300) }) { client, _, base in
            let response = try await client.execute(UpstreamHTTPRequest(url: base + "/stall"), headTimeout: .seconds(5))
            var iterator = response.body.makeAsyncIterator()
            let first = try await iterator.next().map { String(buffer: $0) }
            #expect(first == "first")
            await #expect(throws: UpstreamClientError.readTimeout) { _ = try await iterator.next() }
        }
    }

    @Test("the read timeout bounds a pause inside an answer, not the wait for its head (the call's own deadline does)")
    func readTimeoutIsNotHeadTimeout() async throws {
        try await withUpstream(configure: { $0.readTimeout = .milliseconds(100) }) { client, upstream, base in
            let started = ContinuousClock.now
            await #expect(throws: UpstreamClientError.headTimeout) {
                try await post(client, base + "/silent", timeout: .milliseconds(400))
            }
            #expect(ContinuousClock.now - started >= .milliseconds(400))
            let answer = try await post(client, base + "/echo", "fine")
            #expect(answer.2 == "fine")
        }
    }

    @Test("dropping a body before its end closes the connection; the next call opens another")
    func droppedBody() async throws {
        try await withUpstream { client, upstream, base in
            do {
                let response = try await client.execute(UpstreamHTTPRequest(url: base + "/drip"), headTimeout: .seconds(5))
                var chunks = 0
                for try await _ in response.body {
                    chunks += 1
                    if chunks == 3 { break }
                }
            }
            let closed = try await eventually { upstream.openConnections == 0 }
            #expect(closed)
            let answer3 = try await post(client, base + "/echo", "next")
            #expect(answer3.2 == "next")
            #expect(upstream.connections == 2)
        }
    }

    @Test("cancelling the calling task closes the connection at once")
    func cancellation() async throws {
        try await withUpstream { client, upstream, base in
            let call = Task { try await post(client, base + "/silent", timeout: .seconds(30)) }
            let asked = try await eventually { upstream.requests == 1 }
            #expect(asked)
            call.cancel()
            // Not the call's own deadline (30 s): the cancellation ended it.
            let error = await #expect(throws: (any Error).self) { try await call.value }
            #expect(error as? UpstreamClientError != .headTimeout)
            let closed = try await eventually { upstream.openConnections == 0 }
            #expect(closed)
        }
    }

    @Test("an answer with connection: close is not reused")
    func connectionClose() async throws {
        try await withUpstream { client, upstream, base in
            let answer4 = try await post(client, base + "/close")
            #expect(answer4.2 == "ok")
            let answer5 = try await post(client, base + "/close")
            #expect(answer5.2 == "ok")
            #expect(upstream.connections == 2)
        }
    }

    @Test("a kept connection the upstream closes as the next request arrives: the request goes once more, on a new connection")
    func keepAliveRace() async throws {
        try await withUpstream { client, upstream, base in
            let answer6 = try await post(client, base + "/doom")
            #expect(answer6.2 == "ok")
            let answer7 = try await post(client, base + "/echo", "retried")
            #expect(answer7.2 == "retried")
            #expect(upstream.connections == 2)
        }
    }

    @Test("a header that would break the request's framing is refused before anything is sent")
    func headerInjection() async throws {
        try await withUpstream { client, upstream, base in
            for (name, value) in [("authorization", "Bearer sk\r\nX-Injected: 1"), ("x-a\nb", "1"), ("x a", "1"), ("", "1")] {
                await #expect(throws: UpstreamClientError.invalidHeader(name)) {
                    try await client.execute(
                        UpstreamHTTPRequest(url: base + "/echo", method: .POST, headers: [name: value], body: ByteBuffer(string: "{}")),
                        headTimeout: .seconds(5))
                }
            }
            #expect(upstream.connections == 0)
        }
    }

    @Test("a refused connection fails at once, as refused")
    func refused() async throws {
        // With a minute to connect and to answer, a call that waited for either would end in a
        // timeout; a refusal ends it with the system's own error instead.
        var configuration = UpstreamClient.Configuration()
        configuration.connectTimeout = .seconds(60)
        let client = UpstreamClient(configuration: configuration)
        defer { client.shutdown() }
        // A port just bound and closed again: nothing listens there.
        let probe = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton).bind(host: "127.0.0.1", port: 0).get()
        let port = probe.localAddress!.port!
        try await probe.close()
        let error = await #expect(throws: (any Error).self) {
            try await post(client, "http://127.0.0.1:\(port)/echo", timeout: .seconds(60))
        }
        #expect(error != nil && !(error is UpstreamClientError), "\(String(describing: error))")
        #expect("\(String(describing: error))".contains("refused"))
    }

    @Test("https with a trusted authority: answered; with an unknown one: refused before anything is sent")
    func tls() async throws {
        let authority = try NIOSSLCertificate(bytes: Array(TestCertificates.authority.utf8), format: .pem)
        // Handshakes in a debug build on a machine busy with every other suite take seconds:
        // this test is about trust, not speed.
        let patient = TimeAmount.seconds(60)
        try await withUpstream(tls: true, configure: {
            $0.additionalTrustRoots = [authority]
            $0.connectTimeout = patient
        }) { client, upstream, base in
            let (status, headers, body) = try await post(client, base + "/echo", "secret", timeout: patient)
            #expect(status == .ok && body == "secret")
            #expect(headers.first(name: "x-host") == "localhost:\(upstream.port)")
            let answer8 = try await post(client, base + "/echo", "again", timeout: patient)
            #expect(answer8.2 == "again")
            #expect(upstream.connections == 1)
        }
        try await withUpstream(tls: true) { client, upstream, base in
            await #expect(throws: NIOSSLError.self) { try await post(client, base + "/echo", "secret") }
            #expect(upstream.requests == 0)
        }
    }

    @Test("URLs: ports, IPv6 literals, paths and queries; anything but http(s) refused")
    func urls() throws {
        let plain = try Endpoint("http://example.com/v1/chat/completions?x=1")
        #expect(plain.origin == .init(secure: false, host: "example.com", port: 80, isAddress: false))
        #expect(plain.target == "/v1/chat/completions?x=1" && plain.hostHeader == "example.com")
        let secure = try Endpoint("https://api.example.com:8443")
        #expect(secure.origin.port == 8443 && secure.origin.secure && secure.target == "/" && secure.hostHeader == "api.example.com:8443")
        let v6 = try Endpoint("http://[::1]:9000/v1/models")
        #expect(v6.origin.host == "::1" && v6.origin.isAddress && v6.hostHeader == "[::1]:9000" && v6.target == "/v1/models")
        #expect(try Endpoint("https://api.example.com:443/x").hostHeader == "api.example.com")
        for bad in [
            "ftp://example.com", "example.com/v1", "http://", "http://user@example.com/", "http://example.com:99999/",
            "http://example.com:x/", "http://example.com/v1 HTTP/1.1\r\nX-Injected: 1", "http://example.com/a b",
        ] {
            #expect(throws: UpstreamClientError.invalidURL(bad)) { try Endpoint(bad) }
        }
    }
}
