import Foundation
import GRPCCore
import Logging
import LumenAPI
import RPCSupport

/// `lumen serve --demo`: everything a newcomer needs for a first chat completion, on the
/// built-in mock provider, with no network and no configuration.
enum Demo {
    static let organization = "Demo"
    static let model = "lumen-demo"

    struct Credentials: Encodable {
        var apiKey: String
        var managementToken: String
        var model: String

        enum CodingKeys: String, CodingKey {
            case apiKey = "api_key"
            case managementToken = "management_token"
            case model
        }
    }

    /// On an empty data directory: creates the demo organisation, model and key, and prints
    /// their credentials as one JSON line on standard output. Otherwise only makes sure the
    /// demo model exists.
    static func setUp(services: [any RegistrableRPCService], internalToken token: String, logger: Logger) async throws {
        let credentials = try await withLocalServices(services, internalToken: token) { client in
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
                organization: organization, adminEmail: "admin@demo.lumen.invalid", adminName: "Demo admin",
                accounts: accounts, keys: keys, internalToken: token)
            let key = try await keys.createKey(
                .with {
                    $0.organizationID = tenant.organizationID
                    $0.name = "Demo key"
                    $0.createdByUserID = tenant.adminUserID
                }, metadata: .bearer(token))
            return Credentials(apiKey: key.secret, managementToken: tenant.managementToken, model: model)
        }
        guard let credentials else {
            logger.notice(
                "demo: the data directory is already set up; its keys were printed when it was created (start on an empty --data-dir for new ones)")
            return
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        FileHandle.standardOutput.write(try encoder.encode(credentials) + Data("\n".utf8))
    }
}
