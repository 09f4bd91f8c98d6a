/// `lumen serve`'s settings as flags and `LUMEN_*` variables, and the one place that decides
/// which wins: a flag over its variable over the configuration file over the default.
///
/// Not swift-configuration (in the dependency graph through Hummingbird and AsyncHTTPClient), measured
/// with its 1.4.0 on this project's files: its `FileProvider<YAMLSnapshot>` refuses
/// `gateway/lumen.example.yaml` ("Unexpected non-scalar value in array at models at index: 0" —
/// the `models:` list holds mappings); `int(forKey:default:)` answers the default for
/// `HTTP_PORT=80800x` without a word, and `requiredInt` names the key, not the flag, variable and
/// file key a user can fix; and a provider only answers the keys asked for, so a misspelled file
/// key goes unnoticed (Lumen refuses it, naming the known ones). Each setting is declared once
/// here; its variable is derived from its flag (`--hold-ttl` → `LUMEN_HOLD_TTL`).
extension ServeConfiguration {
    /// A setting a flag (and its variable) can give: how its text applies, `name` being the flag.
    struct Setting {
        let flag: String
        let apply: (inout ServeConfiguration, _ value: String, _ name: String) throws -> Void

        var variable: String { "LUMEN_" + flag.dropFirst(2).uppercased().replacingOccurrences(of: "-", with: "_") }

        /// A whole number in `unit`, checked by `check`, stored at `field`.
        static func number(
            _ flag: String, unit: String, _ field: WritableKeyPath<ServeConfiguration, Int>,
            _ check: @escaping (Int, String) throws -> Int
        ) -> Setting {
            Setting(flag: flag) { configuration, value, name in
                guard let number = Int(value) else { throw ConfigurationError("\(name) must be a number of \(unit), not \"\(value)\"") }
                configuration[keyPath: field] = try check(number, name)
            }
        }

        static func text(_ flag: String, _ field: WritableKeyPath<ServeConfiguration, String>) -> Setting {
            Setting(flag: flag) { configuration, value, _ in configuration[keyPath: field] = value }
        }

        static func port(_ flag: String, _ noun: String, _ field: WritableKeyPath<ServeConfiguration, Int>) -> Setting {
            Setting(flag: flag) { configuration, value, _ in configuration[keyPath: field] = try ServeConfiguration.port(value, noun) }
        }

        /// A switch's text (a flag given is "true"; a variable `1`, `true` or `yes`).
        static func isOn(_ value: String) -> Bool { ["1", "true", "yes"].contains(value.lowercased()) }

        static func address(_ component: Component) -> Setting {
            Setting(flag: "--\(component.rawValue)-address") { configuration, value, name in
                configuration.addresses[component] = try ServeConfiguration.address(value, name)
            }
        }
    }

    /// Every setting a flag can give (`--config` aside: it names the file the rest come from).
    static var settings: [Setting] {
        [
        .text("--data-dir", \.dataDirectory),
        Setting(flag: "--database") { configuration, value, name in configuration.database = try ServeConfiguration.database(value, name) },
        .text("--http-host", \.httpHost),
        .port("--http-port", "the HTTP port", \.httpPort),
        .text("--grpc-host", \.grpcHost),
        .port("--grpc-port", "the gRPC port", \.grpcPort),
        .text("--metrics-host", \.metricsHost),
        .port("--metrics-port", "the metrics port", \.metricsPort),
        Setting(flag: "--services") { configuration, value, _ in configuration.components = try Component.parseList(value) },
        .address(.accounts), .address(.keys), .address(.ledger), .address(.registry),
        .text("--log-level", \.logLevel),
        Setting(flag: "--public-url") { configuration, value, name in configuration.publicURL = try ServeConfiguration.publicURL(value, name) },
        .number("--probe-interval", unit: "seconds", \.probeIntervalSeconds, ServeConfiguration.probeInterval),
        .number("--hold-ttl", unit: "seconds", \.holdTTLSeconds, ServeConfiguration.holdTTL),
        .number("--usage-retention-days", unit: "days", \.usageRetentionDays, ServeConfiguration.retentionDays),
        .number("--read-header-timeout", unit: "seconds", \.readHeaderTimeoutSeconds, ServeConfiguration.timeout),
        .number("--body-timeout", unit: "seconds", \.bodyTimeoutSeconds, ServeConfiguration.timeout),
        .number("--idle-timeout", unit: "seconds", \.idleTimeoutSeconds, ServeConfiguration.timeout),
        .number("--max-connections", unit: "connections", \.maxConnections, ServeConfiguration.maxConnections),
        .number("--shutdown-grace", unit: "seconds", \.shutdownGraceSeconds, ServeConfiguration.shutdownGrace),
        .number("--coins-per-usd", unit: "coins", \.coinsPerUSD, ServeConfiguration.coinsPerUSD),
        Setting(flag: "--demo") { configuration, value, _ in configuration.demo = Setting.isOn(value) },
        Setting(flag: "--tls-cert") { configuration, value, _ in configuration.security.certificate = value },
        Setting(flag: "--tls-key") { configuration, value, _ in configuration.security.key = value },
        Setting(flag: "--tls-ca") { configuration, value, _ in configuration.security.ca = value },
        Setting(flag: "--tls-require-client-cert") { configuration, value, _ in
            configuration.security.requireClientCertificate = Setting.isOn(value)
        },
        Setting(flag: "--insecure-plaintext") { configuration, value, _ in configuration.security.insecurePlaintext = Setting.isOn(value) },
        Setting(flag: "--gravatar") { configuration, value, _ in configuration.gravatar = Setting.isOn(value) },
        ]
    }

    /// The flags a setting exists for.
    public static var flags: Set<String> { Set(settings.map(\.flag)) }

    /// The configuration of `lumen serve`: the file (`file`, else `LUMEN_CONFIG`) over the
    /// defaults, then each setting from its flag in `flags` (the text the user typed, keyed by
    /// the flag, `--demo` as "true") or else its `LUMEN_*` variable. A flag with no setting is
    /// a programming error, refused like a bad value.
    public static func resolve(flags: [String: String], file: String?, environment: [String: String]) throws -> ServeConfiguration {
        if let unknown = Set(flags.keys).subtracting(Self.flags).sorted().first {
            throw ConfigurationError("no setting for the flag \(unknown)")
        }
        var configuration = try load(file: file, environment: environment)
        for setting in settings {
            if let value = flags[setting.flag] ?? environment.nonEmpty(setting.variable) {
                try setting.apply(&configuration, value, setting.flag)
            }
        }
        return configuration
    }
}
