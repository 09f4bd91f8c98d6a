import Foundation
import GRPCCore
import Logging
import LumenAPI
import RPCSupport
import SharedRules

/// `lumen serve --demo`: everything a newcomer needs for a first chat completion, on the
/// built-in mock provider, with no network and no configuration.
enum Demo {
    static let organization = "Demo"
    static let model = "lumen-demo"
    static let adminEmail = "admin@demo.lumen.invalid"

    struct Credentials: Codable, Equatable {
        var apiKey: String
        var managementToken: String
        var model: String
        /// The demo administrator's sign-in for the dashboard (absent in a demo.json written
        /// before people could sign in).
        var email: String?
        var password: String?

        enum CodingKeys: String, CodingKey {
            case apiKey = "api_key"
            case managementToken = "management_token"
            case model, email, password
        }
    }

    /// Where the demo keeps its credentials: `demo.json` in the data directory, mode 0600.
    static func credentialsPath(_ dataDirectory: String) -> String {
        (dataDirectory as NSString).appendingPathComponent("demo.json")
    }

    /// On an empty data directory: creates the demo organisation, model and key and keeps
    /// their credentials in `demo.json`; on a directory the demo set up before, reads them
    /// back. Either way prints them as one JSON line on standard output (the first line) and
    /// returns them. On a directory set up otherwise, only makes sure the demo model exists.
    static func setUp(
        services: [any RegistrableRPCService], internalToken token: String, dataDirectory: String, logger: Logger
    ) async throws -> Credentials? {
        let path = credentialsPath(dataDirectory)
        let created = try await withLocalServices(services, internalToken: token) { client in
            let accounts = Lumen_Accounts_V1_AccountsService.Client(wrapping: client)
            let keys = Lumen_Keys_V1_KeysService.Client(wrapping: client)
            let registry = Lumen_Registry_V1_ModelRegistryService.Client(wrapping: client)
            _ = try await registry.upsertModel(
                .with {
                    $0.model = .with {
                        $0.name = model
                        $0.vendor = "lumen"
                        // Every endpoint: the mock answers each as an upstream would.
                        $0.scenes = [.chat, .embedding, .image, .audio, .translation, .rerank]
                        $0.enabled = true
                        // The echo is never longer than the request: a request's hold counts at most this much output.
                        $0.maxOutputTokens = 1024
                        $0.description_p = "Lumen's built-in echo model, for trying the gateway without an upstream."
                        $0.prices = .with {
                            $0.inputPerMillionMicros = 1_000_000
                            $0.outputPerMillionMicros = 2_000_000
                        }
                    }
                }, metadata: .bearer(token))
            _ = try await registry.upsertBackend(
                .with {
                    $0.backend = .with {
                        $0.model = model
                        $0.id = "mock"
                        $0.provider = .mock
                    }
                }, metadata: .bearer(token))
            let existing = try await accounts.listOrganizations(.init(), metadata: .bearer(token)).organizations
            guard existing.isEmpty else { return nil as Credentials? }
            let tenant = try await OrganizationBootstrap.run(
                organization: organization, adminEmail: adminEmail, adminName: "Demo admin",
                accounts: accounts, keys: keys, internalToken: token)
            let password = Identifier.secret(count: 16)
            _ = try await accounts.setPassword(
                .with {
                    $0.organizationID = tenant.organizationID
                    $0.userID = tenant.adminUserID
                    $0.password = password
                }, metadata: .bearer(token))
            let key = try await keys.createKey(
                .with {
                    $0.organizationID = tenant.organizationID
                    $0.owner = .user(tenant.adminUserID)  // the administrator's own: on their profile
                    $0.name = "Demo key"
                    $0.createdByUserID = tenant.adminUserID
                }, metadata: .bearer(token))
            return Credentials(
                apiKey: key.secret, managementToken: tenant.managementToken, model: model, email: adminEmail, password: password)
        }
        let credentials: Credentials
        if let created {
            credentials = created
            try keep(credentials, at: path)
        } else if let kept = try? JSONDecoder().decode(Credentials.self, from: Data(contentsOf: URL(fileURLWithPath: path))) {
            credentials = kept
        } else {
            logger.notice(
                "demo: the data directory was set up without --demo (no demo.json); start on an empty --data-dir for demo credentials")
            return nil
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        FileHandle.standardOutput.write(try encoder.encode(credentials) + Data("\n".utf8))
        return credentials
    }

    /// Writes `demo.json`, readable by this user alone from its first byte.
    private static func keep(_ credentials: Credentials, at path: String) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
        let bytes = Array(try encoder.encode(credentials) + Data("\n".utf8))
        let descriptor = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else {
            throw ConfigurationError("cannot write \(path): \(String(cString: strerror(errno)))")
        }
        defer { _ = close(descriptor) }
        _ = fchmod(descriptor, 0o600)
        let written = bytes.withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
        guard written == bytes.count else {
            throw ConfigurationError("cannot write \(path): \(String(cString: strerror(errno)))")
        }
    }

    /// The credentials again, last and framed, once the server listens: what a person looks
    /// for after the first start, below every log line. On standard output, after the JSON
    /// line: secrets never go to standard error, where the logs are.
    static func announce(_ credentials: Credentials, httpHost: String, httpPort: Int, tls: Bool, dataDirectory: String) {
        let host = httpHost == "0.0.0.0" || httpHost == "::" ? "127.0.0.1" : httpHost
        let base = "\(tls ? "https" : "http")://\(host):\(httpPort)"
        let head = [
            "Lumen is running (demo mode). Your credentials:",
            "",
            "  API key           \(credentials.apiKey)",
            "  management token  \(credentials.managementToken)",
            "  model             \(credentials.model)",
        ]
        var signIn: [String] = []
        if let email = credentials.email, let password = credentials.password {
            signIn = [
                "  dashboard sign-in \(email)",
                "  password          \(password)",
            ]
        }
        let rest = [
            "",
            "Try it from another shell (the OpenAI SDKs read the same variables):",
            "  export OPENAI_BASE_URL=\(base)/v1",
            "  export OPENAI_API_KEY=\(credentials.apiKey)",
            "  curl $OPENAI_BASE_URL/chat/completions \\",
            "    -H \"Authorization: Bearer $OPENAI_API_KEY\" \\",
            "    -d '{\"model\":\"\(credentials.model)\",\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}]}'",
            "",
            "Kept in \(credentialsPath(dataDirectory)), the same on every restart.",
            "Ctrl-C stops the server.",
        ]
        let lines = head + signIn + rest
        let width = lines.map(\.count).max() ?? 0
        let rule = String(repeating: "═", count: width + 2)
        var text = "\n╔\(rule)╗\n"
        for line in lines {
            text += "║ \(line)\(String(repeating: " ", count: width - line.count)) ║\n"
        }
        text += "╚\(rule)╝\n"
        LogSetup.flush()  // the lines logged so far above it, not after it
        FileHandle.standardOutput.write(Data(text.utf8))
    }
}
