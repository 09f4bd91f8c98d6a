import ArgumentParser
import AsyncHTTPClient
import Foundation
import Ledger
import bench_synthetic
import Logging
import LumenAPI
import LumenServer
import NIOCore
import NIOFoundationCompat
import NIOHTTP1
import SharedRules
import Storage

/// The dashboard's pages at scale: a person and a client with a million usage lines each, their
/// pages timed over HTTP against `lumen serve` in this process.
@main
struct PageBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench-pages",
        abstract: "Time the dashboard's pages for a person and a client with many usage lines and keys.",
        discussion: """
            Starts `lumen serve --demo` (this process, loopback, free ports) on an empty data \
            directory, signs in as the demo administrator, creates a client they manage and --keys \
            keys each for them and the client, stops, seeds --lines usage lines for the person's \
            keys and as many for the client's (rollups and totals as settling writes them), starts \
            again and prints p50/p99 of GET of every page (/profile, /clients, /clients/{id}, \
            /models/lumen-demo, /users, /chat) and of /api/me/profile, /api/me/keys, \
            /api/me/models, /api/clients/{id} and /api/clients/{id}/keys over one keep-alive \
            connection.
            """)

    @Option(help: "Usage lines for the person, and as many for the client.")
    var lines = 1_000_000

    @Option(help: "Directory of the benchmark's data (default: a new one in the temporary directory, removed afterwards).")
    var dataDir: String?

    @Option(help: "API keys for the person, and as many for the client.")
    var keys = 5

    @Option(help: "Timed requests of each page.")
    var iterations = 500

    @Option(help: "Time only this page (a path as printed, {id} for the client's); repeat for more.")
    var only: [String] = []

    /// What the set-up made, kept beside the data to reuse it.
    struct Seeded: Codable {
        var email: String
        var password: String
        var clientID: String
        var lines: Int
        var keys: Int
    }

    func validate() throws {
        guard lines >= 1, keys >= 1, iterations >= 1 else { throw ValidationError("--lines, --keys and --iterations are at least 1") }
    }

    func run() async throws {
        let directory = dataDir ?? (NSTemporaryDirectory() as NSString).appendingPathComponent("lumen-bench-pages-\(UUID())")
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { if dataDir == nil { try? FileManager.default.removeItem(atPath: directory) } }
        let marker = (directory as NSString).appendingPathComponent("bench-pages.json")
        let http = HTTPClient.shared

        let seeded: Seeded
        if let data = FileManager.default.contents(atPath: marker), let previous = try? JSONDecoder().decode(Seeded.self, from: data),
            previous.lines == lines, previous.keys == keys
        {
            seeded = previous
            print("reusing \(directory) (\(lines.formatted()) lines and \(keys.formatted()) keys each)")
        } else {
            seeded = try await setUp(directory: directory, http: http)
            try JSONEncoder().encode(seeded).write(to: URL(fileURLWithPath: marker))
        }

        let server = try await Server.start(directory: directory, demo: false)
        do {
            let session = try await Session.signIn(http: http, port: server.port, email: seeded.email, password: seeded.password)
            let pages = [
                "/profile", "/profile?sort=requests&order=desc", "/profile?query=9&page=3", "/clients",
                "/clients/\(seeded.clientID)", "/clients/\(seeded.clientID)?sort=cost&order=desc", "/models/lumen-demo", "/users", "/chat",
                "/api/me/profile", "/api/me/keys", "/api/me/models", "/api/clients/\(seeded.clientID)",
                "/api/clients/\(seeded.clientID)/keys",
            ]
            print("")
            print(
                "\(lines.formatted()) usage lines and \(keys.formatted()) keys for the person, as many for the client; \(iterations) timed GETs each, one connection"
            )
            let chosen = only.isEmpty ? pages : only.map { $0.replacingOccurrences(of: "{id}", with: seeded.clientID) }
            for page in chosen {
                for _ in 0..<10 { _ = try await session.get(page) }
                var durations: [Duration] = []
                let cpuBefore = Self.cpuSeconds()
                for _ in 0..<iterations {
                    let started = ContinuousClock.now
                    _ = try await session.get(page)
                    durations.append(ContinuousClock.now - started)
                }
                let cpu = (Self.cpuSeconds() - cpuBefore) / Double(iterations) * 1e3
                durations.sort()
                let p50 = durations[durations.count / 2]
                let p99 = durations[min(durations.count - 1, Int((Double(durations.count) * 0.99).rounded(.up)) - 1)]
                let name = page.replacingOccurrences(of: seeded.clientID, with: "{id}")
                print("  GET \(name.padding(toLength: 36, withPad: " ", startingAt: 0)) p50 \(Self.millis(p50)) ms   p99 \(Self.millis(p99)) ms   CPU \(String(format: "%.2f", cpu)) ms")
            }
            // The figures are the lines': the person's requests, and the client's keys' requests.
            let profile = try session.object(try await session.get("/api/me/profile"))
            let requests: Int = try Session.field(profile["requests"], "requests")
            let clientKeys = try session.object(try await session.get("/api/clients/\(seeded.clientID)/keys"))
            let rows: [[String: Any]] = try Session.field(clientKeys["data"], "data")
            let clientRequests = try rows.reduce(0) { $0 + (try Session.field($1["requests"], "requests") as Int) }
            guard requests == lines, clientRequests == lines else {
                throw ValidationError("the pages count \(requests) and \(clientRequests) requests, not \(lines) each")
            }
            print("")
            print("the profile counts \(requests.formatted()) requests, the client's keys \(clientRequests.formatted()): the lines seeded")
        } catch {
            await server.stop()
            throw error
        }
        await server.stop()
    }

    /// The demo organisation, a client its administrator manages, `keys` keys each; then the lines.
    func setUp(directory: String, http: HTTPClient) async throws -> Seeded {
        let server = try await Server.start(directory: directory, demo: true)
        let made: (Seeded, userID: String, organizationID: String, personal: [String], client: [String])
        do {
            struct Demo: Decodable {
                var email: String
                var password: String
            }
            let demoPath = (directory as NSString).appendingPathComponent("demo.json")
            let demo = try JSONDecoder().decode(Demo.self, from: try Data(contentsOf: URL(fileURLWithPath: demoPath)))
            let session = try await Session.signIn(http: http, port: server.port, email: demo.email, password: demo.password)
            let me = try session.object(try await session.get("/api/me"))
            let user: [String: Any] = try Session.field(me["user"], "user")
            let userID: String = try Session.field(user["id"], "user.id")
            let organizationID: String = try Session.field(user["organization_id"], "user.organization_id")
            let client = try session.object(try await session.send(.POST, "/api/clients", ["name": "Bench client"]))
            let clientID: String = try Session.field(client["id"], "id")
            _ = try await session.send(.POST, "/api/clients/\(clientID)/managers/\(userID)", nil)
            var personal: [String] = []
            var owned: [String] = []
            for index in 1...keys {
                let mine = try session.object(try await session.send(.POST, "/api/me/keys", ["name": "personal \(index)"]))
                personal.append(try Session.field(mine["id"], "id"))
                let theirs = try session.object(
                    try await session.send(.POST, "/api/clients/\(clientID)/keys", ["name": "client \(index)"]))
                owned.append(try Session.field(theirs["id"], "id"))
            }
            made = (
                Seeded(email: demo.email, password: demo.password, clientID: clientID, lines: lines, keys: keys), userID,
                organizationID,
                personal, owned
            )
        } catch {
            await server.stop()
            throw error
        }
        await server.stop()

        let end = (Int64(Date().timeIntervalSince1970) / 3_600) * 3_600_000 - 1
        let started = ContinuousClock.now
        for (owner, keys, prefix, web) in [
            (Lumen_Common_V1_PrincipalRef.with { $0.type = .user; $0.id = made.userID }, made.personal, "req_u", 10),
            (.with { $0.type = .client; $0.id = made.0.clientID }, made.client, "req_c", 0),
        ] {
            var plan = SyntheticUsage.Plan(end: end)
            plan.organizationID = made.organizationID
            plan.lines = lines
            plan.keys = keys.map { SyntheticUsage.Key(id: $0, owner: owner) }
            plan.webPercent = web
            plan.requestPrefix = prefix
            try SyntheticUsage.load(plan, at: .directory(directory)) { written in
                if written % 500_000 == 0 || written == lines {
                    print("seeded \(written.formatted()) lines of \(owner.id) (\(Self.seconds(ContinuousClock.now - started)) s)")
                }
            }
        }
        return made.0
    }

    /// User and system CPU time of this process (the server and the benchmark's client).
    static func cpuSeconds() -> Double {
        var usage = rusage()
        getrusage(Int32(RUSAGE_SELF.rawValue), &usage)
        return Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6
    }

    static func millis(_ duration: Duration) -> String {
        String(format: "%.2f", Double(duration.components.seconds) * 1e3 + Double(duration.components.attoseconds) / 1e15)
    }

    static func seconds(_ duration: Duration) -> String {
        String(format: "%.1f", Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18)
    }
}

