import ArgumentParser
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import HTTPTypes
import HummingbirdTesting
import Logging
import LumenAPI
import LumenTesting
import NIOCore
import RPCSupport
import SharedRules
import Testing

@testable import LumenServer
@testable import lumen

/// `lumen serve` wirings, each over real sockets on loopback: the gRPC port speaks HTTP/2,
/// and a split deployment's gateway reaches its services over HTTP/2 too.
@Suite("Wiring over real HTTP/2")
struct WiringTests {
    @Test("All-in-one: the gRPC port serves the keys service to management tokens, and the facade works")
    func allInOne() async throws {
        let directory = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let tenant = try await DataDirectory.bootstrap(
            organization: "Acme", adminEmail: "admin@acme.test", adminName: "", in: .directory(directory))
        let other = try await DataDirectory.bootstrap(
            organization: "Globex", adminEmail: "admin@globex.test", adminName: "", in: .directory(directory))
        var configuration = ServeConfiguration()
        configuration.dataDirectory = directory
        configuration.httpPort = 0
        configuration.grpcPort = 0
        try await withDeployment(configuration, internalToken: nil) { listeners in
            let grpcPort = try #require(listeners.grpc)
            try await withHTTP2Client(port: grpcPort) { client in
                let keys = Lumen_Keys_V1_KeysService.Client(wrapping: client)
                let created = try await keys.createKey(.with { $0.name = "over h2" }, metadata: .bearer(tenant.managementToken))
                #expect(created.secret.hasPrefix("sk-"))
                let listed = try await keys.listKeys(.init(), metadata: .bearer(tenant.managementToken))
                #expect(listed.keys.map(\.id) == [created.key.id])

                await expectCode(.unauthenticated) { _ = try await keys.listKeys(.init(), metadata: [:]) }
                await expectCode(.unauthenticated) { _ = try await keys.listKeys(.init(), metadata: .bearer("it-guessing-the-internal-token")) }
                await expectCode(.permissionDenied) {
                    _ = try await keys.listKeys(.with { $0.organizationID = other.organizationID }, metadata: .bearer(tenant.managementToken))
                }
                let ledger = Lumen_Ledger_V1_LedgerService.Client(wrapping: client)
                let balance = try await ledger.getOrganizationBalance(.init(), metadata: .bearer(tenant.managementToken))
                #expect(balance.mode == .unspecified && balance.balanceMicros == 0)
                await expectCode(.permissionDenied) {
                    _ = try await ledger.checkInvariant(.init(), metadata: .bearer(tenant.managementToken))
                }
            }
            let httpPort = try #require(listeners.http)
            try await TestClient.withClient(host: "127.0.0.1", port: httpPort) { client in
                var headers = HTTPFields()
                headers[.authorization] = "Bearer \(tenant.managementToken)"
                let response = try await client.get("/v1/management/api-keys", headers: headers)
                #expect(response.status == .ok)
                #expect(String(buffer: response.body ?? ByteBuffer()).contains("over h2"))
                // Traffic figures are not served to whoever reaches the API port…
                let metrics = try await client.get("/metrics")
                #expect(metrics.status == .notFound)
                #expect(metrics.headers[HTTPField.Name("x-request-id")!]?.hasPrefix("req_") == true)
                let trace = try await client.execute(TestClient.Request("/v1/models", method: .trace))
                #expect(trace.status == .methodNotAllowed)
            }
            // …but on the metrics listener (loopback by default).
            try await TestClient.withClient(host: "127.0.0.1", port: try #require(listeners.metrics)) { client in
                let metrics = try await client.get("/metrics")
                #expect(metrics.status == .ok)
                #expect(String(buffer: metrics.body ?? ByteBuffer()).contains("lumen_gateway_cache_synced"))
                #expect(try await client.get("/healthz").status == .ok)
            }
        }
    }

