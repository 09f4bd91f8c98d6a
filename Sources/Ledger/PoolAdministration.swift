import Foundation
import LumenAPI
import RPCSupport
import SharedRules
import Storage

/// Configuring pools and granting money: the administrator's side of the pools, applied
/// through the same group commit and `Book` as metering, so a grant is seen by the very next
/// reserve and is never overwritten by a batch that had the pool cached.
enum PoolAdministration {
    /// The largest amount a limit, a refill rate or a grant may have: 1,000,000,000 USD.
    static let maxAmountMicros: Int64 = 1_000_000_000_000_000

    /// The pool `owner` names in `organizationID`, validated. The organisation's own pool may
    /// be named with an empty id.
    static func poolKey(organizationID: String, owner: Lumen_Common_V1_PrincipalRef) throws -> Book.PoolKey {
        var owner = owner
        switch owner.type {
        case .organization:
            if owner.id.isEmpty { owner.id = organizationID }
            guard owner.id == organizationID else {
                throw ServiceError.invalid("invalid_owner", "an organisation pool is the organisation's own", param: "owner")
            }
        case .user, .client, .key:
            guard !owner.id.isEmpty, owner.id.utf8.count <= 100 else {
                throw ServiceError.invalid("invalid_owner", "owner.id must be 1–100 characters", param: "owner")
            }
        default:
            throw ServiceError.invalid("invalid_owner", "owner must be the organisation, a user, a client or a key", param: "owner")
        }
        return Book.PoolKey(organizationID: organizationID, owner: owner)
    }

    static func configure(
        _ db: any LedgerTables, _ book: Book, organizationID: String, _ request: Lumen_Ledger_V1_ConfigurePoolRequest,
        audit: AuditEntry, now: Int64
    ) throws -> PoolRecord {
        let key = try poolKey(organizationID: organizationID, owner: request.owner)
        let mode = request.mode
        guard [.unspecified, .unlimited, .balance].contains(mode) else {
            throw ServiceError.invalid("invalid_mode", "mode must be UNSPECIFIED, UNLIMITED or BALANCE", param: "mode")
        }
        if request.hasLimitMicros {
            guard mode == .balance else {
                throw ServiceError.invalid("invalid_limit", "a limit applies to BALANCE pools only", param: "limit_micros")
            }
            guard (0...maxAmountMicros).contains(request.limitMicros) else {
                throw ServiceError.invalid(
                    "invalid_limit", "limit_micros must be from 0 to \(maxAmountMicros)", param: "limit_micros")
            }
        }
        guard (0...maxAmountMicros).contains(request.refillPerHourMicros) else {
            throw ServiceError.invalid(
                "invalid_refill", "refill_per_hour_micros must be from 0 to \(maxAmountMicros)", param: "refill_per_hour_micros")
        }
        guard request.refillPerHourMicros == 0 || mode == .balance else {
            throw ServiceError.invalid("invalid_refill", "a refill applies to BALANCE pools only", param: "refill_per_hour_micros")
        }
        // Refills due under the old settings are applied first (by `pool`).
        var pool = try book.pool(db, key, now: now)
        let before = PoolSettings(pool)
        let wasRefilling = pool.nextRefillAt != nil
        pool.mode = mode.rawValue
        pool.limitMicros = request.hasLimitMicros ? request.limitMicros : nil
        pool.refillPerHourMicros = request.refillPerHourMicros
        // A refill that starts now is first due an hour from now; one that was running keeps its clock.
        if !wasRefilling { pool.refilledAt = now }
        let after = PoolSettings(pool)
        if after != before {
            var entry = audit
            entry.before = AuditTrail.json(before)
            entry.after = AuditTrail.json(after)
            try db.appendAudit(entry)
        }
        book.update(key, pool)
        return pool
    }

    /// A pool's settings as its audit entries show them.
    struct PoolSettings: Encodable, Equatable {
        var mode: String
        var limitMicros: Int64?
        var refillPerHourMicros: Int64

        init(_ pool: PoolRecord) {
            mode = pool.poolMode.publicName
            limitMicros = pool.limitMicros
            refillPerHourMicros = pool.refillPerHourMicros
        }

        enum CodingKeys: String, CodingKey {
            case mode
            case limitMicros = "limit_micros"
            case refillPerHourMicros = "refill_per_hour_micros"
        }
    }

    /// What a grant changes, as its audit entry shows it.
    struct GrantChange: Encodable {
        var balanceMicros: Int64
        var grantID: String?
        var amountMicros: Int64?
        var reason: String?

