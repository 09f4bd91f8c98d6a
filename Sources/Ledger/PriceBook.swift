import GRPCCore
import Logging
import LumenAPI
import RPCSupport
import ServiceLifecycle
import SharedRules

/// The registry's models as the ledger follows them (`WatchRegistry`): the ledger alone turns
/// tokens into money, at these prices, so that no gateway replica can name a price.
///
/// A model the watch has not brought yet (created a moment ago) is asked of the registry once
/// and kept. A settlement prices at the prices its hold was placed at (a hold read back after
/// a restart, at the prices now).
public final class PriceBook: Service, Sendable {
    private let replica = Replica<[String: Lumen_Registry_V1_Model]>(empty: [:])
    private let registry: (any Lumen_Registry_V1_ModelRegistryService.ClientProtocol)?
    private let internalToken: String
    private let logger: Logger

    /// Prices followed from `registry`, called with the internal token; `known` are held from
    /// the start (tests).
    public init(
        registry: any Lumen_Registry_V1_ModelRegistryService.ClientProtocol, internalToken: String, logger: Logger,
        known: [Lumen_Registry_V1_Model] = []
    ) {
        self.registry = registry
        self.internalToken = internalToken
        self.logger = logger
        replica.update { snapshot in for model in known { snapshot[model.name] = model } }
    }

    /// Fixed models, for tools that run the ledger alone (benchmarks).
    public init(fixed models: [Lumen_Registry_V1_Model]) {
        self.registry = nil
        self.internalToken = ""
        self.logger = Logger(label: "lumen.ledger.prices")
        replica.update { snapshot in for model in models { snapshot[model.name] = model } }
    }

    /// The model as held now, without waiting.
    func cached(_ name: String) -> Lumen_Registry_V1_Model? {
        replica.read { models, _ in models[name] }
    }

    /// The model `name`: as held, or asked of the registry once; NOT_FOUND `model_not_found`
    /// when the registry has no such model.
    func model(_ name: String) async throws -> Lumen_Registry_V1_Model {
        if let model = cached(name) { return model }
        guard let registry else { throw Self.unknown(name) }
        let model: Lumen_Registry_V1_Model
        do {
            model = try await registry.getModel(.with { $0.name = name }, metadata: .bearer(internalToken)).model
        } catch let error as RPCError where error.code == .notFound {
            throw Self.unknown(name)
        } catch let error as RPCError {
            throw ServiceError(.unavailable, "prices_unavailable", "the ledger cannot read \(name)'s prices now: \(error.message)")
        }
        replica.update { $0[name] = $0[name] ?? model }
        return model
    }

    static func unknown(_ name: String) -> ServiceError {
        ServiceError(.notFound, "model_not_found", "the ledger knows no model \(name)", param: "logical_model")
    }

    public func run() async throws {
        guard let registry else { return }
        await replica.run("prices", logger: logger) {
            try await registry.watchRegistry(.init(), metadata: .bearer(self.internalToken)) { response in
                try await self.replica.follow(response.messages, isMarker: { $0.type == .synced }) { models, event in
                    if event.type == .modelUpsert { models[event.model.name] = event.model }
                }
            }
        }
    }
}
