import Foundation
import GRPCNIOTransportHTTP2
import NIOSSL

/// TLS for the ports this process serves and the services it calls, and the rule that keeps
/// tokens off the network in the clear: plaintext only on loopback, unless `--insecure-plaintext`
/// says otherwise.
///
/// - `--tls-cert`/`--tls-key`: this process's certificate chain and key (PEM). With them the gRPC
///   port and the HTTP port speak TLS only, and this process presents them to the services it
///   calls when those ask for a client certificate.
/// - `--tls-ca`: the CA certificates (PEM) of the deployment. With it, calls to the services of
///   other processes (`--<service>-address`) go over TLS, and their certificate must chain to it
///   and name the address's host (or IP).
/// - `--tls-require-client-cert`: the gRPC port accepts only callers that present a certificate
///   chained to `--tls-ca` (mutual TLS), on top of the tokens every call carries.
public struct TransportSecuritySettings: Sendable, Equatable {
    public var certificate: String?
    public var key: String?
    public var ca: String?
    public var requireClientCertificate = false
    /// Allow plaintext on interfaces and to addresses other than loopback.
    public var insecurePlaintext = false

    public init() {}

    /// Whether this process serves TLS.
    public var serves: Bool { certificate != nil }
    /// Whether this process calls other processes' services over TLS.
    public var dials: Bool { ca != nil }

    /// `127.0.0.0/8`, `::1` and `localhost`: the only hosts plaintext is allowed on by default.
    public static func isLoopback(_ host: String) -> Bool {
        let bare = host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host
        if bare == "::1" || bare.lowercased() == "localhost" { return true }
        return isIPv4(bare) && bare.hasPrefix("127.")
    }

    /// `a.b.c.d`, each 0–255.
    static func isIPv4(_ host: String) -> Bool {
        let parts = host.split(separator: ".", omittingEmptySubsequences: false)
        return parts.count == 4 && parts.allSatisfy { UInt8($0) != nil }
    }

    /// Checks the files (each readable and of its kind) and the combinations, and refuses
    /// plaintext where it would leave loopback — before anything listens or connects.
    public func check(_ configuration: ServeConfiguration) throws {
        switch (certificate, key) {
        case (.some, nil): throw ConfigurationError("--tls-cert needs --tls-key (LUMEN_TLS_KEY, tls.key): the certificate's private key")
        case (nil, .some): throw ConfigurationError("--tls-key needs --tls-cert (LUMEN_TLS_CERT, tls.cert): the certificate it belongs to")
        default: break
        }
        if requireClientCertificate && (certificate == nil || ca == nil) {
            throw ConfigurationError(
                "--tls-require-client-cert needs --tls-cert and --tls-key (the port's own TLS) and --tls-ca (the CA client certificates must chain to)")
        }
        if let certificate { _ = try Self.certificates(certificate, "--tls-cert (LUMEN_TLS_CERT, tls.cert)") }
        if let key { _ = try Self.privateKey(key) }
        if let ca { _ = try Self.certificates(ca, "--tls-ca (LUMEN_TLS_CA, tls.ca)") }
        if let certificate, let key {
            // A key that does not belong to the certificate fails here, not at the first handshake.
            do {
                _ = try NIOSSLContext(configuration: try httpConfiguration(certificate: certificate, key: key))
            } catch let error as ConfigurationError {
                throw error
            } catch {
                throw ConfigurationError("--tls-cert and --tls-key do not make a TLS identity (\(certificate), \(key)): \(error)")
            }
        }
        guard !insecurePlaintext else { return }
        let plaintext = " would carry API keys and tokens in plaintext"
        let fix = "give --tls-cert and --tls-key, listen on 127.0.0.1, or pass --insecure-plaintext (LUMEN_INSECURE_PLAINTEXT=1) to accept it"
        if !serves {
            for listener in StartupChecks.listeners(configuration) where listener.name != "metrics" {
                if !Self.isLoopback(listener.host) {
                    throw ConfigurationError("the \(listener.name) port on \(listener.host)\(plaintext): \(fix)")
                }
            }
        }
        if !dials {
            for (component, address) in configuration.addresses.sorted(by: { $0.key < $1.key })
            where !configuration.components.contains(component) {
                let (host, _) = ServeConfiguration.split(address)
                if !Self.isLoopback(host) {
                    throw ConfigurationError(
                        "--\(component.rawValue)-address \(address)\(plaintext): give --tls-ca (LUMEN_TLS_CA, tls.ca) to call it over TLS, or pass --insecure-plaintext (LUMEN_INSECURE_PLAINTEXT=1) to accept it")
                }
            }
        }
    }

