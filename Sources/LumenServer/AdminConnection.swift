import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import LumenAPI
import RPCSupport
import SharedRules

/// A running server's gRPC port and the token `lumen admin` acts with: `--server` (else
/// `LUMEN_GRPC_ADDRESS`, else 127.0.0.1:9090) and `--token` (else the credential's variable).
/// With `LUMEN_TLS_CA` the port is called over TLS (presenting `LUMEN_TLS_CERT` and
/// `LUMEN_TLS_KEY` when set, for a port that requires client certificates), as `lumen serve`
/// calls services with the same variables.
public struct AdminConnection: Sendable {
    /// Which token a command acts with.
    public enum Credential: Sendable {
        /// An organisation's management token (`mt-…`, `LUMEN_MANAGEMENT_TOKEN`).
        case managementToken
        /// The deployment operator's token (`op-…`, `LUMEN_OPERATOR_TOKEN`).
        case operatorToken
        /// Either: a management token, else an operator token (the commands an operator may
        /// also run, such as restoring an organisation's administrator).
        case managementOrOperatorToken

        var prefixes: [String] {
            switch self {
            case .managementToken: ["mt-"]
            case .operatorToken: ["op-"]
            case .managementOrOperatorToken: ["mt-", "op-"]
            }
        }
        var variables: [String] {
            switch self {
            case .managementToken: ["LUMEN_MANAGEMENT_TOKEN"]
            case .operatorToken: ["LUMEN_OPERATOR_TOKEN"]
            case .managementOrOperatorToken: ["LUMEN_MANAGEMENT_TOKEN", "LUMEN_OPERATOR_TOKEN"]
            }
        }
        var noun: String {
            switch self {
            case .managementToken: "a management token"
            case .operatorToken: "an operator token"
            case .managementOrOperatorToken: "a management or operator token"
            }
        }
    }

    public typealias Transport = HTTP2ClientTransport.Posix

    public let host: String
    public let port: Int
    let token: String
    /// Whether the command acts with an operator token (who names the organisation itself).
    public let isOperator: Bool
    let security: TransportSecuritySettings

    /// Checks the address and the token; a missing or malformed one is a `ConfigurationError`.
    public init(server: String?, token: String?, credential: Credential, environment: [String: String]) throws {
        let address = server ?? environment.nonEmpty("LUMEN_GRPC_ADDRESS") ?? "127.0.0.1:9090"
        let (host, port) = ServeConfiguration.split(address)
        guard !host.isEmpty, (1...65_535).contains(port) else {
            throw ConfigurationError("--server must be host:port, not \(address)")
        }
        let prefixes = credential.prefixes.map { "\($0)…" }.joined(separator: " or ")
        guard let token = token ?? credential.variables.lazy.compactMap({ environment.nonEmpty($0) }).first else {
            throw ConfigurationError(
                "\(credential.noun) is required: --token \(prefixes) or \(credential.variables.joined(separator: " or "))")
        }
        guard credential.prefixes.contains(where: token.hasPrefix) else {
            throw ConfigurationError("--token must be \(credential.noun) (\(prefixes))")
        }
        self.isOperator = token.hasPrefix("op-")
        (self.host, self.port, self.token) = (host, port, token)
        var security = TransportSecuritySettings()
        security.ca = environment.nonEmpty("LUMEN_TLS_CA")
        security.certificate = environment.nonEmpty("LUMEN_TLS_CERT")
        security.key = environment.nonEmpty("LUMEN_TLS_KEY")
        if security.certificate != nil || security.key != nil || security.ca != nil {
            var check = ServeConfiguration()
            check.components = []
            check.security = security
            try security.check(check)
        }
        if !security.dials && !TransportSecuritySettings.isLoopback(host) && environment.nonEmpty("LUMEN_INSECURE_PLAINTEXT") == nil {
            throw ConfigurationError(
                "--server \(address) is not on loopback: set LUMEN_TLS_CA to call it over TLS, or LUMEN_INSECURE_PLAINTEXT=1 to send the token in plaintext")
        }
        self.security = security
    }

    /// Runs `body` with the server's ledger.
    public func withLedger<Result: Sendable>(
        _ body: (Lumen_Ledger_V1_LedgerService.Client<Transport>, Metadata) async throws -> Result
    ) async throws -> Result {
        try await call(service: "the ledger") { client, metadata in
            try await body(Lumen_Ledger_V1_LedgerService.Client(wrapping: client), metadata)
        }
    }

    /// Runs `body` with the server's accounts service.
    public func withAccounts<Result: Sendable>(
        _ body: (Lumen_Accounts_V1_AccountsService.Client<Transport>, Metadata) async throws -> Result
    ) async throws -> Result {
        try await call(service: "the accounts service") { client, metadata in
            try await body(Lumen_Accounts_V1_AccountsService.Client(wrapping: client), metadata)
        }
    }

    /// Runs `body` with the server's model registry.
    public func withRegistry<Result: Sendable>(
        _ body: (Lumen_Registry_V1_ModelRegistryService.Client<Transport>, Metadata) async throws -> Result
    ) async throws -> Result {
        try await call(service: "the registry") { client, metadata in
            try await body(Lumen_Registry_V1_ModelRegistryService.Client(wrapping: client), metadata)
        }
    }

    /// Runs `body` with a client of the server; a server that cannot be reached is an
    /// `AdminConnection.Unreachable` naming it (other RPC errors pass through).
    func call<Result: Sendable>(
        service: String, _ body: (GRPCClient<Transport>, Metadata) async throws -> Result
    ) async throws -> Result {
        do {
            return try await withGRPCClient(
                transport: try Transport(
                    target: TransportSecuritySettings.target(host: host, port: port), transportSecurity: security.grpcClient)
            ) { client in
                try await body(client, .bearer(token))
            }
        } catch let error as RPCError where error.code == .unavailable && ServiceError(error).code == "service_unavailable" {
            let tls = security.dials
                ? "; over TLS: does its certificate chain to LUMEN_TLS_CA and name \(host)? does the port want a client certificate (LUMEN_TLS_CERT, LUMEN_TLS_KEY)?"
                : "; a port on TLS needs LUMEN_TLS_CA"
            throw Unreachable(description: "cannot reach \(service) at \(host):\(port) (is `lumen serve` running? --server\(tls))")
        }
    }

    /// The server did not answer at all.
    public struct Unreachable: Error, CustomStringConvertible {
        public var description: String
    }
}