/// `lumen serve` in this process on loopback with free ports, until `stop`.
struct Server {
    let task: Task<Void, any Error>
    let port: Int

    static func start(directory: String, demo: Bool) async throws -> Server {
        var configuration = ServeConfiguration()
        configuration.dataDirectory = directory
        configuration.httpPort = 0
        configuration.grpcPort = 0
        configuration.metricsPort = 0
        configuration.demo = demo
        configuration.shutdownGraceSeconds = 1
        var logger = Logger(label: "bench-pages")
        // Stopping by cancellation makes the HTTP server log its cancelled channels as errors.
        logger.logLevel = .critical
        let (ports, continuation) = AsyncStream.makeStream(of: Int.self)
        let deployment = Deployment(
            configuration: configuration, internalToken: "it-bench-" + Identifier.secret(count: 32), logger: logger
        ) { listener in
            if case .http(_, let port) = listener { continuation.yield(port) }
        }
        let task = Task {
            defer { continuation.finish() }
            try await deployment.run()
        }
        for await port in ports { return Server(task: task, port: port) }
        try await task.value
        throw ValidationError("lumen serve stopped before it listened")
    }

    func stop() async {
        task.cancel()
        _ = try? await task.value
    }
}

/// A signed-in person's requests: the session cookie, and the CSRF token on changes.
struct Session {
    let http: HTTPClient
    let base: String
    let cookie: String
    let csrf: String