        enum CodingKeys: String, CodingKey {
            case balanceMicros = "balance_micros"
            case grantID = "grant_id"
            case amountMicros = "amount_micros"
            case reason
        }
    }

    static func grant(
        _ db: any LedgerTables, _ book: Book, organizationID: String, grantedBy userID: String,
        _ request: Lumen_Ledger_V1_GrantRequest, audit: AuditEntry, now: Int64
    ) throws -> (GrantRow, PoolRecord) {
        let key = try poolKey(organizationID: organizationID, owner: request.owner)
        guard request.amountMicros != 0, (-maxAmountMicros...maxAmountMicros).contains(request.amountMicros) else {
            throw ServiceError.invalid(
                "invalid_amount", "amount_micros must not be 0 and at most \(maxAmountMicros) either way", param: "amount_micros")
        }
        let reason = request.reason.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !reason.isEmpty, reason.count <= 500 else {
            throw ServiceError.invalid("invalid_reason", "reason is required, at most 500 characters", param: "reason")
        }
        guard request.idempotencyKey.utf8.count <= 100 else {
            throw ServiceError.invalid(
                "invalid_idempotency_key", "idempotency_key is at most 100 characters", param: "idempotency_key")
        }
        if !request.idempotencyKey.isEmpty,
            let earlier = try db.grant(organizationID: organizationID, idempotencyKey: request.idempotencyKey)
        {
            guard earlier.ownerType == key.ownerType, earlier.ownerID == key.ownerID, earlier.amountMicros == request.amountMicros else {
                throw ServiceError(
                    .alreadyExists, "idempotency_key_reused",
                    "idempotency_key \(request.idempotencyKey) was used for another grant", param: "idempotency_key")
            }
            return (earlier, try book.pool(db, key, now: now))
        }
        var pool = try book.pool(db, key, now: now)
        switch pool.poolMode {
        case .unlimited:
            throw ServiceError(
                .failedPrecondition, "pool_unlimited", "this pool is unlimited; configure it as a balance before granting",
                param: "owner")
        case .balance:
            break
        default:
            // A grant sets up a pool that had no budget: a balance from now on.
            pool.mode = Lumen_Ledger_V1_PoolMode.balance.rawValue
            pool.refilledAt = now
        }
        let (balance, overflow) = pool.balanceMicros.addingReportingOverflow(request.amountMicros)
        guard !overflow, abs(balance) <= maxAmountMicros * 10 else {
            throw ServiceError.invalid("invalid_amount", "the balance would leave the range Lumen keeps", param: "amount_micros")
        }
        // Money removed never takes a pool below zero, nor below what requests in flight hold on
        // it (their settlements would): only an overrun may (Metering.settle).
        if request.amountMicros < 0, balance - pool.reservedMicros < 0 {
            throw ServiceError(
                .failedPrecondition, "balance_below_zero",
                "removing \(USD.amount(-request.amountMicros)) USD would take the balance below zero: at most "
                    + "\(USD.amount(max(0, pool.balanceMicros - pool.reservedMicros))) USD can be removed now", param: "amount_micros")
        }
        let row = GrantRow(
            id: Identifier.make("grt"), organizationID: organizationID, ownerType: key.ownerType, ownerID: key.ownerID,
            amountMicros: request.amountMicros, reason: reason, grantedByUserID: userID,
            idempotencyKey: request.idempotencyKey.isEmpty ? nil : request.idempotencyKey, createdAt: now)
        try db.insertGrant(row)
        var entry = audit
        entry.before = AuditTrail.json(GrantChange(balanceMicros: pool.balanceMicros))
        entry.after = AuditTrail.json(
            GrantChange(balanceMicros: balance, grantID: row.id, amountMicros: row.amountMicros, reason: row.reason))
        try db.appendAudit(entry)
        pool.balanceMicros = balance
        pool.grantedMicros += request.amountMicros
        book.update(key, pool)
        return (row, pool)
    }
}

extension PoolRecord {
    /// The pool as the API shows it, figures as of `now`.
    func message(now: Int64) -> Lumen_Ledger_V1_Pool {
        .with {
            $0.organizationID = organizationID
            $0.owner = LedgerStore.principal(type: ownerType, id: ownerID)
            $0.mode = poolMode
            $0.balanceMicros = balanceMicros
            $0.reservedMicros = reservedMicros
            if let limitMicros { $0.limitMicros = limitMicros }
            $0.refillPerHourMicros = refillPerHourMicros
            if let next = nextRefillAt { $0.nextRefillAt = .init(millis: next) }
            $0.spentMicros = spentMicros
            $0.asOf = .init(millis: now)
        }
    }
}
