import Foundation
import Storage
import Yams

/// The parts a deployment can run in one process.
public enum Component: String, CaseIterable, Sendable, Comparable {
    case accounts, keys, ledger, registry, gateway

    public static func < (a: Component, b: Component) -> Bool {
        (allCases.firstIndex(of: a) ?? 0) < (allCases.firstIndex(of: b) ?? 0)
    }

    /// The RPC services (everything but the HTTP facade).
    public static let services: [Component] = [.accounts, .keys, .ledger, .registry]

    /// `accounts,keys` → the set; `all` means every component.
    public static func parseList(_ text: String) throws -> Set<Component> {
        var result = Set<Component>()
        for raw in text.split(separator: ",") {
            let name = raw.trimmingCharacters(in: .whitespaces).lowercased()
            if name == "all" {
                result.formUnion(allCases)
            } else if let component = Component(rawValue: name == "model-registry" ? "registry" : name) {
                result.insert(component)
            } else {
                throw ConfigurationError(
                    "unknown service \"\(name)\"; choose from \(allCases.map(\.rawValue).joined(separator: ", ")) or all")
            }
        }
        guard !result.isEmpty else { throw ConfigurationError("--services names no service") }
        return result
    }
}

public struct ConfigurationError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// Everything `lumen serve` needs, resolved from flags, `LUMEN_*` variables, the YAML file
/// and defaults, in that order of precedence.
public struct ServeConfiguration: Sendable, Equatable {
    public init() {}

    public var dataDirectory = "./data"
    public var httpHost = "127.0.0.1"
    public var httpPort = 8080
    public var grpcHost = "127.0.0.1"
    public var grpcPort = 9090
    /// Where `/metrics` is served (a listener of its own).
    public var metricsHost = "127.0.0.1"
    public var metricsPort = 9464
    /// Seconds from a request's first byte to the end of its headers.
    public var readHeaderTimeoutSeconds = 10
    /// Seconds from the end of a request's headers to the end of its body.
    public var bodyTimeoutSeconds = 60
    /// Seconds a keep-alive connection may stay idle.
    public var idleTimeoutSeconds = 75
    /// HTTP connections held at once.
    public var maxConnections = 10_000
    public var components = Set(Component.allCases)
    /// `host:port` of services that run in another process.
    public var addresses: [Component: String] = [:]
    public var logLevel = "info"
    /// Seconds between active health probes of the upstream backends; 0: passive health only.
    public var probeIntervalSeconds = 0
    /// Seconds a hold lives before the reconciler settles it at its estimate.
    public var holdTTLSeconds = 900
    /// Days of raw usage lines the ledger keeps; 0: forever.
    public var usageRetentionDays = 0
    /// Seconds requests in flight at shutdown may take to finish before they are cancelled.
    public var shutdownGraceSeconds = 10
    /// Coins to the dollar: the dashboard's unit of money.
    public var coinsPerUSD = 100
    /// Set up a demo organisation, key and mock model on an empty data directory.
    public var demo = false
    /// Models and backends to upsert into the registry at start (the file's `models:`).
    public var catalog = ModelCatalog()
    /// TLS on the ports served here and to the services called elsewhere.
    public var security = TransportSecuritySettings()
    /// A `postgres://` URL: the services of this process that can keep their tables in
    /// PostgreSQL do (each in its schema); nil: SQLite files in `dataDirectory`.
    public var database: String?
    /// Where people reach Lumen (`https://lumen.example.com`): the links Lumen makes
    /// (invitations) start with it, and when it is `https` — or the HTTP port itself is on TLS —
    /// cookies are `Secure` and HSTS is sent. nil: the HTTP port's own address.
    public var publicURL: String?
    /// Whether profiles show Gravatar pictures (people's browsers fetch them from gravatar.com);
    /// off by default: nothing on a page comes from elsewhere.
    public var gravatar = false

    /// The public URL in force: `publicURL`, else the HTTP port's address (`https` when it is
    /// on TLS; a wildcard host read as `localhost`).
    public var effectivePublicURL: String {
        if let publicURL { return publicURL }
        let scheme = security.serves ? "https" : "http"
        let host = ["0.0.0.0", "::", "[::]", ""].contains(httpHost) ? "localhost" : (httpHost.contains(":") ? "[\(httpHost)]" : httpHost)
        return "\(scheme)://\(host):\(httpPort)"
    }

