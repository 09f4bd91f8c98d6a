import Gateway
import Logging
import UpstreamClient

/// `lumen serve`'s settings, each declared once: its flag (and, derived from it, its `LUMEN_*`
/// variable), its key in the YAML file, what its value is, its help, its bounds and where it
/// lands in `ServeConfiguration`. `lumen serve --help`, the command line, the environment, the
/// file and the check of `gateway/lumen.example.yaml` all read this table, and it decides which
/// wins: a flag over its variable over the file over the default (the field's initial value).
///
/// Not swift-configuration (in the dependency graph through Hummingbird and AsyncHTTPClient), measured
/// with its 1.4.0 on this project's files: its `FileProvider<YAMLSnapshot>` refuses
/// `gateway/lumen.example.yaml` ("Unexpected non-scalar value in array at models at index: 0" —
/// the `models:` list holds mappings); `int(forKey:default:)` answers the default for
/// `HTTP_PORT=80800x` without a word, and `requiredInt` names the key, not the flag, variable and
/// file key a user can fix; and a provider only answers the keys asked for, so a misspelled file
/// key goes unnoticed (Lumen refuses it, naming the known ones).
extension ServeConfiguration {
    /// One setting. `apply` reads its value as text — a flag's argument, a variable, or a file's
    /// scalar (`true`/`false`, a number, a list joined by commas) — `name` saying where it came from.
    public struct Setting: Sendable {
        /// `--hold-ttl`.
        public let flag: String
        /// The key in the YAML file, `hold_ttl` or `http.port`; nil: not in the file.
        public let key: String?
        /// What the value is, as help shows it (`seconds`); nil: a switch, on when given.
        public let value: String?
        /// What it does, without the variable, key and default (help adds them).
        public let help: String
        /// The default as help shows it, if it says one.
        public let shownDefault: String?
        let apply: @Sendable (inout ServeConfiguration, _ value: String, _ name: String) throws -> Void

        /// `LUMEN_HOLD_TTL` for `--hold-ttl`.
        public var variable: String { "LUMEN_" + flag.dropFirst(2).uppercased().replacingOccurrences(of: "-", with: "_") }

        init(
            _ flag: String, key: String?, value: String?, help: String, default shownDefault: String? = nil,
            apply: @escaping @Sendable (inout ServeConfiguration, String, String) throws -> Void
        ) {
            (self.flag, self.key, self.value, self.help, self.shownDefault, self.apply) = (flag, key, value, help, shownDefault, apply)
        }

        /// Text, stored as given.
        static func text(
            _ flag: String, key: String?, value: String, help: String, _ field: any WritableKeyPath<ServeConfiguration, String> & Sendable
        ) -> Setting {
            Setting(flag, key: key, value: value, help: help, default: ServeConfiguration()[keyPath: field]) { configuration, text, _ in
                configuration[keyPath: field] = text
            }
        }

        /// A whole number in `unit`, within `range` (0 meaning `zero`, when it has a meaning of its own).
        static func number(
            _ flag: String, key: String, unit: String, _ range: ClosedRange<Int>, zero: String? = nil, help: String,
            _ field: any WritableKeyPath<ServeConfiguration, Int> & Sendable
        ) -> Setting {
            Setting(flag, key: key, value: unit, help: help, default: String(ServeConfiguration()[keyPath: field])) { configuration, text, name in
                guard let number = Int(text) else { throw ConfigurationError("\(name) must be a number of \(unit), not \"\(text)\"") }
                configuration[keyPath: field] = try ServeConfiguration.bounded(number, range, unit, name, zero: zero)
            }
        }

        static func port(_ flag: String, key: String, help: String, _ field: any WritableKeyPath<ServeConfiguration, Int> & Sendable) -> Setting {
            Setting(flag, key: key, value: "port", help: help, default: String(ServeConfiguration()[keyPath: field])) { configuration, text, name in
                configuration[keyPath: field] = try ServeConfiguration.port(text, name)
            }
        }

