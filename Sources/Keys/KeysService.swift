import Audit
import Foundation
import GRPCCore
import Logging
import LumenAPI
import RPCSupport
import SharedRules
import Storage

/// The keys service: `sk-` inference keys and `mt-` management tokens.
///
/// Secrets are generated here, returned once by `createKey`, and stored only as SHA-256
/// digests; this type never logs a secret.
public struct KeysService: Sendable {
    let store: KeysStore
    /// The deployment's audit signing key: it signs the checkpoint of the entries pruned past
    /// retention (`pruneAudit`) and `VerifyAuditLog` checks a checkpoint with it. nil: never pruned.
    public var auditSigner: AuditSigner?
    let events: EventHub<Lumen_Keys_V1_KeyEvent>
    let clock: WallClock
    let logger: Logger
    /// Where the keys service asks whether a key's owner (a user, a client) exists.
    let directory: (any PrincipalDirectory)?

    /// Opens (and migrates) the keys database at `location` (SQLite). With a `directory`, a
    /// key's owner named by a person or a management token must exist in the organisation
    /// (NOT_FOUND `user_not_found`, `client_not_found` otherwise).
    public init(
        location: ServiceDatabase.Location, clock: WallClock = .system, directory: (any PrincipalDirectory)? = nil, logger: Logger
    ) throws {
        self.init(storage: try KeysStore(location: location), clock: clock, directory: directory, logger: logger)
    }

    /// The keys table, opened (and migrated) ahead of the service, for a caller that builds its
    /// services synchronously.
    public struct Store: Sendable {
        let storage: KeysStore
    }

    /// Opens (and migrates) the keys table at `location`: a SQLite file, or the `keys` schema of
    /// a PostgreSQL database.
    public static func openStore(_ location: StoreLocation, logger: Logger) async throws -> Store {
        Store(storage: try await KeysStore(location, logger: logger))
    }

    /// Walks the keys service's audit log in `store` (`lumen admin audit verify`).
    public static func verifyAudit(_ store: Store, signer: AuditSigner?) async throws -> AuditVerification {
        try await store.storage.verifyAudit(signer: signer)
    }

    /// Prunes the audit entries older than `retentionDays` behind a signed checkpoint; how many
    /// went (none without a signer or a retention).
    public func pruneAudit(retentionDays: Int) async throws -> Int64 {
        try await store.pruneAudit(olderThan: retentionDays, signer: auditSigner, now: clock.nowMillis)
    }


    /// The keys service on a table opened with `openStore`.
    public init(store: Store, clock: WallClock = .system, directory: (any PrincipalDirectory)? = nil, logger: Logger) {
        self.init(storage: store.storage, clock: clock, directory: directory, logger: logger)
    }

    init(storage: KeysStore, clock: WallClock, directory: (any PrincipalDirectory)?, logger: Logger) {
        self.store = storage
        self.events = EventHub()
        self.clock = clock
        self.directory = directory
        self.logger = logger
    }

    /// The number of open WatchKeys streams.
    public var watcherCount: Int { events.subscriberCount }
}

extension KeysService: CredentialChangeSource {
    /// Counts every committed change of a key.
    public var credentialChanges: CredentialChanges { store.changes }

    public func stillAdmits(_ key: Lumen_Keys_V1_Key) -> Bool? {
        KeyAdmission.refusal(key, nowMillis: clock.nowMillis) == nil
    }
}