    /// Keys of the YAML file (see gateway/lumen.example.yaml).
    static let fileKeys: Set<String> = [
        "data_dir", "log_level", "http", "grpc", "metrics", "services", "remote", "models", "probe_interval", "usage_retention_days", "hold_ttl",
        "shutdown_grace", "coins_per_usd", "tls", "insecure_plaintext", "database", "public_url", "gravatar",
    ]

    /// The defaults with the YAML file `path` (else `LUMEN_CONFIG`, else none) applied.
    public static func load(file path: String?, environment: [String: String]) throws -> ServeConfiguration {
        var configuration = ServeConfiguration()
        guard let path = path ?? environment.nonEmpty("LUMEN_CONFIG") else { return configuration }
        let text = try YAMLFile.read(path, what: "the configuration file")
        try configuration.apply(yaml: text, path: path)
        return configuration
    }

    /// The data directory `lumen serve` with the same flag, variables and file would use:
    /// `flag`, else `LUMEN_DATA_DIR`, else the file's `data_dir`, else ./data.
    public static func dataDirectory(flag: String?, file: String?, environment: [String: String]) throws -> String {
        if let directory = flag ?? environment.nonEmpty("LUMEN_DATA_DIR") { return directory }
        return try load(file: file, environment: environment).dataDirectory
    }

