import Foundation
import Gateway
import Storage
import UpstreamClient
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
    /// Where log lines are appended; empty: standard error.
    public var logFile = ""
    /// Seconds between active health probes of the upstream backends; 0: passive health only.
    public var probeIntervalSeconds = 0
    /// The most connections open to one upstream host at once (as many requests again wait for
    /// one; more get 503 `upstream_busy`); 0: no cap.
    public var upstreamMaxConnections = 1_000
    /// Seconds a hold lives before the reconciler settles it at its estimate.
    public var holdTTLSeconds = 900
    /// Days of raw usage lines the ledger keeps; 0: forever.
    public var usageRetentionDays = 0
    /// Days of audit entries to keep (0: forever), and the key that signs their checkpoints
    /// (nil: `audit-signing.key` in the data directory).
    public var auditRetentionDays = 0
    public var auditSigningKey: String?
    /// Seconds requests in flight at shutdown may take to finish before they are cancelled.
    public var shutdownGraceSeconds = 10
    /// Coins to the dollar: the dashboard's unit of money.
    public var coinsPerUSD = 100
    /// Set up a demo organisation, key and mock model on an empty data directory.
    public var demo = false
    /// Models and backends to upsert into the registry at start (the file's `models:`).
    public var catalog = ModelCatalog()
    /// Single sign-on per organisation, from the file's `sso:` section.
    public var singleSignOn = SingleSignOnCatalog()
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
    /// The hosts whose images given by URL the gateway fetches for providers that take images
    /// inline only (Claude); none by default (such images are refused).
    public var imageURLs = HostPolicy.none
    /// The hosts budget alerts' webhooks may be on: any host at a public address by default
    /// (`*`); named hosts at any address, and over `http://` too.
    public var alertWebhookHosts = ServeConfiguration.anyPublicHost

    /// `*`: any host at a public address.
    public static let anyPublicHost: HostPolicy = (try? HostPolicy(list: "*")) ?? .none
    /// Where azure backends get their Entra ID tokens (`--token-sources`).
    public var tokenSources = TokenSources.none
    /// Where traces go (`--otlp-endpoint`, an OTLP collector); nil: no traces, nothing
    /// bootstrapped (README, "Tracing").
    public var otlpEndpoint: String?
    /// OTLP over gRPC or over HTTP with protobuf bodies (`--otlp-protocol`).
    public var otlpProtocol = TraceExport.WireProtocol.grpc

    /// The public URL in force: `publicURL`, else the HTTP port's address (`https` when it is
    /// on TLS; a wildcard host read as `localhost`).
    public var effectivePublicURL: String {
        if let publicURL { return publicURL }
        let scheme = security.serves ? "https" : "http"
        let host = ["0.0.0.0", "::", "[::]", ""].contains(httpHost) ? "localhost" : (httpHost.contains(":") ? "[\(httpHost)]" : httpHost)
        return "\(scheme)://\(host):\(httpPort)"
    }

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

    /// The audit signing key `lumen serve` with the same flag, variables and file would use:
    /// `flag`, else `LUMEN_AUDIT_SIGNING_KEY`, else the file's `audit_signing_key`, else
    /// `audit-signing.key` in `dataDirectory`.
    public static func auditSigningKey(
        flag: String?, file: String?, dataDirectory: String, environment: [String: String]
    ) throws -> String {
        if let path = flag ?? environment.nonEmpty("LUMEN_AUDIT_SIGNING_KEY") { return path }
        var configured = try load(file: file, environment: environment)
        configured.dataDirectory = dataDirectory
        return configured.auditSigningKeyPath
    }

    /// Applies the text of a YAML configuration file (`path` names it in errors): each
    /// setting's key (`ServeSettings`), then the `models:` section.
    public mutating func apply(yaml text: String, path: String) throws {
        let loaded = try YAMLFile.parse(text, path: path) { try Yams.load(yaml: $0) }
        guard let root = loaded as? [String: Any] else {
            if loaded == nil { return }
            throw ConfigurationError("\(path) must be a YAML mapping of settings")
        }
        try Self.checkKeys(of: root, path: path)
        for setting in Self.settings {
            guard let key = setting.key, let value = Self.value(at: key, in: root) else { continue }
            try setting.apply(&self, try Self.text(value, "\(path): \(key)"), "\(path): \(key)")
        }
        catalog = try ModelCatalog.parse(yaml: text, path: path)
        singleSignOn = try SingleSignOnCatalog.parse(yaml: text, path: path)
    }

    /// Refuses a key no setting has, naming the known ones of its level.
    static func checkKeys(of root: [String: Any], path: String) throws {
        let keys = settings.compactMap(\.key)
        let top = Set(keys.map { String($0.split(separator: ".")[0]) } + ["models", "sso"])
        if let unknown = root.keys.sorted().first(where: { !top.contains($0) }) {
            throw ConfigurationError("\(path): unknown setting \"\(unknown)\"; known: \(top.sorted().joined(separator: ", "))")
        }
        for section in Set(keys.filter { $0.contains(".") }.map { String($0.split(separator: ".")[0]) }) {
            guard let value = root[section] else { continue }
            guard let mapping = value as? [String: Any] else { throw ConfigurationError("\(path): \(section) must be a mapping") }
            let allowed = keys.filter { $0.hasPrefix(section + ".") }
            if let unknown = mapping.keys.sorted().first(where: { !allowed.contains(section + "." + $0) }) {
                throw ConfigurationError("\(path): unknown setting \(section).\(unknown); known: \(allowed.sorted().joined(separator: ", "))")
            }
        }
    }

    /// The value at `a` or `a.b` of the file, if present.
    static func value(at key: String, in root: [String: Any]) -> Any? {
        let parts = key.split(separator: ".").map(String.init)
        guard parts.count == 2 else { return root[key] }
        return (root[parts[0]] as? [String: Any])?[parts[1]]
    }

    /// A scalar of the file as the text a flag would give (a list: comma-separated).
    static func text(_ value: Any, _ name: String) throws -> String {
        switch value {
        case let text as String: return text
        case let flag as Bool: return flag ? "true" : "false"
        case let number as Int: return String(number)
        case let number as Double: return String(number)
        case let list as [Any]: return try list.map { try text($0, name) }.joined(separator: ",")
        default: throw ConfigurationError("\(name) must be a value, not a mapping")
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

    public static func port(_ text: String, _ name: String) throws -> Int {
        guard let value = Int(text), (0...65535).contains(value) else {
            throw ConfigurationError("\(name) must be a port number between 0 and 65535, not \"\(text)\"")
        }
        return value
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
