import Foundation
import GRDB
import LumenAPI
import RPCSupport

/// Reserve, settle and release: the rules of holds, applied inside one (group-committed)
/// transaction. Each is idempotent by request id.
///
/// A request's path is its key, the key's owner and the organisation (the owner step is
/// skipped when the organisation owns the key). A reserve must fit every pool on the path:
///
/// - the key's spending cap (`key_limit_micros`): spent + held + estimate ≤ cap;
/// - a pool in BALANCE mode: balance (after refills) > 0 and balance − held ≥ estimate;
/// - an UNLIMITED or unconfigured pool never refuses.
///
/// BYOK requests hold nothing and are never charged to a pool; their lines are kept.
enum Metering {
    enum Operation: Sendable {
        case reserve(Lumen_Ledger_V1_ReserveRequest)
        case settle(Lumen_Ledger_V1_SettleRequest)
        case release(Lumen_Ledger_V1_ReleaseRequest)

        var requestID: String {
            switch self {
            case .reserve(let request): request.requestID
            case .settle(let request): request.requestID
            case .release(let request): request.requestID
            }
        }
    }

    enum Outcome: Sendable {
        case reserved(expiresAt: Int64)
        case settled(Lumen_Ledger_V1_UsageLine)
        case released
    }

    /// How long a hold lives before the reconciler settles it at its estimate.
    static let holdTTLMillis: Int64 = 15 * 60 * 1000

    static func apply(_ db: Database, _ operation: Operation, now: Int64) throws -> Outcome {
        guard !operation.requestID.isEmpty, operation.requestID.count <= 100 else {
            throw ServiceError.invalid("invalid_request_id", "request_id must be 1–100 characters", param: "request_id")
        }
        switch operation {
        case .reserve(let request): return try reserve(db, request, now: now)
        case .settle(let request): return .settled(try settle(db, request, now: now))
        case .release(let request):
            try release(db, request, now: now)
            return .released
        }
    }

    /// The pools a request draws on, in path order: key, owner (unless the organisation), organisation.
    static func path(organizationID: String, keyID: String, owner: Lumen_Common_V1_PrincipalRef) -> [Lumen_Common_V1_PrincipalRef] {
        var path: [Lumen_Common_V1_PrincipalRef] = [.with { $0.type = .key; $0.id = keyID }]
        if owner.type != .organization { path.append(owner) }
        path.append(.with { $0.type = .organization; $0.id = organizationID })
        return path
    }

    static func reserve(_ db: Database, _ request: Lumen_Ledger_V1_ReserveRequest, now: Int64) throws -> Outcome {
        if let hold = try HoldRecord.fetchOne(db, key: request.requestID) {
            return .reserved(expiresAt: hold.expiresAt)
        }
        if try UsageLineRecord.exists(db, key: request.requestID) {
            throw ServiceError(
                .alreadyExists, "request_settled", "request \(request.requestID) was already settled",
                param: "request_id")
        }
        try validate(request)
        let byok = request.accessChannel == .byok
        let estimate = byok ? 0 : request.estimateMicros
        var pools = try path(organizationID: request.organizationID, keyID: request.keyID, owner: request.owner)
            .map { try PoolRecord.load(db, organizationID: request.organizationID, owner: $0, now: now) }
        if !byok {
            if request.hasKeyLimitMicros {
                let key = pools[0]
                if key.spentMicros + key.reservedMicros + estimate > request.keyLimitMicros {
                    throw insufficientQuota("this API key's spending limit", available: request.keyLimitMicros - key.spentMicros - key.reservedMicros, estimate: estimate)
                }
            }
            for pool in pools where pool.poolMode == .balance {
                if pool.balanceMicros <= 0 || pool.balanceMicros - pool.reservedMicros < estimate {
                    throw insufficientQuota(describe(pool), available: pool.balanceMicros - pool.reservedMicros, estimate: estimate)
                }
            }
        }
        for index in pools.indices {
            pools[index].reservedMicros += estimate
            try pools[index].save(db)
        }
        let expiresAt = now + holdTTLMillis
        try HoldRecord(
            requestID: request.requestID, organizationID: request.organizationID, keyID: request.keyID,
            ownerType: request.owner.type.rawValue, ownerID: request.owner.id, estimateMicros: estimate,
            createdAt: now, expiresAt: expiresAt
        ).insert(db)
        try UsageLineRecord(
            requestID: request.requestID, billingTransactionID: nil, createdAt: now, settledAt: nil,
            organizationID: request.organizationID, keyID: request.keyID, ownerType: request.owner.type.rawValue,
            ownerID: request.owner.id, logicalModel: request.logicalModel, modelVendor: request.modelVendor,
            scene: request.scene.rawValue, accessChannel: request.accessChannel.rawValue, inputTokens: 0,
            cachedInputTokens: 0, outputTokens: 0, costMicros: estimate, latencyMs: 0,
            status: Lumen_Ledger_V1_UsageStatus.pending.rawValue, estimated: false
        ).insert(db)
        return .reserved(expiresAt: expiresAt)
    }

