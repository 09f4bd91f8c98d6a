import Foundation
import GRDB
import GRPCCore
import Logging
import LumenAPI
import RPCSupport
import SharedRules
import Storage

/// The model registry: logical models, their backends and health, access and consents.
///
/// Models are deployment-wide; consents belong to an organisation. Every change is
/// published on `WatchRegistry`, so that gateways route from memory.
public struct ModelRegistryService: Sendable {
    let store: RegistryStore
    let events = EventHub<Lumen_Registry_V1_RegistryEvent>()
    let health: BackendHealthPolicy
    let clock: WallClock
    let logger: Logger
    /// Where the registry asks whether a consent's principal (a user, a client) exists.
    let directory: (any PrincipalDirectory)?

    /// Opens (and migrates) the registry database at `location`. With a `directory`, a
    /// principal named by a person or a management token must exist in the organisation.
    public init(
        location: ServiceDatabase.Location, health: BackendHealthPolicy = .init(), clock: WallClock = .system,
        directory: (any PrincipalDirectory)? = nil, logger: Logger
    ) throws {
        self.store = try RegistryStore(location: location)
        self.health = health
        self.clock = clock
        self.directory = directory
        self.logger = logger
    }

    func loadModel(named name: String, _ db: Database) throws -> Lumen_Registry_V1_Model {
        guard let record = try ModelRecord.fetchOne(db, key: name) else { throw RegistryError.modelNotFound(name) }
        return try message(record, db)
    }

    func message(_ record: ModelRecord, _ db: Database) throws -> Lumen_Registry_V1_Model {
        let backends = try BackendRecord.filter(Column("model") == record.name).order(Column("id")).fetchAll(db)
        let states = backends.map(\.state)
        return .with {
            $0.name = record.name
            $0.vendor = record.vendor
            $0.scenes = record.scenes.map { Lumen_Common_V1_Scene(rawValue: $0) ?? .unspecified }
            $0.prices = .with {
                $0.inputPerMillionMicros = record.inputPerMillionMicros
                $0.cachedInputPerMillionMicros = record.cachedInputPerMillionMicros
                $0.outputPerMillionMicros = record.outputPerMillionMicros
                $0.perRequestMicros = record.perRequestMicros
            }
            $0.consentRequired = record.consentRequired
            $0.enabled = record.enabled
            $0.defaultMaxOutputTokens = record.defaultMaxOutputTokens
            $0.allowedGroupIds = record.allowedGroupIDs
            $0.blockedGroupIds = record.blockedGroupIDs
            $0.description_p = record.description
            $0.status = BackendHealthPolicy.status(enabled: record.enabled, backends: states)
            $0.backends = backends.map(\.message)
        }
    }

    func allModels(includeDisabled: Bool, _ db: Database) throws -> [Lumen_Registry_V1_Model] {
        var query = ModelRecord.order(Column("name"))
        if !includeDisabled { query = query.filter(Column("enabled") == true) }
        return try query.fetchAll(db).map { try message($0, db) }
    }

    /// Publishes a model's new state once the transaction of `db` commits: on the writer, so
    /// watchers get events in commit order and never apply an older state after a newer one.
    func publish(_ model: Lumen_Registry_V1_Model, afterCommit db: Database) {
        publish(.with {
            $0.type = .modelUpsert
            $0.model = model
        }, afterCommit: db)
    }

    func publish(_ event: Lumen_Registry_V1_RegistryEvent, afterCommit db: Database) {
        db.afterNextTransaction { _ in events.publish(event) }
    }

    /// A person acts for themselves and the clients they manage; the organisation is its
    /// administrators'.
    static func requireActing(for principal: Lumen_Common_V1_PrincipalRef, to action: String) throws {
        if principal.type == .organization { try Caller.requireAdmin(to: action) }
        try Caller.requireActing(for: principal, to: action)
    }