    /// Applies the text of a YAML configuration file (`path` names it in errors).
    public mutating func apply(yaml text: String, path: String) throws {
        let loaded = try YAMLFile.parse(text, path: path) { try Yams.load(yaml: $0) }
        guard let root = loaded as? [String: Any] else {
            if loaded == nil { return }
            throw ConfigurationError("\(path) must be a YAML mapping of settings")
        }
        if let unknown = root.keys.sorted().first(where: { !Self.fileKeys.contains($0) }) {
            throw ConfigurationError(
                "\(path): unknown setting \"\(unknown)\"; known: \(Self.fileKeys.sorted().joined(separator: ", "))")
        }
        func string(_ value: Any?, _ key: String) throws -> String? {
            guard let value else { return nil }
            if let text = value as? String { return text }
            if let number = value as? Int { return String(number) }
            throw ConfigurationError("\(path): \(key) must be a string")
        }
        func port(_ value: Any?, _ key: String) throws -> Int? {
            guard let value else { return nil }
            guard let number = value as? Int else { throw ConfigurationError("\(path): \(key) must be a port number") }
            return try Self.port(number, key)
        }
        func section(_ key: String, allowed: Set<String>) throws -> [String: Any] {
            guard let value = root[key] else { return [:] }
            guard let mapping = value as? [String: Any] else { throw ConfigurationError("\(path): \(key) must be a mapping") }
            if let unknown = mapping.keys.sorted().first(where: { !allowed.contains($0) }) {
                throw ConfigurationError(
                    "\(path): unknown setting \(key).\(unknown); known: \(allowed.sorted().map { "\(key).\($0)" }.joined(separator: ", "))")
            }
            return mapping
        }
        if let value = try string(root["data_dir"], "data_dir") { dataDirectory = value }
        if let value = try string(root["database"], "database") { database = try Self.database(value, "database") }
        if let value = try string(root["log_level"], "log_level") { logLevel = value }
        if let value = try string(root["public_url"], "public_url") { publicURL = try Self.publicURL(value, "\(path): public_url") }
        func whole(_ value: Any?, _ key: String, unit: String) throws -> Int? {
            guard let value else { return nil }
            guard let number = value as? Int else { throw ConfigurationError("\(path): \(key) must be a number of \(unit)") }
            return number
        }
        func number(_ key: String, unit: String) throws -> Int? { try whole(root[key], key, unit: unit) }
        if let seconds = try number("probe_interval", unit: "seconds") {
            probeIntervalSeconds = try Self.probeInterval(seconds, "probe_interval")
        }
        if let seconds = try number("hold_ttl", unit: "seconds") { holdTTLSeconds = try Self.holdTTL(seconds, "hold_ttl") }
        if let days = try number("usage_retention_days", unit: "days") {
            usageRetentionDays = try Self.retentionDays(days, "usage_retention_days")
        }
        if let seconds = try number("shutdown_grace", unit: "seconds") {
            shutdownGraceSeconds = try Self.shutdownGrace(seconds, "shutdown_grace")
        }
        if let coins = try number("coins_per_usd", unit: "coins") { coinsPerUSD = try Self.coinsPerUSD(coins, "coins_per_usd") }
        let http = try section(
            "http", allowed: ["host", "port", "read_header_timeout", "body_timeout", "idle_timeout", "max_connections"])
        if let value = try string(http["host"], "http.host") { httpHost = value }
        if let value = try port(http["port"], "http.port") { httpPort = value }
        if let seconds = try whole(http["read_header_timeout"], "http.read_header_timeout", unit: "seconds") {
            readHeaderTimeoutSeconds = try Self.timeout(seconds, "http.read_header_timeout")
        }
        if let seconds = try whole(http["body_timeout"], "http.body_timeout", unit: "seconds") {
            bodyTimeoutSeconds = try Self.timeout(seconds, "http.body_timeout")
        }
        if let seconds = try whole(http["idle_timeout"], "http.idle_timeout", unit: "seconds") {
            idleTimeoutSeconds = try Self.timeout(seconds, "http.idle_timeout")
        }
        if let count = try whole(http["max_connections"], "http.max_connections", unit: "connections") {
            maxConnections = try Self.maxConnections(count, "http.max_connections")
        }
        let metrics = try section("metrics", allowed: ["host", "port"])
        if let value = try string(metrics["host"], "metrics.host") { metricsHost = value }
        if let value = try port(metrics["port"], "metrics.port") { metricsPort = value }
        let grpc = try section("grpc", allowed: ["host", "port"])
        if let value = try string(grpc["host"], "grpc.host") { grpcHost = value }
        if let value = try port(grpc["port"], "grpc.port") { grpcPort = value }
        let tls = try section("tls", allowed: ["cert", "key", "ca", "require_client_cert"])
        if let value = try string(tls["cert"], "tls.cert") { security.certificate = value }
        if let value = try string(tls["key"], "tls.key") { security.key = value }
        if let value = try string(tls["ca"], "tls.ca") { security.ca = value }
        func flag(_ value: Any?, _ key: String) throws -> Bool? {
            guard let value else { return nil }
            guard let flag = value as? Bool else { throw ConfigurationError("\(path): \(key) must be true or false") }
            return flag
        }
        if let value = try flag(tls["require_client_cert"], "tls.require_client_cert") {
            security.requireClientCertificate = value
        }
        if let value = try flag(root["insecure_plaintext"], "insecure_plaintext") { security.insecurePlaintext = value }
        if let value = try flag(root["gravatar"], "gravatar") { gravatar = value }
        if let value = root["services"] {
            if let list = value as? [Any] {
                components = try Component.parseList(list.map { "\($0)" }.joined(separator: ","))
            } else if let text = value as? String {
                components = try Component.parseList(text)
            } else {
                throw ConfigurationError("\(path): services must be a list of service names")
            }
        }
        catalog = try ModelCatalog.parse(yaml: text, path: path)
        let remote = try section("remote", allowed: Set(Component.services.map(\.rawValue)))
        for component in Component.services {
            if let value = try string(remote[component.rawValue], "remote.\(component.rawValue)") {
                addresses[component] = try Self.address(value, "remote.\(component.rawValue)")
            }
        }
    }

    /// A `postgres://` URL, checked (its password never in the message).
    public static func database(_ url: String, _ name: String) throws -> String {
        do {
            _ = try PostgresServiceDatabase.configuration(url)
        } catch {
            throw ConfigurationError("\(name): \(error)")
        }
        return url
    }

    /// The database `lumen serve` with the same flag, variables and file would use: `flag`, else
    /// `LUMEN_DATABASE`, else the file's `database`, else none (SQLite).
    public static func database(flag: String?, file: String?, environment: [String: String]) throws -> String? {
        if let url = flag ?? environment.nonEmpty("LUMEN_DATABASE") { return try database(url, flag != nil ? "--database" : "LUMEN_DATABASE") }
        return try load(file: file, environment: environment).database
    }