    static func privateKey(_ path: String) throws -> NIOSSLPrivateKey {
        do {
            return try NIOSSLPrivateKey(file: path, format: .pem)
        } catch {
            throw ConfigurationError("--tls-key (LUMEN_TLS_KEY, tls.key): cannot read a PEM private key from \(path): \(error)")
        }
    }

    static func certificates(_ path: String, _ option: String) throws -> [NIOSSLCertificate] {
        let certificates: [NIOSSLCertificate]
        do {
            certificates = try NIOSSLCertificate.fromPEMFile(path)
        } catch {
            throw ConfigurationError("\(option): cannot read PEM certificates from \(path): \(error)")
        }
        guard !certificates.isEmpty else { throw ConfigurationError("\(option): no PEM certificate in \(path)") }
        return certificates
    }

    /// The gRPC port's security: TLS with this process's certificate (and client certificates
    /// required when asked), else plaintext.
    var grpcServer: HTTP2ServerTransport.Posix.TransportSecurity {
        guard let certificate, let key else { return .plaintext }
        let chain: [TLSConfig.CertificateSource] = [.file(path: certificate, format: .pem)]
        let privateKey = TLSConfig.PrivateKeySource.file(path: key, format: .pem)
        guard requireClientCertificate, let ca else { return .tls(certificateChain: chain, privateKey: privateKey) }
        return .mTLS(certificateChain: chain, privateKey: privateKey) { tls in
            tls.trustRoots = .certificates([.file(path: ca, format: .pem)])
            tls.clientCertificateVerification = .noHostnameVerification
        }
    }

    /// How this process calls the services of other processes: TLS verified against the
    /// deployment's CA (presenting this process's certificate when it has one), else plaintext.
    var grpcClient: HTTP2ClientTransport.Posix.TransportSecurity {
        guard let ca else { return .plaintext }
        return .tls { tls in
            tls.trustRoots = .certificates([.file(path: ca, format: .pem)])
            tls.serverCertificateVerification = .fullVerification
            if let certificate, let key {
                tls.certificateChain = [.file(path: certificate, format: .pem)]
                tls.privateKey = .file(path: key, format: .pem)
            }
        }
    }

    /// Where to dial `host`: an IP literal as itself (so that TLS checks the certificate's IP
    /// names and sends no SNI, which may not carry an IP), any other name through DNS.
    static func target(host: String, port: Int) -> any ResolvableTarget {
        if isIPv4(host) { return .ipv4(address: host, port: port) }
        if host.contains(":") { return .ipv6(address: host, port: port) }
        return .dns(host: host, port: port)
    }

    /// The HTTP port's TLS (HTTP/1.1), when this process has a certificate.
    func http() throws -> TLSConfiguration? {
        guard let certificate, let key else { return nil }
        return try httpConfiguration(certificate: certificate, key: key)
    }

    private func httpConfiguration(certificate: String, key: String) throws -> TLSConfiguration {
        var configuration = TLSConfiguration.makeServerConfiguration(
            certificateChain: try Self.certificates(certificate, "--tls-cert (LUMEN_TLS_CERT, tls.cert)").map { .certificate($0) },
            privateKey: .privateKey(try Self.privateKey(key)))
        configuration.applicationProtocols = ["http/1.1"]
        return configuration
    }
}