    static func signIn(http: HTTPClient, port: Int, email: String, password: String) async throws -> Session {
        let base = "http://127.0.0.1:\(port)"
        var request = HTTPClientRequest(url: base + "/api/session")
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        request.body = .bytes(ByteBuffer(data: try JSONSerialization.data(withJSONObject: ["email": email, "password": password])))
        let response = try await http.execute(request, timeout: .seconds(30))
        let body = try await response.body.collect(upTo: 1 << 20)
        guard response.status == .ok,
            let cookie = response.headers["Set-Cookie"].first?.split(separator: ";").first.map(String.init),
            let object = try JSONSerialization.jsonObject(with: Data(buffer: body)) as? [String: Any],
            let csrf = object["csrf_token"] as? String
        else {
            throw ValidationError("sign-in failed: \(response.status) \(String(buffer: body))")
        }
        return Session(http: http, base: base, cookie: cookie, csrf: csrf)
    }

    func get(_ path: String) async throws -> Data {
        try await send(.GET, path, nil)
    }

    func send(_ method: HTTPMethod, _ path: String, _ body: [String: Any]?) async throws -> Data {
        var request = HTTPClientRequest(url: base + path)
        request.method = method
        request.headers.add(name: "Cookie", value: cookie)
        if method != .GET { request.headers.add(name: "X-CSRF-Token", value: csrf) }
        if let body {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(data: try JSONSerialization.data(withJSONObject: body)))
        }
        let response = try await http.execute(request, timeout: .seconds(30))
        let data = Data(buffer: try await response.body.collect(upTo: 16 << 20))
        guard (200..<300).contains(response.status.code) else {
            throw ValidationError("\(method) \(path): \(response.status) \(String(decoding: data, as: UTF8.self))")
        }
        return data
    }

    func object(_ data: Data) throws -> [String: Any] {
        guard let object = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw ValidationError("expected a JSON object: \(String(decoding: data, as: UTF8.self))")
        }
        return object
    }

    static func field<T>(_ value: Any?, _ name: String) throws -> T {
        guard let value = value as? T else { throw ValidationError("the answer has no \(name)") }
        return value
    }
}