    /// An `http(s)://host[:port]` URL people reach Lumen at, without a path beyond `/`, a query or
    /// credentials; kept without its trailing slash.
    public static func publicURL(_ text: String, _ name: String) throws -> String {
        let trimmed = text.hasSuffix("/") ? String(text.dropLast()) : text
        guard let url = URLComponents(string: trimmed), let scheme = url.scheme?.lowercased(), ["http", "https"].contains(scheme),
            let host = url.host, !host.isEmpty, url.path.isEmpty, url.query == nil, url.fragment == nil, url.user == nil,
            url.password == nil, !trimmed.contains(where: { $0.isWhitespace })
        else {
            throw ConfigurationError(
                "\(name) must be where people reach Lumen, http(s)://host[:port] without a path, such as https://lumen.example.com, not \"\(text)\"")
        }
        return trimmed
    }

    /// 0 (off) or 1–3600 seconds.
    public static func probeInterval(_ seconds: Int, _ name: String) throws -> Int {
        try bounded(seconds, 0...3600, "seconds", name, zero: "off")
    }

    /// 1–86400 seconds.
    public static func holdTTL(_ seconds: Int, _ name: String) throws -> Int { try bounded(seconds, 1...86_400, "seconds", name) }

    /// 1–3600 seconds.
    public static func timeout(_ seconds: Int, _ name: String) throws -> Int { try bounded(seconds, 1...3600, "seconds", name) }

    /// 1–1,000,000 connections.
    public static func maxConnections(_ count: Int, _ name: String) throws -> Int {
        try bounded(count, 1...1_000_000, "connections", name)
    }

    /// 0–3600 seconds.
    public static func shutdownGrace(_ seconds: Int, _ name: String) throws -> Int { try bounded(seconds, 0...3600, "seconds", name) }

    /// 1–1,000,000 coins to the dollar.
    public static func coinsPerUSD(_ coins: Int, _ name: String) throws -> Int {
        try bounded(coins, 1...1_000_000, "coins", name)
    }

    /// 0 (keep forever) or 1–36500 days.
    public static func retentionDays(_ days: Int, _ name: String) throws -> Int {
        try bounded(days, 0...36_500, "days", name, zero: "keep forever")
    }

    /// `value` when it lies in `range`, else the error naming the option, its range and unit
    /// (and what 0 means, when it means something of its own).
    public static func bounded(_ value: Int, _ range: ClosedRange<Int>, _ unit: String, _ name: String, zero: String? = nil) throws -> Int {
        guard range.contains(value) else {
            let span =
                if let zero, range.lowerBound == 0 { "0 (\(zero)) or 1–\(range.upperBound)" } else { "\(range.lowerBound)–\(range.upperBound)" }
            throw ConfigurationError("\(name) must be \(span) \(unit), not \(value)")
        }
        return value
    }

    public static func port(_ value: Int, _ name: String) throws -> Int {
        guard (0...65535).contains(value) else { throw ConfigurationError("\(name) must be between 0 and 65535, not \(value)") }
        return value
    }

    public static func port(_ text: String, _ name: String) throws -> Int {
        guard let value = Int(text) else { throw ConfigurationError("\(name) must be a port number, not \"\(text)\"") }
        return try port(value, name)
    }

    /// Checks a `host:port` address.
    public static func address(_ text: String, _ name: String) throws -> String {
        guard let colon = text.lastIndex(of: ":"), colon != text.startIndex,
            let port = Int(text[text.index(after: colon)...]), (1...65535).contains(port)
        else { throw ConfigurationError("\(name) must be host:port, not \"\(text)\"") }
        return text
    }

    /// Splits a checked `host:port` address.
    public static func split(_ address: String) -> (host: String, port: Int) {
        guard let colon = address.lastIndex(of: ":") else { return (address, 0) }
        var host = String(address[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        return (host, Int(address[address.index(after: colon)...]) ?? 0)
    }
}

extension Dictionary where Key == String, Value == String {
    /// The environment variable `name`, unless it is unset or empty (empty counts as unset).
    public func nonEmpty(_ name: String) -> String? {
        self[name].flatMap { $0.isEmpty ? nil : $0 }
    }
}