        /// On or off: given as a flag, on; as a variable or in the file, `true`/`false`
        /// (`1`/`0`, `yes`/`no`).
        static func toggle(_ flag: String, key: String?, help: String, _ field: any WritableKeyPath<ServeConfiguration, Bool> & Sendable) -> Setting {
            Setting(flag, key: key, value: nil, help: help) { configuration, text, name in
                configuration[keyPath: field] = try Setting.isOn(text, name)
            }
        }

        static func isOn(_ text: String, _ name: String) throws -> Bool {
            switch text.lowercased() {
            case "1", "true", "yes": return true
            case "0", "false", "no": return false
            default: throw ConfigurationError("\(name) must be true or false, not \"\(text)\"")
            }
        }

        static func address(_ component: Component) -> Setting {
            Setting(
                "--\(component.rawValue)-address", key: "remote.\(component.rawValue)", value: "host:port",
                help: "Where the \(component.rawValue) service runs, when in another process."
            ) { configuration, text, name in
                configuration.addresses[component] = try ServeConfiguration.address(text, name)
            }
        }
    }

    /// Every setting, in the order help lists them (`--config` aside: it names the file the rest
    /// come from).
    public static let settings: [Setting] = [
        .text("--data-dir", key: "data_dir", value: "path", help: "Directory of the SQLite databases, created if missing.", \.dataDirectory),
        Setting(
            "--database", key: "database", value: "url",
            help: """
                A PostgreSQL URL, postgres://user@host/db (also :password, :port, ?sslmode=): the services of this \
                process keep their tables there (a schema each: accounts, conversations, keys, ledger, registry) instead of \
                SQLite in the data directory.
                """
        ) { configuration, text, name in configuration.database = try ServeConfiguration.database(text, name) },
        .text("--http-host", key: "http.host", value: "host", help: "Interface of the HTTP port (dashboard, APIs).", \.httpHost),
        .port("--http-port", key: "http.port", help: "Port of the dashboard and the APIs; 0 picks a free one.", \.httpPort),
        .text("--grpc-host", key: "grpc.host", value: "host", help: "Interface of the gRPC port.", \.grpcHost),
        .port("--grpc-port", key: "grpc.port", help: "Port of the gRPC services; 0 picks a free one.", \.grpcPort),
        .text("--metrics-host", key: "metrics.host", value: "host", help: "Interface of the metrics listener (/metrics, /healthz).", \.metricsHost),
        .port("--metrics-port", key: "metrics.port", help: "Port of the metrics listener; 0 picks a free one.", \.metricsPort),
        .number(
            "--read-header-timeout", key: "http.read_header_timeout", unit: "seconds", 1...3600,
            help: "From a request's first byte to the end of its headers; a slower client is disconnected.",
            \.readHeaderTimeoutSeconds),
        .number(
            "--body-timeout", key: "http.body_timeout", unit: "seconds", 1...3600,
            help: "From the end of a request's headers to the end of its body.", \.bodyTimeoutSeconds),
        .number(
            "--idle-timeout", key: "http.idle_timeout", unit: "seconds", 1...3600,
            help: "How long a keep-alive connection may wait for its next request.", \.idleTimeoutSeconds),
        .number(
            "--max-connections", key: "http.max_connections", unit: "connections", 1...1_000_000,
            help: "HTTP connections held at once; more are closed on arrival.", \.maxConnections),
        Setting(
            "--services", key: "services", value: "list",
            help: "Components to run here: comma-separated accounts, keys, ledger, registry, gateway, or all.", default: "all"
        ) { configuration, text, _ in configuration.components = try Component.parseList(text) },
        .address(.accounts), .address(.keys), .address(.ledger), .address(.registry),
        Setting(
            "--public-url", key: "public_url", value: "url",
            help: """
                Where people reach Lumen, such as https://lumen.example.com (behind a proxy, its public address): \
                invitation links start with it, and with https cookies are Secure and HSTS is sent.
                """, default: "the HTTP port's own address"
        ) { configuration, text, name in configuration.publicURL = try ServeConfiguration.publicURL(text, name) },
        .toggle(
            "--gravatar", key: "gravatar",
            help: "Show people's Gravatar pictures on their profile, fetched by their browsers from gravatar.com (off: initials only, nothing fetched from elsewhere).",
            \.gravatar),
        Setting(
            "--image-url-hosts", key: "image_url_hosts", value: "list",
            help: """
                Hosts whose images given by URL the gateway fetches for providers that take images inline only (Claude, \
                Gemini, Bedrock): \
                comma-separated names or addresses, *.example.com for a domain's subdomains, or * for any host at a \
                public address (never loopback, private or link-local ones). At most 5 MB an image, JPEG, PNG, GIF or \
                WebP, no redirects.
                """, default: "none: such images are refused (400)"
        ) { configuration, text, name in
            do {
                configuration.imageURLs = try HostPolicy(list: text)
            } catch {
                throw ConfigurationError("\(name): \(error)")
            }
        },
        Setting(
            "--alert-webhook-hosts", key: "alert_webhook_hosts", value: "list",
            help: """
                Hosts budget alerts' webhooks may be on: comma-separated names or addresses, *.example.com for a \
                domain's subdomains, and * for any host at a public address. Named hosts may be at private \
                addresses and take http:// too; others need https://.
                """, default: "*: any host at a public address, https only"
        ) { configuration, text, name in
            do {
                configuration.alertWebhookHosts = try HostPolicy(list: text)
            } catch {
                throw ConfigurationError("\(name): \(error)")
            }
        },
        Setting(
            "--token-sources", key: "token_sources", value: "list",
            help: """
                Bearer token sources that azure backends may name (token_source) to send an Entra ID token instead of an \
                api-key: NAME=file:/path (a file a managed identity's sidecar keeps fresh, read again when it changes) or \
                NAME=command:program arg … (run without a shell; its output is the token, kept until 5 minutes before \
                its exp), separated by commas.
                """, default: "none"
        ) { configuration, text, name in
            do {
                configuration.tokenSources = try TokenSources(list: text)
            } catch {
                throw ConfigurationError("\(name): \(error)")
            }
        },
        Setting(
            "--otlp-endpoint", key: "tracing.otlp_endpoint", value: "url",
            help: """
                Export OpenTelemetry traces to this OTLP collector, such as http://127.0.0.1:4317 (https: over TLS): \
                a span per HTTP request with its admission, hold, upstream call and settlement, across processes. \
                OTEL_* variables refine it (sampler, headers, service name).
                """, default: "none: no traces"
        ) { configuration, text, name in configuration.otlpEndpoint = try TraceExport.endpoint(text, name) },
        Setting(
            "--otlp-protocol", key: "tracing.otlp_protocol", value: "protocol",
            help: "grpc, or http/protobuf (then an endpoint without a path gets /v1/traces).", default: "grpc"
        ) { configuration, text, name in configuration.otlpProtocol = try TraceExport.WireProtocol(text, name) },
        Setting(
            "--log-level", key: "log_level", value: "level",
            help: "trace, debug, info, notice, warning, error or critical.", default: ServeConfiguration().logLevel
        ) { configuration, text, name in
            guard Logger.Level(rawValue: text.lowercased()) != nil else {
                throw ConfigurationError(
                    "\(name) must be \(Logger.Level.allCases.map(\.rawValue).joined(separator: ", ")), not \"\(text)\"")
            }
            configuration.logLevel = text.lowercased()
        },
        Setting(
            "--log-file", key: "log_file", value: "path",
            help: "Append log lines to this file (created, mode 640) instead of standard error.",
            default: "none: standard error"
        ) { configuration, text, name in
            guard !text.isEmpty else { throw ConfigurationError("\(name) needs a path") }
            configuration.logFile = text
        },
        .number(
            "--probe-interval", key: "probe_interval", unit: "seconds", 0...3600, zero: "off",
            help: "Between active health probes (GET {base_url}/models) of every upstream backend; 0: off, health then comes from requests alone.",
            \.probeIntervalSeconds),
        .number(
            "--upstream-max-connections", key: "upstream_max_connections", unit: "connections", 0...1_000_000, zero: "no cap",
            help: """
                Connections open at once to one upstream host (a provider's API); as many requests again wait for one, \
                in order, more get 503 upstream_busy with Retry-After. 0: no cap.
                """, \.upstreamMaxConnections),
        .number(
            "--hold-ttl", key: "hold_ttl", unit: "seconds", 1...86_400,
            help: "How long a request's hold lives; one never settled (the gateway died) is then settled at its estimate. Must outlast the longest request.",
            \.holdTTLSeconds),
        .number(
            "--usage-retention-days", key: "usage_retention_days", unit: "days", 0...36_500, zero: "keep forever",
            help: "Days of raw usage lines to keep; older settled lines are deleted hourly, their billing totals stay. 0: keep forever.",
            \.usageRetentionDays),
        .number(
            "--audit-retention-days", key: "audit_retention_days", unit: "days", 0...36_500, zero: "keep forever",
            help: "Days of audit log entries to keep; older ones are pruned hourly behind a checkpoint signed with --audit-signing-key, so the chain still verifies. 0: keep forever.",
            \.auditRetentionDays),
        Setting(
            "--audit-signing-key", key: "audit_signing_key", value: "path",
            help: "The Ed25519 key (32 bytes in base64) that signs the audit logs' checkpoints; created (mode 600) if missing. Default: audit-signing.key in --data-dir. Give every process of a split deployment the same file."
        ) { configuration, text, _ in configuration.auditSigningKey = text },
        .number(
            "--shutdown-grace", key: "shutdown_grace", unit: "seconds", 0...3600,
            help: "What requests in flight at SIGTERM/SIGINT may take to finish (no new ones are accepted); then they are cancelled and billed for what they produced, and the process exits.",
            \.shutdownGraceSeconds),
        .number(
            "--coins-per-usd", key: "coins_per_usd", unit: "coins", 1...1_000_000,
            help: "Coins to the dollar: the unit in which the dashboard and /api show money.", \.coinsPerUSD),
        Setting(
            "--tls-cert", key: "tls.cert", value: "pem",
            help: "PEM certificate chain of this process: the gRPC and HTTP ports then speak TLS only, and it is presented to the services this process calls."
        ) { configuration, text, _ in configuration.security.certificate = text },
        Setting("--tls-key", key: "tls.key", value: "pem", help: "PEM private key of --tls-cert.") { configuration, text, _ in
            configuration.security.key = text
        },
        Setting(
            "--tls-ca", key: "tls.ca", value: "pem",
            help: "PEM CA certificates of the deployment: calls to --<service>-address go over TLS and their certificates must chain to it (and name the address's host); with --tls-require-client-cert, so must callers' certificates."
        ) { configuration, text, _ in configuration.security.ca = text },
        Setting(
            "--tls-require-client-cert", key: "tls.require_client_cert", value: nil,
            help: "Mutual TLS: the gRPC port accepts only callers presenting a certificate chained to --tls-ca."
        ) { configuration, text, name in configuration.security.requireClientCertificate = try Setting.isOn(text, name) },
        Setting(
            "--insecure-plaintext", key: "insecure_plaintext", value: nil,
            help: "Allow plaintext HTTP and gRPC on interfaces other than loopback, and plaintext calls to services at non-loopback addresses (refused otherwise: tokens would cross the network in the clear)."
        ) { configuration, text, name in configuration.security.insecurePlaintext = try Setting.isOn(text, name) },
        .toggle(
            "--demo", key: nil,
            help: """
                Demo mode: on an empty data directory, create a demo organisation, a demo model served by the built-in \
                mock provider and an API key, and print {"api_key", "email", "management_token", "model", "password"} \
                (the dashboard's administrator) as the first line of standard output. No network needed.
                """, \.demo),
    ]