extension KeysService: Lumen_Keys_V1_KeysService.SimpleServiceProtocol {
    public func createKey(
        request: Lumen_Keys_V1_CreateKeyRequest, context: ServerContext
    ) async throws -> Lumen_Keys_V1_CreateKeyResponse {
        let organizationID = try Caller.organization(request.organizationID)
        let now = clock.nowMillis
        let kind: Lumen_Keys_V1_KeyKind = request.kind == .management ? .management : .inference
        let name = request.hasName ? try KeyRules.name(request.name) : KeyRules.defaultName
        try KeyRules.currency(request.limitCurrency)
        let limit = request.hasLimitMicros ? try KeyRules.limit(request.limitMicros) : nil
        let models = try KeyRules.models(request.models)
        let rpmLimit = try KeyRules.rpmLimit(Int64(request.rpmLimit))
        let tpmLimit = try KeyRules.tpmLimit(request.tpmLimit)
        let expiry = request.hasExpiresAt ? try KeyRules.expiry(request.expiresAt.millis, now: now) : nil
        let owner = try owner(request.hasOwner ? request.owner : nil, kind: kind, organizationID: organizationID)
        try await Caller.requireExists(owner, organizationID: organizationID, param: "owner", in: directory)
        try Self.requireActing(kind: kind.rawValue, owner: owner, to: "create keys")
        let createdBy = try await createdBy(request.createdByUserID, organizationID: organizationID)

        let secret = Secret.make(kind: kind)
        let record = KeyRecord(
            id: Identifier.make("key"),
            organizationID: organizationID,
            kind: kind.rawValue,
            ownerType: owner.type.rawValue,
            ownerID: owner.id,
            name: name,
            secretSHA256: Secret.digest(secret),
            hint: Secret.hint(secret),
            keyPrefix: Secret.displayPrefix(secret),
            status: Lumen_Keys_V1_KeyStatus.active.rawValue,
            models: models,
            limitMicros: limit,
            expiresAt: expiry,
            createdAt: now,
            updatedAt: now,
            revokedAt: nil,
            createdByUserID: createdBy,
            rpmLimit: rpmLimit,
            tpmLimit: tpmLimit
        )
        try await store.insert(
            record, audit: audit("key.create", record), committed: publish)
        logger.info(
            "key created",
            metadata: ["key_id": "\(record.id)", "organization_id": "\(organizationID)", "kind": "\(kind)"])
        return .with {
            $0.key = record.message
            $0.secret = secret
        }
    }

    public func getKey(
        request: Lumen_Keys_V1_GetKeyRequest, context: ServerContext
    ) async throws -> Lumen_Keys_V1_GetKeyResponse {
        let organizationID = try Caller.organization(request.organizationID)
        guard let record = try await store.key(id: request.keyID, organizationID: organizationID) else {
            throw KeysError.keyNotFound(request.keyID)
        }
        try Self.requireActing(on: record, to: "see keys")
        return .with { $0.key = record.message }
    }

    public func listKeys(
        request: Lumen_Keys_V1_ListKeysRequest, context: ServerContext
    ) async throws -> Lumen_Keys_V1_ListKeysResponse {
        let organizationID = try Caller.organization(request.organizationID)
        let page = try Page(request.page, defaultLimit: 100, maxLimit: 1000)
        guard request.keyIds.count <= 1000 else {
            throw ServiceError.invalid("too_many_keys", "ask for at most 1,000 key ids at once", param: "key_ids")
        }
        if case .UNRECOGNIZED(let value) = request.sort {
            throw ServiceError.invalid(
                "invalid_sort", "unknown sort \(value); sort by name or creation (usage totals are the ledger's: GetKeyTotals)",
                param: "sort")
        }
        if request.hasOwner {
            try await Caller.requireExists(request.owner, organizationID: organizationID, param: "owner", in: directory)
        }
        if let person = Caller.current?.person, !person.isAdmin {
            // A member lists one owner's keys at a time: their own or a managed client's.
            guard request.hasOwner, request.owner.type == .user || request.owner.type == .client else {
                throw ServiceError(
                    .permissionDenied, "not_permitted", "give owner: your user id or a client you manage", param: "owner")
            }
            try Self.requireActing(kind: request.kind == .management ? Lumen_Keys_V1_KeyKind.management.rawValue : Lumen_Keys_V1_KeyKind.inference.rawValue, owner: request.owner, to: "list keys")
        }
        var query = KeyListQuery(
            organizationID: organizationID,
            kind: (request.kind == .management ? Lumen_Keys_V1_KeyKind.management : .inference).rawValue,
            ownerType: request.hasOwner ? request.owner.type.rawValue : nil,
            ownerID: request.hasOwner ? request.owner.id : nil,
            includeRevoked: request.includeDeleted,
            nameContains: request.nameContains,
            keyIDs: request.keyIds,
            sort: request.sort,
            reverse: request.reverse,
            offset: page.offset,
            limit: page.limit
        )
        let creationOrder = request.sort != .name
        if !request.pageToken.isEmpty {
            guard creationOrder else { throw PageToken.invalid }
            query.after = try PageToken.position(request.pageToken, newestFirst: query.newestFirst)
        }
        let revoked = Lumen_Keys_V1_KeyStatus.revoked.rawValue
        var response = Lumen_Keys_V1_ListKeysResponse()
        var positions: [KeyListPosition]
        var records: [KeyRecord] = []
        let total: Int?
        if request.idsOnly {
            (positions, total) = try await store.listIDs(query, revokedStatus: revoked)
        } else {
            (records, total) = try await store.list(query, revokedStatus: revoked)
            positions = records.map { KeyListPosition(createdAt: $0.createdAt, id: $0.id) }
        }
        let hasMore: Bool
        if let total {
            response.pageInfo = page.info(total: total)
            hasMore = response.pageInfo.hasMore_p
        } else {
            // Went on from a token: one row more than the page was read, to tell.
            hasMore = positions.count > page.limit
            if hasMore {
                positions.removeLast()
                if !records.isEmpty { records.removeLast() }
            }
            response.pageInfo = .with {
                $0.limit = Int32(page.limit)
                $0.hasMore_p = hasMore
            }
        }
        if request.idsOnly {
            response.keyIds = positions.map(\.id)
        } else {
            response.keys = records.map(\.message)
        }
        if hasMore, creationOrder, let last = positions.last {
            response.nextPageToken = PageToken.make(after: last, newestFirst: query.newestFirst)
        }
        return response
    }