    static func settle(_ db: Database, _ request: Lumen_Ledger_V1_SettleRequest, now: Int64) throws -> Lumen_Ledger_V1_UsageLine {
        guard let hold = try HoldRecord.fetchOne(db, key: request.requestID) else {
            if let line = try UsageLineRecord.fetchOne(db, key: request.requestID),
                line.status == Lumen_Ledger_V1_UsageStatus.settled.rawValue
            {
                return line.message
            }
            throw ServiceError(.notFound, "hold_not_found", "no hold for request \(request.requestID)", param: "request_id")
        }
        for (value, name) in [
            (request.inputTokens, "input_tokens"), (request.cachedInputTokens, "cached_input_tokens"),
            (request.outputTokens, "output_tokens"), (request.costMicros, "cost_micros"), (request.latencyMs, "latency_ms"),
        ] where value < 0 {
            throw ServiceError.invalid("invalid_usage", "\(name) must not be negative", param: name)
        }
        guard var line = try UsageLineRecord.fetchOne(db, key: request.requestID) else {
            throw ServiceError(.internalError, "ledger_inconsistent", "hold \(request.requestID) has no usage line")
        }
        let byok = line.accessChannel == Lumen_Common_V1_AccessChannel.byok.rawValue
        let charge = byok ? 0 : request.costMicros
        try draw(db, hold: hold, charge: charge, now: now)
        line.billingTransactionID = Identifier.make("btx")
        line.settledAt = now
        line.inputTokens = request.inputTokens
        line.cachedInputTokens = request.cachedInputTokens
        line.outputTokens = request.outputTokens
        line.costMicros = charge
        line.latencyMs = request.latencyMs
        line.status = Lumen_Ledger_V1_UsageStatus.settled.rawValue
        line.estimated = request.estimated
        try line.update(db)
        return line.message
    }

    static func release(_ db: Database, _ request: Lumen_Ledger_V1_ReleaseRequest, now: Int64) throws {
        guard let hold = try HoldRecord.fetchOne(db, key: request.requestID) else { return }
        try draw(db, hold: hold, charge: 0, now: now)
        try UsageLineRecord.deleteOne(db, key: request.requestID)
    }

    /// Drops `hold` from every pool of its path and charges `charge` to each.
    static func draw(_ db: Database, hold: HoldRecord, charge: Int64, now: Int64) throws {
        for owner in path(organizationID: hold.organizationID, keyID: hold.keyID, owner: hold.owner) {
            var pool = try PoolRecord.load(db, organizationID: hold.organizationID, owner: owner, now: now)
            pool.reservedMicros -= hold.estimateMicros
            pool.spentMicros += charge
            if pool.poolMode == .balance { pool.balanceMicros -= charge }
            try pool.save(db)
        }
        try hold.delete(db)
    }

    static func validate(_ request: Lumen_Ledger_V1_ReserveRequest) throws {
        guard !request.organizationID.isEmpty else {
            throw ServiceError.invalid("organization_required", "organization_id is required", param: "organization_id")
        }
        guard !request.keyID.isEmpty else {
            throw ServiceError.invalid("key_required", "key_id is required", param: "key_id")
        }
        guard request.owner.type != .unspecified, request.owner.type != .key, !request.owner.id.isEmpty else {
            throw ServiceError.invalid("invalid_owner", "owner must be the organisation, a user or a client", param: "owner")
        }
        guard request.estimateMicros >= 0 else {
            throw ServiceError.invalid("invalid_estimate", "estimate_micros must not be negative", param: "estimate_micros")
        }
        guard request.accessChannel != .unspecified else {
            throw ServiceError.invalid("invalid_access_channel", "access_channel is required", param: "access_channel")
        }
    }

    static func describe(_ pool: PoolRecord) -> String {
        switch Lumen_Common_V1_PrincipalType(rawValue: pool.ownerType) {
        case .organization: "the organisation's balance"
        case .user: "the user's balance"
        case .client: "the client's balance"
        case .key: "this API key's balance"
        default: "a balance"
        }
    }

    static func insufficientQuota(_ pool: String, available: Int64, estimate: Int64) -> ServiceError {
        ServiceError(
            .resourceExhausted, "insufficient_quota",
            "\(pool) cannot cover this request: \(USD.amount(max(0, available))) USD available, \(USD.amount(estimate)) USD needed")
    }
}