    /// The flags a setting exists for, and `--config`.
    public static var flags: Set<String> { Set(settings.map(\.flag) + ["--config"]) }

    /// The command line of `lumen serve` read against the table: `--flag value`, `--flag=value`,
    /// a switch alone; a flag given again wins over its first. Keyed by flag, a switch as "true".
    public static func flags(from arguments: [String]) throws -> [String: String] {
        let byFlag = Dictionary(uniqueKeysWithValues: settings.map { ($0.flag, $0) })
        var given: [String: String] = [:]
        var index = 0
        while index < arguments.count {
            let argument = arguments[index]
            index += 1
            guard argument.hasPrefix("--") else {
                throw ConfigurationError("unexpected argument \"\(argument)\": `lumen serve` takes options only (see --help)")
            }
            let (flag, inline) =
                argument.firstIndex(of: "=").map { (String(argument[..<$0]), Optional(String(argument[argument.index(after: $0)...]))) }
                ?? (argument, nil)
            guard flags.contains(flag) else {
                let near = flags.sorted().first { Self.distance($0, flag) <= 2 }
                throw ConfigurationError("unknown option \(flag)\(near.map { "; did you mean \($0)?" } ?? "") (see --help)")
            }
            if flag != "--config", byFlag[flag]?.value == nil {
                guard inline == nil else { throw ConfigurationError("\(flag) is a switch and takes no value") }
                given[flag] = "true"
            } else if let inline {
                given[flag] = inline
            } else {
                guard index < arguments.count, !arguments[index].hasPrefix("--") else {
                    throw ConfigurationError("\(flag) needs a value")
                }
                given[flag] = arguments[index]
                index += 1
            }
        }
        return given
    }