    public func updateKey(
        request: Lumen_Keys_V1_UpdateKeyRequest, context: ServerContext
    ) async throws -> Lumen_Keys_V1_UpdateKeyResponse {
        let organizationID = try Caller.organization(request.organizationID)
        let now = clock.nowMillis
        // Validate everything before touching the row: a bad field writes nothing.
        let name = request.hasName ? try KeyRules.name(request.name) : nil
        try KeyRules.currency(request.limitCurrency)
        let newLimit: Int64?? =
            switch request.limit {
            case .unlimited(true): .some(nil)
            case .limitMicros(let micros): .some(try KeyRules.limit(micros))
            case .unlimited(false), nil: nil
            }
        let models = request.hasModels ? try KeyRules.models(request.models.models) : nil
        let rpmLimit = request.hasRpmLimit ? try KeyRules.rpmLimit(Int64(request.rpmLimit)) : nil
        let tpmLimit = request.hasTpmLimit ? try KeyRules.tpmLimit(request.tpmLimit) : nil
        let newExpiry: Int64?? =
            switch request.expiry {
            case .noExpiry(true): .some(nil)
            case .expiresAt(let timestamp): .some(try KeyRules.expiry(timestamp.millis, now: now))
            case .noExpiry(false), nil: nil
            }
        let status: Lumen_Keys_V1_KeyStatus? =
            switch request.status {
            case .unspecified: nil
            case .active, .inactive, .suspended, .revoked: request.status
            case .UNRECOGNIZED(let value):
                throw ServiceError.invalid("invalid_status", "unknown status \(value)", param: "status")
            }
        guard name != nil || newLimit != nil || models != nil || newExpiry != nil || status != nil || rpmLimit != nil
            || tpmLimit != nil
        else {
            throw KeysError.emptyUpdate
        }

        let keyID = request.keyID
        let action = status == .revoked ? "revoke" : "update"
        let updated = try await store.update(id: keyID, organizationID: organizationID, audit: audit(action, keyID, organizationID)) { record in
            try Self.requireActing(on: record, to: "change keys")
            guard record.status != Lumen_Keys_V1_KeyStatus.revoked.rawValue else { throw KeysError.revoked(keyID) }
            if let name { record.name = name }
            if let newLimit { record.limitMicros = newLimit }
            if let models { record.models = models }
            if let newExpiry { record.expiresAt = newExpiry }
            if let rpmLimit { record.rpmLimit = rpmLimit }
            if let tpmLimit { record.tpmLimit = tpmLimit }
            if let status {
                record.status = status.rawValue
                if status == .revoked { record.revokedAt = now }
            }
            record.updatedAt = now
        } committed: { publish($0) }
        guard let updated else { throw KeysError.keyNotFound(keyID) }
        logger.info("key updated", metadata: ["key_id": "\(keyID)", "organization_id": "\(organizationID)"])
        return .with { $0.key = updated.message }
    }

    public func revokeKey(
        request: Lumen_Keys_V1_RevokeKeyRequest, context: ServerContext
    ) async throws -> Lumen_Keys_V1_RevokeKeyResponse {
        let organizationID = try Caller.organization(request.organizationID)
        let now = clock.nowMillis
        let updated = try await store.update(
            id: request.keyID, organizationID: organizationID, audit: audit("revoke", request.keyID, organizationID)
        ) { record in
            try Self.requireActing(on: record, to: "revoke keys")
            guard record.status != Lumen_Keys_V1_KeyStatus.revoked.rawValue else { return }
            record.status = Lumen_Keys_V1_KeyStatus.revoked.rawValue
            record.revokedAt = now
            record.updatedAt = now
        } committed: { publish($0) }
        guard let updated else { throw KeysError.keyNotFound(request.keyID) }
        if updated.revokedAt == now && updated.updatedAt == now {
            logger.info("key revoked", metadata: ["key_id": "\(updated.id)", "organization_id": "\(organizationID)"])
        }
        return .with { $0.key = updated.message }
    }