    static func principal(_ principal: Lumen_Common_V1_PrincipalRef, organizationID: String) throws -> Lumen_Common_V1_PrincipalRef {
        switch principal.type {
        case .user, .client:
            guard !principal.id.isEmpty else { throw RegistryError.invalidPrincipal("principal.id is required") }
            return principal
        case .organization:
            return .with {
                $0.type = .organization
                $0.id = organizationID
            }
        default:
            throw RegistryError.invalidPrincipal("a principal is a user, a client or the organisation")
        }
    }
}

extension BackendRecord {
    var state: BackendHealthPolicy.State {
        .init(
            health: Lumen_Registry_V1_BackendHealth(rawValue: health) ?? .unspecified,
            consecutiveFailures: consecutiveFailures, circuitOpenUntil: circuitOpenUntil)
    }

    var message: Lumen_Registry_V1_Backend {
        .with {
            $0.id = id
            $0.model = model
            $0.provider = Lumen_Registry_V1_ProviderKind(rawValue: provider) ?? .unspecified
            $0.baseURL = baseURL
            $0.credentialEnv = credentialEnv
            $0.upstreamModel = upstreamModel
            $0.weight = Int32(weight)
            $0.timeoutMs = Int32(timeoutMs)
            $0.health = Lumen_Registry_V1_BackendHealth(rawValue: health) ?? .unspecified
            $0.consecutiveFailures = Int32(consecutiveFailures)
            if let circuitOpenUntil { $0.circuitOpenUntil = .init(millis: circuitOpenUntil) }
            $0.problem = problem
        }
    }
}

extension ConsentRecord {
    var message: Lumen_Registry_V1_Consent {
        .with {
            $0.organizationID = organizationID
            $0.principal = .with {
                $0.type = Lumen_Common_V1_PrincipalType(rawValue: principalType) ?? .unspecified
                $0.id = principalID
            }
            $0.model = model
            $0.grantedByUserID = grantedByUserID
            $0.createdAt = .init(millis: createdAt)
        }
    }
}

extension ModelRegistryService: Lumen_Registry_V1_ModelRegistryService.SimpleServiceProtocol {
    public func listModels(
        request: Lumen_Registry_V1_ListModelsRequest, context: ServerContext
    ) async throws -> Lumen_Registry_V1_ListModelsResponse {
        _ = try Caller.require()
        let models = try await store.writer.read { try allModels(includeDisabled: request.includeDisabled, $0) }
        return .with { $0.models = models }
    }

    public func getModel(
        request: Lumen_Registry_V1_GetModelRequest, context: ServerContext
    ) async throws -> Lumen_Registry_V1_GetModelResponse {
        _ = try Caller.require()
        let model = try await store.writer.read { try loadModel(named: request.name, $0) }
        return .with { $0.model = model }
    }

    public func upsertModel(
        request: Lumen_Registry_V1_UpsertModelRequest, context: ServerContext
    ) async throws -> Lumen_Registry_V1_UpsertModelResponse {
        try Caller.requireOperator()
        let record = try ModelRules.record(request.model, now: clock.nowMillis)
        let model = try await store.writer.write { db in
            try record.save(db)
            let model = try message(record, db)
            publish(model, afterCommit: db)
            return model
        }
        logger.info("model upserted", metadata: ["model": "\(model.name)"])
        return .with { $0.model = model }
    }

    public func upsertBackend(
        request: Lumen_Registry_V1_UpsertBackendRequest, context: ServerContext
    ) async throws -> Lumen_Registry_V1_UpsertBackendResponse {
        try Caller.requireOperator()
        let backend = try await store.writer.write { db in
            guard try ModelRecord.exists(db, key: request.backend.model) else {
                throw RegistryError.modelNotFound(request.backend.model)
            }
            let existing = try BackendRecord.fetchOne(db, key: ["model": request.backend.model, "id": request.backend.id])
            let record = try ModelRules.record(request.backend, keeping: existing)
            try record.save(db)
            publish(try loadModel(named: record.model, db), afterCommit: db)
            return record.message
        }
        logger.info("backend upserted", metadata: ["model": "\(backend.model)", "backend": "\(backend.id)"])
        return .with { $0.backend = backend }
    }

