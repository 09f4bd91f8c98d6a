import Foundation
import Gateway
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import LumenAPI
import LumenMock
import LumenTesting
import NIOCore
import RPCSupport
import Synchronization
import Testing
import UpstreamClient

/// The facade over real in-process services, driven through Hummingbird's router test client.
struct GatewayHarness {
    let client: any TestClientProtocol
    let services: TestServices
    let tenant: TestServices.Tenant
    /// Runs a request against the operations routes (`/metrics`), served on a listener of their own.
    let operations: @Sendable (@Sendable (any TestClientProtocol) async throws -> TestResponse) async throws -> TestResponse

    /// Runs `body` against a facade whose caches have synced; `prepare` runs first, so what it
    /// creates is in the caches' snapshot.
    /// `provider`: the in-process upstream (the mock by default); `meter`: what the gateway
    /// places holds through, made from the ledger's own.
    static func run(
        imageURLs: HostPolicy = .none, tokenSources: TokenSources = .none, provider: any InProcessProvider = MockProvider(),
        meter: @Sendable @escaping (any HoldMeter) -> any HoldMeter = { $0 },
        prepare: @Sendable @escaping (TestServices, TestServices.Tenant) async throws -> Void = { _, _ in },
        _ body: @Sendable @escaping (GatewayHarness) async throws -> Void
    ) async throws {
        try await TestServices.run { services in
            let tenant = try await services.tenant()
            try await prepare(services, tenant)
            var logger = Logger(label: "gateway-test")
            logger.logLevel = .critical
            var gatewayServices = services.gatewayServices
            gatewayServices.meter = gatewayServices.meter.map(meter)
            var gateway = buildGateway(
                configuration: .init(
                    host: "127.0.0.1", port: 0, metrics: nil, inProcess: provider, imageURLs: imageURLs, tokenSources: tokenSources),
                services: gatewayServices,
                logger: logger)
            gateway.application.addServices(gateway.background)
            let operations = Application(router: gateway.operationsRouter)
            try await gateway.application.test(.router) { client in
                let harness = GatewayHarness(
                    client: client, services: services, tenant: tenant,
                    operations: { request in try await operations.test(.router) { try await request($0) } })
                let deadline = ContinuousClock.now + .seconds(10)
                while try await harness.send(.get, "/healthz", as: .none).status != 200 {
                    guard ContinuousClock.now < deadline else {
                        Issue.record("the gateway's caches did not sync")
                        return
                    }
                    try await Task.sleep(for: .milliseconds(5))
                }
                try await body(harness)
            }
        }
    }

    /// A gateway with one model, `model` (for `scenes`, 2,000 output tokens at most, `meteredModel`'s prices),
    /// served by `backend`, and a key; `body` gets the gateway, the key's secret and its id.
    static func run(
        model name: String, vendor: String, scenes: [Lumen_Common_V1_Scene] = [.chat], backend: Lumen_Registry_V1_Backend,
        imageURLs: HostPolicy = .none, tokenSources: TokenSources = .none, provider: any InProcessProvider = MockProvider(),
        meter: @Sendable @escaping (any HoldMeter) -> any HoldMeter = { $0 },
        _ body: @Sendable @escaping (GatewayHarness, String, String) async throws -> Void
    ) async throws {
        let key = Mutex(("", ""))
        try await run(imageURLs: imageURLs, tokenSources: tokenSources, provider: provider, meter: meter, prepare: { services, tenant in
            var model = TestServices.meteredModel
            model.name = name
            model.vendor = vendor
            model.scenes = scenes
            model.maxOutputTokens = 2_000
            model.enabled = true
            _ = try await services.registry.upsertModel(.with { $0.model = model }, metadata: services.asInternal)
            var backend = backend
            backend.model = name
            _ = try await services.registry.upsertBackend(.with { $0.backend = backend }, metadata: services.asInternal)
            let created = try await services.keys.createKey(.init(), metadata: tenant.metadata)
            key.withLock { $0 = (created.secret, created.key.id) }
        }) { gateway in
            let (secret, keyID) = key.withLock { $0 }
            try await body(gateway, secret, keyID)
        }
    }

    /// The raw response, for SSE bodies and headers.
    func raw(
        _ method: HTTPRequest.Method, _ path: String, json: String?, bearer: String?, authorization: String? = nil
    ) async throws -> TestResponse {
        var headers: HTTPFields = [:]
        if let bearer { headers[.authorization] = "Bearer \(bearer)" }
        if let authorization { headers[.authorization] = authorization }
        return try await client.execute(uri: path, method: method, headers: headers, body: json.map { ByteBuffer(string: $0) })
    }

    /// Who a request comes from.
    enum Credential {
        /// The harness tenant's administrator (its management token).
        case tenant
        /// `Authorization: Bearer <secret>`.
        case bearer(String)
        /// `Authorization: <value>`, as given (a bare token, another scheme).
        case header(String)
        /// No Authorization header.
        case none
    }

    /// Sends a request, by default as the tenant's administrator.
    func send(
        _ method: HTTPRequest.Method, _ path: String, json: String? = nil, as credential: Credential = .tenant
    ) async throws -> (status: Int, body: [String: Any]) {
        var headers: HTTPFields = [:]
        switch credential {
        case .tenant: headers[.authorization] = "Bearer \(tenant.managementToken)"
        case .bearer(let secret): headers[.authorization] = "Bearer \(secret)"
        case .header(let value): headers[.authorization] = value
        case .none: break
        }
        let response = try await client.execute(
            uri: path, method: method, headers: headers, body: json.map { ByteBuffer(string: $0) })
        let data = Data(response.body.readableBytesView)
        let object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] ?? [:]
        return (Int(response.status.code), object)
    }

    /// The `error.code` and `error.param` of an error body.
    static func error(_ body: [String: Any]) -> (code: String?, param: String?, message: String) {
        let error = body["error"] as? [String: Any]
        return (error?["code"] as? String, error?["param"] as? String, error?["message"] as? String ?? "")
    }
}