    public func authenticate(
        request: Lumen_Keys_V1_AuthenticateRequest, context: ServerContext
    ) async throws -> Lumen_Keys_V1_AuthenticateResponse {
        try Caller.requireInternal()
        let digest = Secret.digest(request.secret)
        guard let record = try await store.key(secretSHA256: digest),
            AuthInterceptor.constantTimeEqual(record.secretSHA256, digest)
        else { throw KeyAdmission.unknown }
        let key = record.message
        if let refusal = KeyAdmission.refusal(key, nowMillis: clock.nowMillis) { throw refusal }
        return .with { $0.key = key }
    }

    public func watchKeys(
        request: Lumen_Keys_V1_WatchKeysRequest,
        response: RPCWriter<Lumen_Keys_V1_KeyEvent>,
        context: ServerContext
    ) async throws {
        try Caller.requireInternal()
        let organizationID = request.organizationID.isEmpty ? nil : request.organizationID
        try await events.serve(
            to: response,
            where: { organizationID == nil || $0.key.organizationID == organizationID },
            snapshot: { try await store.all(organizationID: organizationID).map(\.event) },
            synced: .with { $0.type = .synced })
    }

    public func createOperatorToken(
        request: Lumen_Keys_V1_CreateOperatorTokenRequest, context: ServerContext
    ) async throws -> Lumen_Keys_V1_CreateOperatorTokenResponse {
        try Caller.requireInternal()
        let name = request.hasName ? try KeyRules.name(request.name) : "Operator token"
        let now = clock.nowMillis
        let secret = Secret.make(kind: .operator)
        let record = KeyRecord(
            id: Identifier.make("key"), organizationID: "", kind: Lumen_Keys_V1_KeyKind.operator.rawValue,
            ownerType: Lumen_Common_V1_PrincipalType.unspecified.rawValue, ownerID: "", name: name,
            secretSHA256: Secret.digest(secret), hint: Secret.hint(secret), keyPrefix: Secret.displayPrefix(secret),
            status: Lumen_Keys_V1_KeyStatus.active.rawValue, models: [], limitMicros: nil,
            expiresAt: nil, createdAt: now, updatedAt: now,
            revokedAt: nil, createdByUserID: "", rpmLimit: 0, tpmLimit: 0)
        try await store.insert(record, audit: audit("operator_token.create", record))
        logger.notice("operator token created", metadata: ["key_id": "\(record.id)"])
        return .with {
            $0.key = record.message
            $0.secret = secret
        }
    }

    public func listOperatorTokens(
        request: Lumen_Keys_V1_ListOperatorTokensRequest, context: ServerContext
    ) async throws -> Lumen_Keys_V1_ListOperatorTokensResponse {
        try Caller.requireInternal()
        let records = try await store.operatorTokens()
        return .with { $0.keys = records.map(\.message) }
    }

    public func revokeOperatorToken(
        request: Lumen_Keys_V1_RevokeOperatorTokenRequest, context: ServerContext
    ) async throws -> Lumen_Keys_V1_RevokeOperatorTokenResponse {
        try Caller.requireInternal()
        let now = clock.nowMillis
        let operatorKind = Lumen_Keys_V1_KeyKind.operator.rawValue
        let keyID = request.keyID
        let entry = ServiceAudit.entry("operator_token.revoke", "key", keyID, at: now)
        let updated = try await store.update(id: keyID, organizationID: "", audit: entry) { record in
            guard record.kind == operatorKind else { throw KeysError.keyNotFound(keyID) }
            guard record.status != Lumen_Keys_V1_KeyStatus.revoked.rawValue else { return }
            record.status = Lumen_Keys_V1_KeyStatus.revoked.rawValue
            record.revokedAt = now
            record.updatedAt = now
        }
        guard let updated else { throw KeysError.keyNotFound(keyID) }
        logger.notice("operator token revoked", metadata: ["key_id": "\(keyID)"])
        return .with { $0.key = updated.message }
    }

    /// The audit entry of a new key: `action` on it, now.
    private func audit(_ action: String, _ record: KeyRecord) -> AuditEntry {
        ServiceAudit.entry(action, "key", record.id, organizationID: record.organizationID, at: clock.nowMillis)
    }