    public func removeBackend(
        request: Lumen_Registry_V1_RemoveBackendRequest, context: ServerContext
    ) async throws -> Lumen_Registry_V1_RemoveBackendResponse {
        try Caller.requireOperator()
        try await store.writer.write { db in
            guard try BackendRecord.deleteOne(db, key: ["model": request.model, "id": request.backendID]) else {
                throw RegistryError.backendNotFound(request.model, request.backendID)
            }
            publish(try loadModel(named: request.model, db), afterCommit: db)
        }
        return .init()
    }

    public func getModelAccess(
        request: Lumen_Registry_V1_GetModelAccessRequest, context: ServerContext
    ) async throws -> Lumen_Registry_V1_GetModelAccessResponse {
        let organizationID = try Caller.organization(request.organizationID)
        let principal = try Self.principal(request.principal, organizationID: organizationID)
        try await Caller.requireExists(principal, organizationID: organizationID, param: "principal", in: directory)
        try Self.requireActing(for: principal, to: "see model access")
        let groups = Set(request.groupIds)
        let (models, consented) = try await store.writer.read { db in
            let models = try allModels(includeDisabled: request.includeDisabled, db)
            let consented = try String.fetchSet(
                db,
                sql: "SELECT model FROM consents WHERE organization_id = ? AND principal_type = ? AND principal_id = ?",
                arguments: [organizationID, principal.type.rawValue, principal.id])
            return (models, consented)
        }
        return .with {
            $0.access = models.map { model in
                .with {
                    $0.model = model.name
                    $0.status = model.status
                    $0.level = ModelAccessPolicy.level(of: model, groups: groups, consented: consented.contains(model.name))
                }
            }
        }
    }

    public func grantConsent(
        request: Lumen_Registry_V1_GrantConsentRequest, context: ServerContext
    ) async throws -> Lumen_Registry_V1_GrantConsentResponse {
        let organizationID = try Caller.organization(request.organizationID)
        let principal = try Self.principal(request.principal, organizationID: organizationID)
        try await Caller.requireExists(principal, organizationID: organizationID, param: "principal", in: directory)
        try Self.requireActing(for: principal, to: "consent")
        let grantedBy = request.grantedByUserID.isEmpty ? (Caller.current?.userID ?? "") : request.grantedByUserID
        let now = clock.nowMillis
        let consent = try await store.writer.write { db in
            guard let model = try ModelRecord.fetchOne(db, key: request.model) else {
                throw RegistryError.modelNotFound(request.model)
            }
            guard model.consentRequired else { throw RegistryError.consentNotRequired(model.name) }
            let key: [String: any DatabaseValueConvertible] = [
                "organization_id": organizationID, "principal_type": principal.type.rawValue,
                "principal_id": principal.id, "model": model.name,
            ]
            if let existing = try ConsentRecord.fetchOne(db, key: key) { return existing }
            let record = ConsentRecord(
                organizationID: organizationID, principalType: principal.type.rawValue, principalID: principal.id,
                model: model.name, grantedByUserID: grantedBy, createdAt: now)
            try record.insert(db)
            publish(.with {
                $0.type = .consentGranted
                $0.consent = record.message
            }, afterCommit: db)
            return record
        }
        return .with { $0.consent = consent.message }
    }

    public func revokeConsent(
        request: Lumen_Registry_V1_RevokeConsentRequest, context: ServerContext
    ) async throws -> Lumen_Registry_V1_RevokeConsentResponse {
        let organizationID = try Caller.organization(request.organizationID)
        let principal = try Self.principal(request.principal, organizationID: organizationID)
        try await Caller.requireExists(principal, organizationID: organizationID, param: "principal", in: directory)
        try Self.requireActing(for: principal, to: "revoke consents")
        try await store.writer.write { db in
            let removed = try ConsentRecord.deleteOne(
                db,
                key: [
                    "organization_id": organizationID, "principal_type": principal.type.rawValue,
                    "principal_id": principal.id, "model": request.model,
                ])
            guard removed else { return }
            publish(.with {
                $0.type = .consentRevoked
                $0.consent = .with {
                    $0.organizationID = organizationID
                    $0.principal = principal
                    $0.model = request.model
                }
            }, afterCommit: db)
        }
        return .init()
    }