    @Test("Split: keys, the other services and the gateway in three deployments, joined over HTTP/2 by the internal token")
    func split() async throws {
        let directory = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let tenant = try await DataDirectory.bootstrap(
            organization: "Acme", adminEmail: "admin@acme.test", adminName: "", in: .directory(directory))
        let internalToken = "it-split-" + UUID().uuidString
        var keysOnly = ServeConfiguration()
        keysOnly.dataDirectory = directory
        keysOnly.grpcPort = 0
        keysOnly.components = [.keys]
        let base = keysOnly
        try await withDeployment(keysOnly, internalToken: internalToken) { keysListeners in
            let keysAddress = "127.0.0.1:\(try #require(keysListeners.grpc))"
            var rest = base
            rest.components = [.accounts, .ledger, .registry]
            rest.addresses = [.keys: keysAddress]
            try await withDeployment(rest, internalToken: internalToken) { restListeners in
                let restAddress = "127.0.0.1:\(try #require(restListeners.grpc))"
                var gateway = ServeConfiguration()
                gateway.httpPort = 0
                gateway.components = [.gateway]
                gateway.addresses = [.keys: keysAddress, .accounts: restAddress, .ledger: restAddress, .registry: restAddress]
                try await withDeployment(gateway, internalToken: internalToken) { gatewayListeners in
                    #expect(gatewayListeners.grpc == nil)
                    let httpPort = try #require(gatewayListeners.http)
                    try await TestClient.withClient(host: "127.0.0.1", port: httpPort) { client in
                        var headers = HTTPFields()
                        headers[.authorization] = "Bearer \(tenant.managementToken)"
                        let created = try await client.post(
                            "/v1/management/api-keys", headers: headers, body: ByteBuffer(string: #"{"name": "split"}"#))
                        #expect(created.status == .ok)
                        let list = try await client.get("/v1/management/api-keys", headers: headers)
                        #expect(String(buffer: list.body ?? ByteBuffer()).contains("split"))
                        let bad = try await client.get("/v1/management/api-keys", headers: [.authorization: "Bearer mt-nope"])
                        #expect(bad.status == .unauthorized)
                    }
                }
                // The accounts process resolves a management token through the keys process.
                try await withHTTP2Client(port: try #require(restListeners.grpc)) { client in
                    let accounts = Lumen_Accounts_V1_AccountsService.Client(wrapping: client)
                    let organization = try await accounts.getOrganization(.init(), metadata: .bearer(tenant.managementToken))
                    #expect(organization.organization.id == tenant.organizationID)
                    let viaInternal = try await accounts.getOrganization(
                        .with { $0.organizationID = tenant.organizationID }, metadata: .bearer(internalToken))
                    #expect(viaInternal.organization.name == "Acme")
                    await expectCode(.unauthenticated) {
                        _ = try await accounts.getOrganization(.init(), metadata: .bearer("it-wrong-internal-token"))
                    }
                }
            }
        }
    }

    @Test("The configuration's models reach the registry at start, prices exact to the micro-dollar")
    func catalogAtStart() async throws {
        let directory = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let tenant = try await DataDirectory.bootstrap(
            organization: "Acme", adminEmail: "admin@acme.test", adminName: "", in: .directory(directory))
        var configuration = ServeConfiguration()
        configuration.dataDirectory = directory
        configuration.httpPort = 0
        configuration.grpcPort = 0
        configuration.components = Set(Component.services)
        configuration.catalog = try ModelCatalog.parse(
            yaml: """
                models:
                  - name: gpt-4o-mini
                    vendor: openai
                    prices: {input: 0.15, cached_input: 0.075, output: 0.6}
                    max_output_tokens: 16384
                    max_attachment_input_tokens: 2000
                    backends:
                      - {id: primary, provider: openai, base_url: "http://127.0.0.1:9/v1", credential_env: OPENAI_API_KEY}
                      - {id: local, provider: mock, weight: 3, byok: true}
                  - name: embed
                    vendor: lumen
                    scenes: [embedding]
                    prices: {input: 0.02}
                    max_output_tokens: 1
                """, path: "test.yaml")
        try await withDeployment(configuration, internalToken: "it-catalog-test-token-0123456789") { listeners in
            try await withHTTP2Client(port: try #require(listeners.grpc)) { client in
                let registry = Lumen_Registry_V1_ModelRegistryService.Client(wrapping: client)
                let models = try await registry.listModels(.init(), metadata: .bearer(tenant.managementToken)).models
                #expect(models.map(\.name) == ["embed", "gpt-4o-mini"])
                let gpt = try #require(models.last)
                #expect(gpt.prices.inputPerMillionMicros == 150_000)
                #expect(gpt.prices.cachedInputPerMillionMicros == 75_000)
                #expect(gpt.prices.outputPerMillionMicros == 600_000)
                #expect(gpt.backends.map(\.id) == ["local", "primary"])
                #expect(gpt.backends.first?.weight == 3)
                #expect(gpt.backends.map(\.byok) == [true, false])
                #expect(gpt.maxOutputTokens == 16_384 && gpt.maxAttachmentInputTokens == 2_000)
                #expect(models.first?.maxAttachmentInputTokens == 8_192)
                #expect(gpt.status == .ok)
                #expect(models.first?.scenes == [.embedding])
            }
        }
    }

    @Test("A bad models section is refused with the place and the reason")
    func catalogErrors() throws {
        let cases = [
            "models: {name: x}",
            "models:\n  - {vendor: v, max_output_tokens: 10}",
            "models:\n  - {name: m, max_output_tokens: 10, prices: {input: -1}}",
            "models:\n  - {name: m, max_output_tokens: 10, prices: {input: 0.0000001}}",
            "models:\n  - {name: m, max_output_tokens: 10, prices: {inptu: 1}}",
            "models:\n  - {name: m, max_output_tokens: 10, scenes: [chatting]}",
            "models:\n  - {name: m, max_output_tokens: 10, backends: [{provider: grpc}]}",
            "models:\n  - {name: m, max_output_tokens: 10, backends: [{provider: openai, byok: maybe}]}",
            "models:\n  - {name: m, max_output_tokens: 10, api_key: sk-123}",
            "models:\n  - {name: m, max_output_tokens: 0}",
        ]
        for yaml in cases {
            #expect(throws: ConfigurationError.self, "\(yaml)") { try ModelCatalog.parse(yaml: yaml, path: "lumen.yaml") }
        }
        // Every model says how much one request may produce: its hold counts that much.
        #expect(try ModelCatalog.parse(yaml: "models:\n  - {name: m, max_output_tokens: 10}", path: "lumen.yaml").models.count == 1)
        for (yaml, says) in [
            ("models:\n  - {name: m}", "lumen.yaml: model m.max_output_tokens is required"),
            ("models:\n  - {name: m, default_max_output_tokens: 10}", "default_max_output_tokens was renamed max_output_tokens"),
        ] {
            let error = #expect(throws: ConfigurationError.self) { try ModelCatalog.parse(yaml: yaml, path: "lumen.yaml") }
            #expect(error.map { "\($0)" }?.contains(says) == true, "\(String(describing: error))")
        }
    }

    @Test("Settings are declared once: the command line, the variables, the file and the example file all read the one table")
    func settingsTable() throws {
        // The command line: --flag value, --flag=value, switches alone; mistakes named.
        let flags = try ServeConfiguration.flags(from: ["--hold-ttl", "60", "--http-port=0", "--demo", "--config", "x.yaml"])
        #expect(flags == ["--hold-ttl": "60", "--http-port": "0", "--demo": "true", "--config": "x.yaml"])
        func refusal(_ arguments: [String]) -> String {
            do {
                _ = try ServeConfiguration.flags(from: arguments)
                return "accepted"
            } catch { return "\(error)" }
        }
        #expect(refusal(["--hold-tt", "5"]) == "unknown option --hold-tt; did you mean --hold-ttl? (see --help)")
        #expect(refusal(["--hold-ttl"]) == "--hold-ttl needs a value")
        #expect(refusal(["--hold-ttl", "--demo"]) == "--hold-ttl needs a value")
        #expect(refusal(["--demo=false"]) == "--demo is a switch and takes no value")
        #expect(try ServeConfiguration.flags(from: ["--hold-ttl", "5", "--hold-ttl", "6"]) == ["--hold-ttl": "6"])
        #expect(refusal(["9090"]) == "unexpected argument \"9090\": `lumen serve` takes options only (see --help)")
        // A switch's variable is true or false, never silently off.
        #expect(try ServeConfiguration.resolve(flags: [:], environment: ["LUMEN_GRAVATAR": "yes"]).gravatar)
        #expect(throws: ConfigurationError.self) { try ServeConfiguration.resolve(flags: [:], environment: ["LUMEN_DEMO": "maybe"]) }
        #expect(throws: ConfigurationError.self) { try ServeConfiguration.resolve(flags: ["--log-level": "loud"], environment: [:]) }
        // Every setting has its variable and, but for --demo, its key; the example file shows each key and loads.
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let example = root.appendingPathComponent("gateway/lumen.example.yaml").path
        let text = try String(contentsOfFile: example, encoding: .utf8)
        // Each line without its comment mark and indentation: `#   port: 8080` reads `port: 8080`.
        let lines = text.split(separator: "\n").map { $0.drop { $0 == "#" || $0 == " " } }
        for setting in ServeConfiguration.settings {
            #expect(setting.variable.hasPrefix("LUMEN_"))
            guard let key = setting.key else {
                #expect(setting.flag == "--demo")
                continue
            }
            let parts = key.split(separator: ".")
            let shown = lines.contains { $0.hasPrefix(parts.last! + ":") } && lines.contains { $0.hasPrefix(parts.first! + ":") }
            #expect(shown, "gateway/lumen.example.yaml does not show \(key)")
        }
        // The README's table names each setting, with its variable.
        let readme = try String(contentsOf: root.appendingPathComponent("README.md"), encoding: .utf8)
        for setting in ServeConfiguration.settings {
            #expect(readme.contains("`\(setting.flag)") && readme.contains("`\(setting.variable)"), "README misses \(setting.flag)")
        }
        let loaded = try ServeConfiguration.load(file: example, environment: [:])
        #expect(!loaded.catalog.models.isEmpty)
        // The help lists every setting with its variable, key and default.
        let help = ServeConfiguration.help()
        for setting in ServeConfiguration.settings {
            #expect(help.contains(setting.flag) && help.replacingOccurrences(of: "\n", with: " ").contains(setting.variable))
        }
        #expect(help.split(separator: "\n").allSatisfy { $0.count <= 78 })
    }

    @Test("A file that cannot be used is named, with the line of a syntax error and the known settings of a typo")
    func fileErrors() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("lumen-\(UUID())").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        func serveRefusal(_ yaml: String?) throws -> String {
            let file = directory + "/lumen.yaml"
            try? FileManager.default.removeItem(atPath: file)
            if let yaml { try yaml.write(toFile: file, atomically: true, encoding: .utf8) }
            let error = #expect(throws: ConfigurationError.self) { try Serve.parse(["--config", file]).resolve(environment: [:]) }
            return error?.description.replacingOccurrences(of: directory + "/", with: "") ?? ""
        }
        #expect(try serveRefusal(nil) == "cannot read the configuration file lumen.yaml: no such file")
        #expect(try serveRefusal("http:\n  port: [8080\n").hasPrefix(
            "lumen.yaml:3:1: not valid YAML: did not find expected ',' or ']' (while parsing a flow sequence at 2:9)"))
        #expect(try serveRefusal("http: {prot: 1}") == """
            lumen.yaml: unknown setting http.prot; known: http.body_timeout, http.host, http.idle_timeout, \
            http.max_connections, http.port, http.read_header_timeout
            """)
        #expect(try serveRefusal("a: 1\na: 2\n").contains("lumen.yaml:1:1: not valid YAML: a key appears twice in one mapping: a"))
        // `lumen admin models apply --file`: a file problem, not a wrong command line (no usage follows).
        for (yaml, says) in [
            (nil, "cannot read the models file models.yaml: no such file"),
            ("models: [\n", "models.yaml:2:1: not valid YAML"), ("http: {}", "models.yaml has no `models:` list"),
        ] as [(String?, String)] {
            let file = directory + "/models.yaml"
            try? FileManager.default.removeItem(atPath: file)
            if let yaml { try yaml.write(toFile: file, atomically: true, encoding: .utf8) }
            let error = #expect(throws: FileProblem.self) { try ModelCatalog.load(file: file) }
            #expect(error?.description.replacingOccurrences(of: directory + "/", with: "").hasPrefix(says) == true, "\(String(describing: error))")
            #expect(error.flatMap { CommandFailure($0) }.map { if case .refused = $0 { true } else { false } } == true)
        }
        // A failure the server does not explain (UNKNOWN, no reason): said so, never an empty message.
        #expect(CommandFailure(RPCError(code: .unknown, message: "")) == .refused(
            "the server failed this call (internal_error, gRPC unknown); its log names the cause"))
    }

    @Test("The file's sso section: each organisation's provider read as the accounts service takes it; a wrong entry named")
    func singleSignOnSection() throws {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("lumen-\(UUID()).yaml").path
        defer { try? FileManager.default.removeItem(atPath: file) }
        try """
            sso:
              - organization: Acme
                issuer: https://login.microsoftonline.com/tenant/v2.0
                client_id: 0b7f
                client_secret_env: ACME_OIDC_SECRET
                allowed_domains: [acme.com]
                admin_claim: roles
                admin_value: Lumen.Admin
                groups_claim: groups
                group_map: {"6f1c": Research}
                create_people: true
                passwords: false
            """.write(toFile: file, atomically: true, encoding: .utf8)
        let loaded = try Serve.parse(["--config", file]).resolve(environment: [:]).singleSignOn.entries
        let entry = try #require(loaded.first)
        #expect(loaded.count == 1 && entry.organization == "Acme")
        #expect(entry.sso.issuer == "https://login.microsoftonline.com/tenant/v2.0" && entry.sso.clientID == "0b7f")
        #expect(entry.sso.clientSecretEnv == "ACME_OIDC_SECRET" && entry.sso.allowedDomains == ["acme.com"])
        #expect(entry.sso.groupMap == ["6f1c": "Research"] && entry.sso.createPeople && !entry.sso.passwordsAllowed)
        try "sso:\n  - {issuer: https://idp.test, client_id: x}\n".write(toFile: file, atomically: true, encoding: .utf8)
        do {
            _ = try Serve.parse(["--config", file]).resolve(environment: [:])
            Issue.record("an entry without its organisation was read")
        } catch let error as ConfigurationError {
            #expect(error.description.hasSuffix("sso[0].organization is required (its name or org_… id)"))
        }
        try "sso:\n  - {organization: Acme, issuer: https://idp.test, client_id: x, colour: red}\n".write(
            toFile: file, atomically: true, encoding: .utf8)
        #expect(throws: ConfigurationError.self) { try Serve.parse(["--config", file]).resolve(environment: [:]) }
    }

    @Test("Configuration: flags beat variables beat the file; bad values are refused with a message")
    func configuration() throws {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("lumen-\(UUID()).yaml").path
        defer { try? FileManager.default.removeItem(atPath: file) }
        try """
            data_dir: /var/lib/lumen
            http: {host: 0.0.0.0, port: 8000}
            grpc: {port: 9000}
            services: [keys, accounts]
            remote: {ledger: "ledger.internal:9090"}
            probe_interval: 15
            usage_retention_days: 400
            hold_ttl: 1800
            """.write(toFile: file, atomically: true, encoding: .utf8)
        // The admin commands that work on the data directory find it as `serve` does.
        let bootstrap = try Bootstrap.parse(["--org", "Acme", "--admin-email", "a@acme.test", "--config", file])
        #expect(try bootstrap.data.resolve(environment: [:]) == "/var/lib/lumen")
        #expect(try bootstrap.data.resolve(environment: ["LUMEN_DATA_DIR": "/srv/lumen"]) == "/srv/lumen")
        #expect(try Bootstrap.parse(["--org", "A", "--admin-email", "a@a.test"]).data.resolve(environment: ["LUMEN_CONFIG": file]) == "/var/lib/lumen")
        #expect(try OperatorTokenCreate.parse(["--config", file, "--data-dir", "d"]).data.resolve(environment: [:]) == "d")
        #expect(try LedgerCheckCommand.parse([]).data.resolve(environment: [:]) == "./data")
        #expect(throws: ConfigurationError.self) { try LedgerCheckCommand.parse(["--config", file + ".missing"]).data.resolve(environment: [:]) }
        let serve = try Serve.parse(["--config", file, "--http-port", "8081"])
        let resolved = try serve.resolve(environment: ["LUMEN_HTTP_PORT": "7000", "LUMEN_GRPC_PORT": "7001"])
        #expect(resolved.dataDirectory == "/var/lib/lumen")
        #expect(resolved.httpHost == "0.0.0.0")
        #expect(resolved.httpPort == 8081)
        #expect(resolved.grpcPort == 7001)
        #expect(resolved.components == [.keys, .accounts])
        #expect(resolved.addresses == [.ledger: "ledger.internal:9090"])
        #expect(resolved.probeIntervalSeconds == 15)
        #expect(try serve.resolve(environment: ["LUMEN_PROBE_INTERVAL": "0"]).probeIntervalSeconds == 0)
        #expect(throws: ConfigurationError.self) { try Serve.parse(["--probe-interval", "7200"]).resolve(environment: [:]) }
        #expect(throws: ConfigurationError.self) { try Serve.parse([]).resolve(environment: ["LUMEN_PROBE_INTERVAL": "soon"]) }
        #expect(resolved.usageRetentionDays == 400)
        #expect(resolved.holdTTLSeconds == 1800)
        #expect(try Serve.parse(["--hold-ttl", "5"]).resolve(environment: ["LUMEN_HOLD_TTL": "60"]).holdTTLSeconds == 5)
        #expect(try Serve.parse([]).resolve(environment: [:]).holdTTLSeconds == 900)
        #expect(throws: ConfigurationError.self) { try Serve.parse(["--hold-ttl", "0"]).resolve(environment: [:]) }
        #expect(try serve.resolve(environment: ["LUMEN_USAGE_RETENTION_DAYS": "30"]).usageRetentionDays == 30)
        #expect(try Serve.parse([]).resolve(environment: [:]).usageRetentionDays == 0)
        #expect(throws: ConfigurationError.self) { try Serve.parse(["--usage-retention-days", "36501"]).resolve(environment: [:]) }
        #expect(throws: ConfigurationError.self) { try Serve.parse([]).resolve(environment: ["LUMEN_USAGE_RETENTION_DAYS": "a year"]) }

        #expect(throws: ConfigurationError.self) { try Serve.parse(["--services", "keys,bogus"]).resolve(environment: [:]) }
        #expect(throws: ConfigurationError.self) { try Serve.parse(["--keys-address", "nohost"]).resolve(environment: [:]) }
        #expect(throws: ConfigurationError.self) { try Serve.parse([]).resolve(environment: ["LUMEN_HTTP_PORT": "70000"]) }
        try "htp: {port: 1}".write(toFile: file, atomically: true, encoding: .utf8)
        #expect(throws: ConfigurationError.self) { try Serve.parse(["--config", file]).resolve(environment: [:]) }
        // Every option of `serve` is a setting with its variable, and each reaches the configuration.
        let everything = try Serve.parse([
            "--data-dir", "d", "--http-host", "::1", "--http-port", "1", "--grpc-host", "::2", "--grpc-port", "2",
            "--metrics-host", "::3", "--metrics-port", "3", "--read-header-timeout", "4", "--body-timeout", "5",
            "--idle-timeout", "6", "--max-connections", "7", "--services", "gateway", "--keys-address", "k:1",
            "--accounts-address", "a:1", "--ledger-address", "l:1", "--registry-address", "r:1", "--log-level", "debug",
            "--probe-interval", "8", "--hold-ttl", "9", "--usage-retention-days", "10", "--shutdown-grace", "11", "--coins-per-usd", "12",
            "--demo", "--tls-cert", "c.pem", "--tls-key", "k.pem", "--tls-ca", "ca.pem", "--tls-require-client-cert",
            "--insecure-plaintext", "--database", "postgres://lumen@db.internal/lumen", "--public-url", "https://lumen.example.com/",
            "--gravatar", "--image-url-hosts", "assets.example.com, *", "--alert-webhook-hosts", "10.0.0.7",
            "--token-sources", "entra=file:/run/azure/token, az=command:az account get-access-token -o tsv",
            "--audit-retention-days", "13", "--audit-signing-key", "/etc/lumen/audit.key",
            "--otlp-endpoint", "https://otel.internal:4318", "--otlp-protocol", "http", "--upstream-max-connections", "14",
            "--log-file", "/var/log/lumen.log",
        ])
        #expect(Set(try everything.flags.keys).union(["--config"]) == ServeConfiguration.flags)
        let all = try everything.resolve(environment: [:])
        let numbers: [Int] = [
            all.httpPort, all.grpcPort, all.metricsPort, all.readHeaderTimeoutSeconds, all.bodyTimeoutSeconds, all.idleTimeoutSeconds,
            all.maxConnections, all.probeIntervalSeconds, all.holdTTLSeconds, all.usageRetentionDays, all.shutdownGraceSeconds,
            all.coinsPerUSD,
        ]
        #expect(numbers == Array(1...12))
        #expect(all.auditRetentionDays == 13 && all.auditSigningKeyPath == "/etc/lumen/audit.key")
        #expect(all.upstreamMaxConnections == 14 && ServeConfiguration().upstreamMaxConnections == 1_000)
        #expect(try Serve.parse(["--data-dir", "/srv/lumen"]).resolve(environment: [:]).auditSigningKeyPath == "/srv/lumen/audit-signing.key")
        #expect(throws: ConfigurationError.self) { try Serve.parse(["--audit-retention-days", "-1"]).resolve(environment: [:]) }
        #expect([all.dataDirectory, all.httpHost, all.grpcHost, all.metricsHost, all.logLevel] == ["d", "::1", "::2", "::3", "debug"])
        #expect(all.logFile == "/var/log/lumen.log" && ServeConfiguration().logFile.isEmpty)
        #expect(all.components == [.gateway] && all.demo)
        #expect(all.addresses == [.keys: "k:1", .accounts: "a:1", .ledger: "l:1", .registry: "r:1"])
        #expect([all.security.certificate, all.security.key, all.security.ca] == ["c.pem", "k.pem", "ca.pem"])
        #expect(all.security.requireClientCertificate && all.security.insecurePlaintext && all.gravatar)
        #expect(try !Serve.parse([]).resolve(environment: [:]).gravatar)
        #expect(all.imageURLs.hosts == ["assets.example.com"] && all.imageURLs.anyPublicHost)
        #expect(try Serve.parse([]).resolve(environment: [:]).imageURLs.isOff)
        #expect(all.alertWebhookHosts.hosts == ["10.0.0.7"] && !all.alertWebhookHosts.anyPublicHost)
        #expect(try Serve.parse([]).resolve(environment: [:]).alertWebhookHosts.anyPublicHost)
        #expect(all.tokenSources.sources == ["entra": .file("/run/azure/token"), "az": .command(["az", "account", "get-access-token", "-o", "tsv"])])
        // Traces: off unless an endpoint is given; grpc by default; an endpoint is a collector's URL.
        #expect(all.otlpEndpoint == "https://otel.internal:4318" && all.otlpProtocol == .http)
        let plain = try Serve.parse([]).resolve(environment: [:])
        #expect(plain.otlpEndpoint == nil && plain.otlpProtocol == .grpc)
        for wrong in [["--otlp-endpoint", "otel:4317"], ["--otlp-endpoint", "ftp://otel"], ["--otlp-protocol", "thrift"]] {
            #expect(throws: ConfigurationError.self) { try Serve.parse(wrong).resolve(environment: [:]) }
        }
        for wrong in ["entra", "entra=file:relative/path", "entra=ftp://x", "a b=file:/x", "x=file:/a, x=file:/b"] {
            #expect(throws: ConfigurationError.self) { try Serve.parse(["--token-sources", wrong]).resolve(environment: [:]) }
        }
        #expect(throws: ConfigurationError.self) { try Serve.parse(["--image-url-hosts", "https://x.test/a.png"]).resolve(environment: [:]) }
        #expect(all.database == "postgres://lumen@db.internal/lumen")
        #expect(all.publicURL == "https://lumen.example.com" && all.effectivePublicURL == "https://lumen.example.com")
        // Without one, the HTTP port's own address (https with TLS on it).
        #expect(try Serve.parse(["--http-port", "8443", "--tls-cert", "c", "--tls-key", "k"]).resolve(environment: [:]).effectivePublicURL
            == "https://127.0.0.1:8443")
        #expect(try Serve.parse([]).resolve(environment: ["LUMEN_PUBLIC_URL": "http://10.1.2.3:8080"]).publicURL == "http://10.1.2.3:8080")
        for bad in ["lumen.example.com", "ftp://x.test", "https://x.test/lumen", "https://x.test/?a=1", "https://u:p@x.test", "https://"] {
            #expect(throws: ConfigurationError.self, "\(bad)") { try Serve.parse(["--public-url", bad]).resolve(environment: [:]) }
        }
        #expect(try Serve.parse([]).resolve(environment: ["LUMEN_DATABASE": "postgresql://u@h:5433/d"]).database == "postgresql://u@h:5433/d")
        #expect(try Serve.parse([]).resolve(environment: [:]).database == nil)
        #expect {
            try Serve.parse(["--database", "postgres://u:hunter2@h"]).resolve(environment: [:])
        } throws: { error in
            "\(error)".contains("--database") && "\(error)".contains("names no database") && !"\(error)".contains("hunter2")
        }
        let fromVariables = try Serve.parse([]).resolve(environment: [
            "LUMEN_MAX_CONNECTIONS": "12", "LUMEN_REGISTRY_ADDRESS": "r:2", "LUMEN_DEMO": "1", "LUMEN_SHUTDOWN_GRACE": "0",
        ])
        #expect(fromVariables.maxConnections == 12 && fromVariables.addresses == [.registry: "r:2"])
        #expect(fromVariables.demo && fromVariables.shutdownGraceSeconds == 0)
        #expect(try !Serve.parse([]).resolve(environment: ["LUMEN_DEMO": "no"]).demo)

        // TLS from the file and the variables; plaintext off loopback refused before anything starts.
        try """
            grpc: {host: 10.0.0.5}
            tls: {cert: /etc/lumen/cert.pem, key: /etc/lumen/key.pem, ca: /etc/lumen/ca.pem, require_client_cert: true}
            insecure_plaintext: false
            """.write(toFile: file, atomically: true, encoding: .utf8)
        let secured = try Serve.parse(["--config", file]).resolve(environment: ["LUMEN_TLS_CA": "/srv/ca.pem"])
        #expect(secured.security.certificate == "/etc/lumen/cert.pem" && secured.security.key == "/etc/lumen/key.pem")
        #expect(secured.security.ca == "/srv/ca.pem" && secured.security.requireClientCertificate && !secured.security.insecurePlaintext)
        try "tls: {cert: a.pem, verify: never}".write(toFile: file, atomically: true, encoding: .utf8)
        #expect(throws: ConfigurationError.self) { try Serve.parse(["--config", file]).resolve(environment: [:]) }
        try "insecure_plaintext: sure".write(toFile: file, atomically: true, encoding: .utf8)
        #expect(throws: ConfigurationError.self) { try Serve.parse(["--config", file]).resolve(environment: [:]) }
        func refusal(_ arguments: [String], _ environment: [String: String] = [:]) throws -> String? {
            let configuration = try Serve.parse(arguments).resolve(environment: environment)
            do {
                try configuration.security.check(configuration)
                return nil
            } catch let error as ConfigurationError {
                return error.description
            }
        }
        #expect(try refusal([]) == nil)
        #expect(try refusal(["--http-host", "127.0.0.2", "--grpc-host", "::1", "--keys-address", "localhost:1"]) == nil)
        #expect(try refusal(["--http-host", "0.0.0.0"])?.hasPrefix("the HTTP port on 0.0.0.0 would carry API keys and tokens in plaintext") == true)
        #expect(try refusal(["--grpc-host", "192.168.1.4"])?.contains("--insecure-plaintext") == true)
        #expect(try refusal(["--services", "gateway", "--ledger-address", "ledger.internal:9090"])?.contains("--tls-ca") == true)
        #expect(try refusal(["--http-host", "0.0.0.0", "--grpc-host", "0.0.0.0", "--insecure-plaintext"]) == nil)
        #expect(try refusal(["--metrics-host", "0.0.0.0"]) == nil, "metrics carry no secret")
        #expect(try refusal([], ["LUMEN_HTTP_HOST": "10.0.0.1", "LUMEN_INSECURE_PLAINTEXT": "1"]) == nil)
        #expect(try refusal(["--tls-key", "k.pem"])?.hasPrefix("--tls-key needs --tls-cert") == true)
        #expect(try refusal(["--tls-cert", "/nonexistent.pem", "--tls-key", "k.pem"])?.contains("cannot read PEM certificates from /nonexistent.pem") == true)

        // Splitting needs a shared internal token.
        #expect(throws: ConfigurationError.self) { try InternalToken.resolve(nil, configuration: resolved) }
        #expect(try InternalToken.resolve(nil, configuration: ServeConfiguration()).count > 32)
    }
}

// MARK: - Helpers

func temporaryDirectory() -> String {
    FileManager.default.temporaryDirectory.appendingPathComponent("lumen-wiring-\(UUID())").path
}

extension [Deployment.Listener] {
    var http: Int? {
        for case .http(_, let port) in self { return port }
        return nil
    }
    var grpc: Int? {
        for case .grpc(_, let port) in self { return port }
        return nil
    }
    var metrics: Int? {
        for case .metrics(_, let port) in self { return port }
        return nil
    }
}

/// Runs a deployment until `body` is done; `body` gets its bound listeners.
func withDeployment(
    _ configuration: ServeConfiguration, internalToken: String?,
    _ body: @Sendable ([Deployment.Listener]) async throws -> Void
) async throws {
    var configuration = configuration
    configuration.metricsPort = 0
    var logger = Logger(label: "wiring-test")
    logger.logLevel = .critical
    let (stream, continuation) = AsyncStream<Deployment.Listener>.makeStream()
    let deployment = Deployment(
        configuration: configuration,
        internalToken: try InternalToken.resolve(internalToken, configuration: configuration),
        logger: logger,
        onListening: { continuation.yield($0) })
    let expected = (configuration.components.contains(.gateway) ? 2 : 0)  // HTTP and metrics
        + (configuration.components.subtracting([.gateway]).isEmpty ? 0 : 1)
    try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask {
            defer { continuation.finish() }
            try await deployment.run()
        }
        var listeners: [Deployment.Listener] = []
        for await listener in stream {
            listeners.append(listener)
            if listeners.count == expected { break }
        }
        try #require(listeners.count == expected, "the deployment stopped before listening")
        do {
            try await body(listeners)
        } catch {
            group.cancelAll()
            throw error
        }
        group.cancelAll()
        while let result = await group.nextResult() {
            if case .failure(let error) = result, !(error is CancellationError) { _ = error }
        }
    }
}

func withHTTP2Client(port: Int, _ body: @Sendable (GRPCClient<HTTP2ClientTransport.Posix>) async throws -> Void) async throws {
    try await withGRPCClient(
        transport: try .http2NIOPosix(target: .ipv4(address: "127.0.0.1", port: port), transportSecurity: .plaintext)
    ) { client in
        try await body(client)
    }
}

func expectCode(_ code: RPCError.Code, sourceLocation: SourceLocation = #_sourceLocation, _ body: () async throws -> Void) async {
    do {
        try await body()
        Issue.record("expected \(code)", sourceLocation: sourceLocation)
    } catch let error as RPCError {
        #expect(error.code == code, sourceLocation: sourceLocation)
    } catch {
        Issue.record("unexpected \(error)", sourceLocation: sourceLocation)
    }
}