    /// The audit entry of a change to a key (an `sk-` key or an `mt-` token; the values before
    /// and after say which): `key.update` or `key.revoke`.
    private func audit(_ verb: String, _ keyID: String, _ organizationID: String) -> AuditEntry {
        ServiceAudit.entry("key." + verb, "key", keyID, organizationID: organizationID, at: clock.nowMillis)
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

    /// Who a new key is recorded as made by: the caller's user when none is named; a named one
    /// must be a user of the caller's organisation (NOT_FOUND `user_not_found` otherwise, as for
    /// any id of another organisation), and a person may name only themselves.
    private func createdBy(_ named: String, organizationID: String) async throws -> String {
        guard !named.isEmpty else { return Caller.current?.userID ?? "" }
        if case .person(let person)? = Caller.current, person.userID != named {
            throw ServiceError(
                .permissionDenied, "not_permitted", "you may record only yourself as a key's maker", param: "created_by_user_id")
        }
        try await Caller.requireExists(.user(named), organizationID: organizationID, param: "created_by_user_id", in: directory)
        return named
    }

    /// Tells the watchers (gateways) a key as committed; the store calls it on its writer,
    /// after the commit, so events go out in commit order.
    private func publish(_ record: KeyRecord) {
        events.publish(record.event)
    }

    /// A person acts on keys of their own and of the clients they manage; management tokens
    /// are administrators' alone.
    static func requireActing(kind: Int, owner: Lumen_Common_V1_PrincipalRef, to action: String) throws {
        if kind == Lumen_Keys_V1_KeyKind.management.rawValue { try Caller.requireAdmin(to: "manage management tokens") }
        try Caller.requireActing(for: owner, to: action)
    }

    /// A key the caller may not act on is not found, as another organisation's is: its id tells
    /// nothing (no PERMISSION_DENIED that would say it exists).
    static func requireActing(on record: KeyRecord, to action: String) throws {
        do {
            try requireActing(kind: record.kind, owner: record.message.owner, to: action)
        } catch let error as ServiceError where error.status == .permissionDenied {
            throw KeysError.keyNotFound(record.id)
        }
    }

    private func owner(
        _ requested: Lumen_Common_V1_PrincipalRef?, kind: Lumen_Keys_V1_KeyKind, organizationID: String
    ) throws -> Lumen_Common_V1_PrincipalRef {
        guard let requested, requested.type != .unspecified else {
            return .with {
                $0.type = .organization
                $0.id = organizationID
            }
        }
        switch requested.type {
        case .organization:
            guard requested.id.isEmpty || requested.id == organizationID else {
                throw KeysError.invalidOwner("an organisation-owned key must name its own organisation")
            }
            return .with {
                $0.type = .organization
                $0.id = organizationID
            }
        case .user, .client:
            guard !requested.id.isEmpty else { throw KeysError.invalidOwner("owner.id is required") }
            if kind == .management && requested.type == .client {
                throw KeysError.invalidOwner("management tokens are owned by a user or the organisation")
            }
            return requested
        default:
            throw KeysError.invalidOwner("a key is owned by the organisation, a user or a client")
        }
    }
}

extension KeyRecord {
    /// The record as the API shows it: never the secret or its digest.
    var message: Lumen_Keys_V1_Key {
        .with {
            $0.id = id
            $0.organizationID = organizationID
            $0.kind = Lumen_Keys_V1_KeyKind(rawValue: kind) ?? .unspecified
            $0.owner = .with {
                $0.type = Lumen_Common_V1_PrincipalType(rawValue: ownerType) ?? .unspecified
                $0.id = ownerID
            }
            $0.name = name
            $0.hint = hint
            $0.keyPrefix = keyPrefix
            $0.status = Lumen_Keys_V1_KeyStatus(rawValue: status) ?? .unspecified
            $0.models = models
            if let limitMicros { $0.limitMicros = limitMicros }
            if let expiresAt { $0.expiresAt = .init(millis: expiresAt) }
            $0.createdAt = .init(millis: createdAt)
            $0.updatedAt = .init(millis: updatedAt)
            if let revokedAt { $0.revokedAt = .init(millis: revokedAt) }
            $0.createdByUserID = createdByUserID
            $0.rpmLimit = Int32(rpmLimit)
            $0.tpmLimit = tpmLimit
        }
    }

    /// The watch event for this record, with the digest the watcher authenticates against.
    var event: Lumen_Keys_V1_KeyEvent {
        .with {
            $0.type = .upsert
            $0.key = message
            $0.secretSha256 = secretSHA256
        }
    }
}