    /// Edits between two flags (Levenshtein), for "did you mean".
    static func distance(_ a: String, _ b: String) -> Int {
        let (a, b) = (Array(a), Array(b))
        var row = Array(0...b.count)
        for i in 1...max(a.count, 1) where !a.isEmpty {
            var previous = row[0]
            row[0] = i
            for j in stride(from: 1, through: b.count, by: 1) {
                let current = row[j]
                row[j] = min(row[j] + 1, row[j - 1] + 1, previous + (a[i - 1] == b[j - 1] ? 0 : 1))
                previous = current
            }
        }
        return row[b.count]
    }

    /// The configuration of `lumen serve`: the file (`flags["--config"]`, else `LUMEN_CONFIG`)
    /// over the defaults, then each setting from its flag in `flags` (the text the user typed,
    /// keyed by the flag, a switch as "true") or else its `LUMEN_*` variable.
    public static func resolve(flags: [String: String], environment: [String: String]) throws -> ServeConfiguration {
        if let unknown = Set(flags.keys).subtracting(Self.flags).sorted().first {
            throw ConfigurationError("no setting for the flag \(unknown)")
        }
        var configuration = try load(file: flags["--config"], environment: environment)
        for setting in settings {
            if let value = flags[setting.flag] {
                try setting.apply(&configuration, value, setting.flag)
            } else if let value = environment.nonEmpty(setting.variable) {
                try setting.apply(&configuration, value, setting.variable)
            }
        }
        return configuration
    }

