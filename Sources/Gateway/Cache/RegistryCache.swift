import Foundation
import GRPCCore
import Logging
import LumenAPI
import RPCSupport
import SharedRules
import ServiceLifecycle

/// The gateway's copy of the model registry (models, backends, health, consents), kept fresh
/// by `WatchRegistry`, so that routing and access checks need no RPC per request.
public final class RegistryCache: Service, Sendable {
    /// Who consented to what, keyed by organisation, principal type, principal id and model.
    struct ConsentKey: Hashable {
        var organizationID: String
        var principalType: Int
        var principalID: String
        var model: String

        init(_ consent: Lumen_Registry_V1_Consent) {
            self.init(
                organizationID: consent.organizationID, principalType: consent.principal.type.rawValue,
                principalID: consent.principal.id, model: consent.model)
        }

        init(organizationID: String, principalType: Int, principalID: String, model: String) {
            self.organizationID = organizationID
            self.principalType = principalType
            self.principalID = principalID
            self.model = model
        }
    }

    struct Snapshot {
        var models: [String: Lumen_Registry_V1_Model] = [:]
        var consents: Set<ConsentKey> = []

        mutating func apply(_ event: Lumen_Registry_V1_RegistryEvent) {
            switch event.type {
            case .modelUpsert: models[event.model.name] = event.model
            case .consentGranted: consents.insert(ConsentKey(event.consent))
            case .consentRevoked: consents.remove(ConsentKey(event.consent))
            default: break
            }
        }
    }

    private let replica = Replica(empty: Snapshot())
    private let registry: any Lumen_Registry_V1_ModelRegistryService.ClientProtocol
    private let internalToken: String
    private let logger: Logger

    public init(
        registry: any Lumen_Registry_V1_ModelRegistryService.ClientProtocol, internalToken: String, logger: Logger
    ) {
        self.registry = registry
        self.internalToken = internalToken
        self.logger = logger
    }

    public var isSynced: Bool { replica.isSynced }

    /// A model by its public name.
    public func model(_ name: String) -> Lumen_Registry_V1_Model? {
        replica.read { snapshot, _ in snapshot.models[name] }
    }

    /// Every model, ordered by name.
    public var models: [Lumen_Registry_V1_Model] {
        replica.read { snapshot, _ in snapshot.models.values.sorted { $0.name < $1.name } }
    }

    /// Whether a principal of an organisation has consented to a model.
    public func hasConsent(organizationID: String, principal: Lumen_Common_V1_PrincipalRef, model: String) -> Bool {
        let key = ConsentKey(
            organizationID: organizationID, principalType: principal.type.rawValue, principalID: principal.id, model: model)
        return replica.read { snapshot, _ in snapshot.consents.contains(key) }
    }

    public func run() async throws {
        await replica.run("registry", logger: logger) {
            try await self.registry.watchRegistry(.init(), metadata: .bearer(self.internalToken)) { response in
                try await self.replica.follow(response.messages, isMarker: { $0.type == .synced }) { snapshot, event in
                    snapshot.apply(event)
                }
            }
        }
    }
}
