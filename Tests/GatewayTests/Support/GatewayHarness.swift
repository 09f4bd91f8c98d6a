import Foundation
import Gateway
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import LumenTesting
import NIOCore

/// The facade over real in-process services, driven through Hummingbird's router test client.
struct GatewayHarness {
    let client: any TestClientProtocol
    let services: TestServices
    let tenant: TestServices.Tenant

    static func run(_ body: @Sendable @escaping (GatewayHarness) async throws -> Void) async throws {
        try await TestServices.run { services in
            let tenant = try await services.tenant()
            var logger = Logger(label: "gateway-test")
            logger.logLevel = .critical
            let app = buildApplication(
                configuration: .init(host: "127.0.0.1", port: 0), services: services.gatewayServices, logger: logger)
            try await app.test(.router) { client in
                try await body(GatewayHarness(client: client, services: services, tenant: tenant))
            }
        }
    }

    /// Sends a request; `token` nil sends no Authorization header.
    func send(
        _ method: HTTPRequest.Method, _ path: String, json: String? = nil, token: String?? = .some(nil)
    ) async throws -> (status: Int, body: [String: Any]) {
        var headers: HTTPFields = [:]
        switch token {
        case .some(.some(let token)): headers[.authorization] = "Bearer \(token)"
        case .some(.none): headers[.authorization] = "Bearer \(tenant.managementToken)"
        case .none: break
        }
        let response = try await client.execute(
            uri: path, method: method, headers: headers, body: json.map { ByteBuffer(string: $0) })
        let data = Data(response.body.readableBytesView)
        let object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] ?? [:]
        return (Int(response.status.code), object)
    }

    /// The `error.code` and `error.param` of an error body.
    static func error(_ body: [String: Any]) -> (code: String?, param: String?) {
        let error = body["error"] as? [String: Any]
        return (error?["code"] as? String, error?["param"] as? String)
    }
}