    /// The settings as `lumen serve --help` lists them, wrapped to `width` columns.
    public static func help(width: Int = 78) -> String {
        var lines = ["SETTINGS (the flag, its variable, its key in the --config file, the default):", ""]
        let column = 26
        for setting in [Setting("--config", key: nil, value: "file", help: "The YAML configuration file (see gateway/lumen.example.yaml).") { _, _, _ in }]
            + settings
        {
            let label = "  " + setting.flag + (setting.value.map { " <\($0)>" } ?? "")
            var trailer = [setting.flag == "--config" ? "LUMEN_CONFIG" : setting.variable + (setting.value == nil ? "=1" : "")]
            if let key = setting.key { trailer.append(key) }
            if let shown = setting.shownDefault { trailer.append("default \(shown)") }
            let words = (setting.help + " (" + trailer.joined(separator: ", ") + ")").split(separator: " ")
            var line = label.count + 2 <= column ? label.padding(toLength: column, withPad: " ", startingAt: 0) : label
            if label.count + 2 > column {
                lines.append(line)
                line = String(repeating: " ", count: column)
            }
            var empty = true
            for word in words {
                if !empty && line.count + 1 + word.count > width {
                    lines.append(line)
                    line = String(repeating: " ", count: column)
                    empty = true
                }
                line += (empty ? "" : " ") + word
                empty = false
            }
            lines.append(line)
        }
        return lines.joined(separator: "\n")
    }
}
