import Storage

/// A model as stored: its row and its backends' rows, by id.
struct StoredModel: Sendable, Equatable {
    var record: ModelRecord
    var backends: [BackendRecord]
}

struct BackendKey: Sendable, Hashable {
    var model: String
    var id: String
}

struct ConsentKey: Sendable, Hashable {
    var organizationID: String
    var principalType: Int
    var principalID: String
    var model: String
}

/// Where the registry keeps its tables: one SQLite file (`SQLiteRegistryStore`) or the
/// `registry` schema of a PostgreSQL database (`PostgresRegistryStore`). The rules are the
/// service's; a store reads and writes rows.
///
/// Each method is one transaction. Writes are serialised, and a write's `then` runs once it has
/// committed and before the next write starts: events published there reach watchers in commit
/// order, so a gateway never applies an older state after a newer one.
protocol RegistryStorage: Sendable {
    /// Models by name, with their backends by id; only the enabled ones unless `includeDisabled`.
    func models(includeDisabled: Bool) async throws -> [StoredModel]
    func model(named name: String) async throws -> StoredModel?
    /// Every model and every consent, read at one point in time (a watch's snapshot).
    func snapshot() async throws -> (models: [StoredModel], consents: [ConsentRecord])
    /// Inserts or replaces a model (its backends stay); the model after it.
    func save(_ model: ModelRecord, then: @escaping @Sendable (StoredModel) -> Void) async throws -> StoredModel
    /// Inserts or replaces a backend of an existing model, `make` building it from the one it
    /// replaces; nil when the model does not exist (nothing written).
    func saveBackend(
        _ key: BackendKey, make: @escaping @Sendable (BackendRecord?) throws -> BackendRecord,
        then: @escaping @Sendable (StoredModel) -> Void
    ) async throws -> (backend: BackendRecord, model: StoredModel)?
    /// Removes a backend; its model after it, nil when there was no such backend.
    func removeBackend(_ key: BackendKey, then: @escaping @Sendable (StoredModel) -> Void) async throws -> StoredModel?
    /// Applies `change` to each listed backend that exists (`index` into `keys`), writes those it
    /// changed (it answers true), and hands the models whose backends changed, by name, to `then`.
    func updateBackends(
        _ keys: [BackendKey], change: @escaping @Sendable (_ index: Int, inout BackendRecord) -> Bool,
        then: @escaping @Sendable ([StoredModel]) -> Void
    ) async throws
    /// The models a principal has consented to.
    func consentedModels(organizationID: String, principalType: Int, principalID: String) async throws -> Set<String>
    /// Records `consent` unless the same one exists (answered then, `then` not called); `check`
    /// sees the model first and may refuse; nil when the model does not exist.
    func grantConsent(
        _ consent: ConsentRecord, check: @escaping @Sendable (ModelRecord) throws -> Void,
        then: @escaping @Sendable (ConsentRecord) -> Void
    ) async throws -> ConsentRecord?
    /// Removes a consent; whether there was one (`then` runs only then).
    func revokeConsent(_ key: ConsentKey, then: @escaping @Sendable () -> Void) async throws -> Bool
    /// An organisation's consents (one principal's, when given), newest first, then by model.
    func consents(organizationID: String, principalType: Int?, principalID: String?) async throws -> [ConsentRecord]
}