    public func listConsents(
        request: Lumen_Registry_V1_ListConsentsRequest, context: ServerContext
    ) async throws -> Lumen_Registry_V1_ListConsentsResponse {
        let organizationID = try Caller.organization(request.organizationID)
        let principal = request.hasPrincipal ? try Self.principal(request.principal, organizationID: organizationID) : nil
        if let principal {
            try await Caller.requireExists(principal, organizationID: organizationID, param: "principal", in: directory)
            try Self.requireActing(for: principal, to: "see consents")
        } else {
            try Caller.requireAdmin(to: "list every consent of the organisation")
        }
        let records = try await store.writer.read { db in
            var query = ConsentRecord.filter(Column("organization_id") == organizationID)
            if let principal {
                query = query.filter(Column("principal_type") == principal.type.rawValue && Column("principal_id") == principal.id)
            }
            return try query.order(Column("created_at").desc, Column("model")).fetchAll(db)
        }
        return .with { $0.consents = records.map(\.message) }
    }

    public func getModelStatus(
        request: Lumen_Registry_V1_GetModelStatusRequest, context: ServerContext
    ) async throws -> Lumen_Registry_V1_GetModelStatusResponse {
        _ = try Caller.require()
        let models = try await store.writer.read { try allModels(includeDisabled: true, $0) }
        return .with { $0.models = models }
    }

    public func reportBackendHealth(
        request: Lumen_Registry_V1_ReportBackendHealthRequest, context: ServerContext
    ) async throws -> Lumen_Registry_V1_ReportBackendHealthResponse {
        try Caller.requireInternal()
        let now = clock.nowMillis
        let policy = health
        try await store.writer.write { db in
            var changedModels = Set<String>()
            for report in request.reports where report.successes > 0 || report.failures > 0 || report.hasProblem {
                guard var record = try BackendRecord.fetchOne(db, key: ["model": report.model, "id": report.backendID]) else {
                    continue
                }
                if report.hasProblem && report.problem != record.problem {
                    // Bounded: words from a gateway, not a document.
                    record.problem = String(report.problem.prefix(500))
                    if !record.problem.isEmpty {
                        logger.notice(
                            "backend misconfigured",
                            metadata: ["model": "\(record.model)", "backend": "\(record.id)", "problem": "\(record.problem)"])
                    }
                    try record.update(db)
                    changedModels.insert(record.model)
                }
                guard report.successes > 0 || report.failures > 0 else { continue }
                let observed = report.hasObservedAt ? min(report.observedAt.millis, now) : now
                let next = policy.apply(
                    successes: Int(max(0, report.successes)), failures: Int(max(0, report.failures)),
                    to: record.state, now: observed)
                guard next != record.state else { continue }
                if next.health != record.state.health {
                    logger.notice(
                        "backend health changed",
                        metadata: ["model": "\(record.model)", "backend": "\(record.id)", "health": "\(next.health)"])
                }
                record.health = next.health.rawValue
                record.consecutiveFailures = next.consecutiveFailures
                record.circuitOpenUntil = next.circuitOpenUntil
                try record.update(db)
                changedModels.insert(record.model)
            }
            for name in changedModels.sorted() { publish(try loadModel(named: name, db), afterCommit: db) }
        }
        return .init()
    }

    public func watchRegistry(
        request: Lumen_Registry_V1_WatchRegistryRequest,
        response: RPCWriter<Lumen_Registry_V1_RegistryEvent>,
        context: ServerContext
    ) async throws {
        try Caller.requireInternal()
        try await events.serve(
            to: response,
            snapshot: {
                let (models, consents) = try await store.writer.read { db in
                    (try allModels(includeDisabled: true, db), try ConsentRecord.fetchAll(db))
                }
                return models.map { model in .with { $0.type = .modelUpsert; $0.model = model } }
                    + consents.map { consent in .with { $0.type = .consentGranted; $0.consent = consent.message } }
            },
            synced: .with { $0.type = .synced })
    }
}
