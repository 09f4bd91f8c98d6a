import Foundation
import GRPCCore
import Logging
import LumenAPI
import RPCSupport
import ServiceLifecycle
import Synchronization

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

    private let state = Mutex((snapshot: Snapshot(), synced: false))
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

    public var isSynced: Bool { state.withLock { $0.synced } }

    /// A model by its public name.
    public func model(_ name: String) -> Lumen_Registry_V1_Model? {
        state.withLock { $0.snapshot.models[name] }
    }

    /// Every model, ordered by name.
    public var models: [Lumen_Registry_V1_Model] {
        state.withLock { $0.snapshot.models.values.sorted { $0.name < $1.name } }
    }

    /// Whether a principal of an organisation has consented to a model.
    public func hasConsent(organizationID: String, principal: Lumen_Common_V1_PrincipalRef, model: String) -> Bool {
        let key = ConsentKey(
            organizationID: organizationID, principalType: principal.type.rawValue, principalID: principal.id, model: model)
        return state.withLock { $0.snapshot.consents.contains(key) }
    }

    public func run() async throws {
        await WatchLoop.run("registry", logger: logger, onDisconnect: { self.state.withLock { $0.synced = false } }) {
            try await self.registry.watchRegistry(.init(), metadata: .bearer(self.internalToken)) { response in
                var loading: Snapshot? = Snapshot()
                for try await event in response.messages {
                    if event.type == .synced {
                        let loaded = loading ?? Snapshot()
                        loading = nil
                        self.state.withLock { $0 = (loaded, true) }
                        self.logger.debug("registry cache synced", metadata: ["models": "\(loaded.models.count)"])
                    } else if loading != nil {
                        loading?.apply(event)
                    } else {
                        self.state.withLock { $0.snapshot.apply(event) }
                    }
                }
            }
        }
    }
}
