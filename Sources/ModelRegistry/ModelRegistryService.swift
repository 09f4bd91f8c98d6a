import Audit
import Foundation
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
    /// The deployment's audit signing key: it signs the checkpoint of the entries pruned past
    /// retention (`pruneAudit`) and `VerifyAuditLog` checks a checkpoint with it. nil: never pruned.
    public var auditSigner: AuditSigner?
    let events = EventHub<Lumen_Registry_V1_RegistryEvent>()
    let health: BackendHealthPolicy
    let clock: WallClock
    let logger: Logger
    /// Where the registry asks whether a consent's principal (a user, a client) exists.
    let directory: (any PrincipalDirectory)?

    /// Opens (and migrates) the registry database at `location` (SQLite). With a `directory`,
    /// a principal named by a person or a management token must exist in the organisation.
    public init(
        location: ServiceDatabase.Location, health: BackendHealthPolicy = .init(), clock: WallClock = .system,
        directory: (any PrincipalDirectory)? = nil, logger: Logger
    ) throws {
        self.init(
            store: try RegistryStore(location: location), health: health, clock: clock, directory: directory, logger: logger)
    }

    /// The registry's tables, opened (and migrated) ahead of the service, for a caller that
    /// builds its services synchronously.
    public struct Store: Sendable {
        let storage: RegistryStore
    }

    /// Opens (and migrates) the registry's tables at `location`: a SQLite file, or the
    /// `registry` schema of a PostgreSQL database.
    public static func openStore(_ location: StoreLocation, logger: Logger) async throws -> Store {
        Store(storage: try await RegistryStore(location, logger: logger))
    }

    /// Walks the registry's audit log in `store` (`lumen admin audit verify`).
    public static func verifyAudit(_ store: Store, signer: AuditSigner?) async throws -> AuditVerification {
        try await store.storage.verifyAudit(signer: signer)
    }

    /// Prunes the audit entries older than `retentionDays` behind a signed checkpoint; how many
    /// went (none without a signer or a retention).
    public func pruneAudit(retentionDays: Int) async throws -> Int64 {
        try await store.pruneAudit(olderThan: retentionDays, signer: auditSigner, now: clock.nowMillis)
    }


    /// The registry on tables opened with `openStore`.
    public init(
        store: Store, health: BackendHealthPolicy = .init(), clock: WallClock = .system,
        directory: (any PrincipalDirectory)? = nil, logger: Logger
    ) {
        self.init(store: store.storage, health: health, clock: clock, directory: directory, logger: logger)
    }

    init(
        store: RegistryStore, health: BackendHealthPolicy, clock: WallClock, directory: (any PrincipalDirectory)?,
        logger: Logger
    ) {
        self.store = store
        self.health = health
        self.clock = clock
        self.directory = directory
        self.logger = logger
    }

    func message(_ stored: StoredModel) -> Lumen_Registry_V1_Model {
        let (record, backends) = (stored.record, stored.backends)
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
                $0.cacheWritePerMillionMicros = record.cacheWritePerMillionMicros
            }
            $0.consentRequired = record.consentRequired
            $0.enabled = record.enabled
            $0.maxOutputTokens = record.maxOutputTokens
            $0.maxAttachmentInputTokens = record.maxAttachmentInputTokens
            $0.allowedGroupIds = record.allowedGroupIDs
            $0.blockedGroupIds = record.blockedGroupIDs
            $0.description_p = record.description
            $0.status = BackendHealthPolicy.status(enabled: record.enabled, backends: states)
            $0.backends = backends.map(\.message)
        }
    }

    func allModels(includeDisabled: Bool) async throws -> [Lumen_Registry_V1_Model] {
        try await store.models(includeDisabled: includeDisabled).map(message)
    }

    /// Publishes a model's new state (called by the store once the write has committed, in
    /// commit order, so watchers never apply an older state after a newer one).
    func publish(_ stored: StoredModel) {
        events.publish(.with {
            $0.type = .modelUpsert
            $0.model = message(stored)
        })
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
            $0.byok = byok
            $0.lastFailure = lastFailure
            if let lastFailureAt { $0.lastFailureAt = .init(millis: lastFailureAt) }
            $0.apiVersion = apiVersion
            $0.region = region
            $0.awsProfile = awsProfile
            $0.tokenSource = tokenSource
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
        let models = try await allModels(includeDisabled: request.includeDisabled)
        return .with { $0.models = models }
    }

    public func getModel(
        request: Lumen_Registry_V1_GetModelRequest, context: ServerContext
    ) async throws -> Lumen_Registry_V1_GetModelResponse {
        _ = try Caller.require()
        guard let model = try await store.model(named: request.name) else { throw RegistryError.modelNotFound(request.name) }
        return .with { $0.model = message(model) }
    }

    public func upsertModel(
        request: Lumen_Registry_V1_UpsertModelRequest, context: ServerContext
    ) async throws -> Lumen_Registry_V1_UpsertModelResponse {
        try Caller.requireOperator()
        let record = try ModelRules.record(request.model, now: clock.nowMillis)
        let model = message(try await store.save(record, audit: audit("model.upsert", "model", record.name)) { publish($0) })
        logger.info("model upserted", metadata: ["model": "\(model.name)"])
        return .with { $0.model = model }
    }

    public func upsertBackend(
        request: Lumen_Registry_V1_UpsertBackendRequest, context: ServerContext
    ) async throws -> Lumen_Registry_V1_UpsertBackendResponse {
        try Caller.requireOperator()
        let wanted = request.backend
        guard
            let (record, _) = try await store.saveBackend(
                BackendKey(model: wanted.model, id: wanted.id), make: { try ModelRules.record(wanted, keeping: $0) },
                audit: audit("backend.upsert", "backend", "\(wanted.model)/\(wanted.id)"), then: { publish($0) })
        else { throw RegistryError.modelNotFound(wanted.model) }
        let backend = record.message
        logger.info("backend upserted", metadata: ["model": "\(backend.model)", "backend": "\(backend.id)"])
        return .with { $0.backend = backend }
    }

    public func removeBackend(
        request: Lumen_Registry_V1_RemoveBackendRequest, context: ServerContext
    ) async throws -> Lumen_Registry_V1_RemoveBackendResponse {
        try Caller.requireOperator()
        guard
            try await store.removeBackend(
                BackendKey(model: request.model, id: request.backendID),
                audit: audit("backend.remove", "backend", "\(request.model)/\(request.backendID)"), then: { publish($0) }) != nil
        else { throw RegistryError.backendNotFound(request.model, request.backendID) }
        return .init()
    }

    /// An audit entry of the current caller, now (`ServiceAudit.entry`).
    func audit(_ action: String, _ targetType: String, _ targetID: String, organizationID: String = "") -> AuditEntry {
        ServiceAudit.entry(action, targetType, targetID, organizationID: organizationID, at: clock.nowMillis)
    }

    public func listAuditLog(
        request: Lumen_Common_V1_ListAuditLogRequest, context: ServerContext
    ) async throws -> Lumen_Common_V1_ListAuditLogResponse {
        try await ServiceAudit.list(request, from: store)
    }

    public func verifyAuditLog(
        request: Lumen_Common_V1_VerifyAuditLogRequest, context: ServerContext
    ) async throws -> Lumen_Common_V1_VerifyAuditLogResponse {
        try await ServiceAudit.verify(store, signer: auditSigner)
    }

    public func getModelAccess(
        request: Lumen_Registry_V1_GetModelAccessRequest, context: ServerContext
    ) async throws -> Lumen_Registry_V1_GetModelAccessResponse {
        let organizationID = try Caller.organization(request.organizationID)
        let principal = try Self.principal(request.principal, organizationID: organizationID)
        try await Caller.requireExists(principal, organizationID: organizationID, param: "principal", in: directory)
        try Self.requireActing(for: principal, to: "see model access")
        let groups = Set(request.groupIds)
        let models = try await allModels(includeDisabled: request.includeDisabled)
        let consented = try await store.consentedModels(
            organizationID: organizationID, principalType: principal.type.rawValue, principalID: principal.id)
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
        let wanted = ConsentRecord(
            organizationID: organizationID, principalType: principal.type.rawValue, principalID: principal.id,
            model: request.model, grantedByUserID: grantedBy, createdAt: now)
        let consent = try await store.grantConsent(
            wanted,
            check: { model in guard model.consentRequired else { throw RegistryError.consentNotRequired(model.name) } },
            audit: audit(
                "consent.grant", "consent", "\(principal.type.publicName)/\(principal.id)/\(request.model)", organizationID: organizationID),
            then: { record in
                events.publish(.with {
                    $0.type = .consentGranted
                    $0.consent = record.message
                })
            })
        guard let consent else { throw RegistryError.modelNotFound(request.model) }
        return .with { $0.consent = consent.message }
    }

    public func revokeConsent(
        request: Lumen_Registry_V1_RevokeConsentRequest, context: ServerContext
    ) async throws -> Lumen_Registry_V1_RevokeConsentResponse {
        let organizationID = try Caller.organization(request.organizationID)
        let principal = try Self.principal(request.principal, organizationID: organizationID)
        try await Caller.requireExists(principal, organizationID: organizationID, param: "principal", in: directory)
        try Self.requireActing(for: principal, to: "revoke consents")
        let key = ConsentKey(
            organizationID: organizationID, principalType: principal.type.rawValue, principalID: principal.id,
            model: request.model)
        let events = self.events
        let entry = audit(
            "consent.revoke", "consent", "\(principal.type.publicName)/\(principal.id)/\(request.model)", organizationID: organizationID)
        _ = try await store.revokeConsent(key, audit: entry) {
            events.publish(.with {
                $0.type = .consentRevoked
                $0.consent = .with {
                    $0.organizationID = organizationID
                    $0.principal = principal
                    $0.model = request.model
                }
            })
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
        let records = try await store.consents(
            organizationID: organizationID, principalType: principal?.type.rawValue, principalID: principal?.id)
        return .with { $0.consents = records.map(\.message) }
    }

    public func getModelStatus(
        request: Lumen_Registry_V1_GetModelStatusRequest, context: ServerContext
    ) async throws -> Lumen_Registry_V1_GetModelStatusResponse {
        _ = try Caller.require()
        let models = try await allModels(includeDisabled: true)
        return .with { $0.models = models }
    }

    public func reportBackendHealth(
        request: Lumen_Registry_V1_ReportBackendHealthRequest, context: ServerContext
    ) async throws -> Lumen_Registry_V1_ReportBackendHealthResponse {
        try Caller.requireInternal()
        let now = clock.nowMillis
        let policy = health
        let logger = self.logger
        let reports = request.reports.filter { $0.successes > 0 || $0.failures > 0 || $0.hasProblem }
        try await store.updateBackends(
            reports.map { BackendKey(model: $0.model, id: $0.backendID) },
            change: { index, record in
                let report = reports[index]
                var changed = false
                if report.hasProblem && report.problem != record.problem {
                    // Bounded: words from a gateway, not a document.
                    record.problem = String(report.problem.prefix(500))
                    if !record.problem.isEmpty {
                        logger.notice(
                            "backend misconfigured",
                            metadata: ["model": "\(record.model)", "backend": "\(record.id)", "problem": "\(record.problem)"])
                    }
                    changed = true
                }
                guard report.successes > 0 || report.failures > 0 else { return changed }
                let observed = report.hasObservedAt ? min(report.observedAt.millis, now) : now
                if report.hasLastFailure && report.failures > 0 && observed >= (record.lastFailureAt ?? .min) {
                    record.lastFailure = String(report.lastFailure.prefix(500))
                    record.lastFailureAt = observed
                    changed = true
                }
                let next = policy.apply(
                    successes: Int(max(0, report.successes)), failures: Int(max(0, report.failures)),
                    to: record.state, now: observed)
                guard next != record.state else { return changed }
                if next.health != record.state.health {
                    logger.notice(
                        "backend health changed",
                        metadata: ["model": "\(record.model)", "backend": "\(record.id)", "health": "\(next.health)"])
                }
                record.health = next.health.rawValue
                record.consecutiveFailures = next.consecutiveFailures
                record.circuitOpenUntil = next.circuitOpenUntil
                return true
            },
            then: { models in for model in models { publish(model) } })
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
                let (models, consents) = try await store.snapshot()
                return models.map { model in .with { $0.type = .modelUpsert; $0.model = message(model) } }
                    + consents.map { consent in .with { $0.type = .consentGranted; $0.consent = consent.message } }
            },
            synced: .with { $0.type = .synced })
    }
}
