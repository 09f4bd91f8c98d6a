import Foundation
import LumenAPI
import RPCSupport
import SharedRules
import Storage

/// Reserve, settle and release: the rules of holds, applied inside one (group-committed)
/// transaction — a hold may be decided before, on its caller's thread (`decide`), and only
/// written there. Each is idempotent by request id.
///
/// A request's path is its key, the key's owner and the organisation (the owner step is
/// skipped when the organisation owns the key). A reserve must fit every pool on the path:
///
/// - the key's spending cap (`key_limit_micros`): spent + held + estimate ≤ cap;
/// - a pool in BALANCE mode: balance (after refills) > 0 and balance − held ≥ estimate;
/// - an UNLIMITED or unconfigured pool never refuses.
///
/// The ledger prices every hold and settlement itself: a hold is the request's bound (input
/// and output tokens, as the gateway measured them) at its model's prices (`PriceBook`), a
/// settlement the tokens measured at the prices the hold was placed at. BYOK requests hold
/// nothing and are never charged to a pool; their lines are kept.
enum Metering {
    enum Operation: Sendable {
        /// Place a hold; `prices` are its model's (`LedgerService.reserveOperation` looks them up).
        case reserve(Lumen_Ledger_V1_ReserveRequest, prices: Lumen_Registry_V1_Prices, capture: Lumen_Ledger_V1_CaptureSettings? = nil)
        /// Write the line of a hold decided on its caller's thread (`decide`), or — the book
        /// reset since — check it again and place it (boxed: a decision carries its hold).
        indirect case decided(Lumen_Ledger_V1_ReserveRequest, Book.Decision, capture: Lumen_Ledger_V1_CaptureSettings?)
        case settle(Lumen_Ledger_V1_SettleRequest)
        case release(Lumen_Ledger_V1_ReleaseRequest)
        /// Settle every hold expired by now at its estimate (the reconciler's sweep).
        case reconcile
        /// Set a pool's mode, ceiling and refill (`PoolAdministration.configure`); `audit` is the
        /// entry of the caller who asked, completed and recorded when the pool changes. (Boxed,
        /// as `grant`: the reserves and settlements the group commit moves stay their own size.)
        indirect case configure(organizationID: String, Lumen_Ledger_V1_ConfigurePoolRequest, audit: AuditEntry)
        /// Add money to a pool (`PoolAdministration.grant`), recording `audit` with it.
        indirect case grant(organizationID: String, grantedBy: String, Lumen_Ledger_V1_GrantRequest, audit: AuditEntry)
        /// Read a pool as the metering sees it (refills due applied): answered from the book,
        /// in the batch, after every operation queued before it.
        case pool(Book.PoolKey)
        /// Rows of the ledger's other tables (budget alerts), with the audit entry of the change
        /// when it is one: written in the group commit, the ledger's one writer.
        indirect case write([AlertRules.Write], audit: AuditEntry?)

        var requestID: String {
            switch self {
            case .reserve(let request, _, _), .decided(let request, _, _): request.requestID
            case .settle(let request): request.requestID
            case .release(let request): request.requestID
            case .reconcile, .configure, .grant, .pool, .write: ""
            }
        }

        /// Whether its caller must not hear of it before it is on disk (`GroupCommit`'s `synced`):
        /// a hold (no caller gets a byte the ledger has not durably recorded) and an
        /// administrator's change. A settlement, a release, a sweep and a read are made durable by
        /// the next synced commit or checkpoint (within 100 ms): a power failure may take the
        /// last of them, and a settlement lost so leaves its hold, which the reconciler settles
        /// at its estimate — never a request charged nothing.
        var synced: Bool {
            switch self {
            case .reserve, .decided, .configure, .grant, .write: true
            case .settle, .release, .reconcile, .pool: false
            }
        }

        /// Whether its batch may wait a little for the next one's (`GroupCommit`'s linger): a
        /// settlement, which no caller waits for, shares the next hold's transaction.
        var lingers: Bool {
            if case .settle = self { true } else { false }
        }

        /// The gateway's span this hold operation continues (its message's `traceparent`), and
        /// the name of the ledger's span for it; nil for the ledger's own operations.
        var traced: (name: String, traceparent: String)? {
            switch self {
            case .reserve(let request, _, _), .decided(let request, _, _): ("lumen.ledger.reserve", request.traceparent)
            case .settle(let request): ("lumen.ledger.settle", request.traceparent)
            case .release(let request): ("lumen.ledger.release", request.traceparent)
            case .reconcile, .configure, .grant, .pool, .write: nil
            }
        }
    }

    enum Outcome: Sendable {
        /// The hold placed (or found: a repeated reserve), and the key's minute when it counted in
        /// one (keys with per-minute limits).
        case reserved(expiresAt: Int64, rate: RateWindow? = nil, capture: Lumen_Ledger_V1_CaptureSettings? = nil)
        case settled(Lumen_Ledger_V1_UsageLine)
        case released
        /// How many expired holds a sweep settled.
        case reconciled(Int)
        /// A pool after its configuration changed, or as read.
        case pool(PoolRecord)
        /// A grant and its pool after it.
        case granted(GrantRow, PoolRecord)
        /// Rows written.
        case written
    }


    static func apply(_ db: any LedgerTables, _ book: Book, _ operation: Operation, now: Int64) throws -> Outcome {
        switch operation {
        case .reserve(let request, let prices, let capture):
            try validateRequestID(request.requestID)
            let placed = try reserve(db, book, request, prices: prices, now: now)
            guard let capture, case .reserved(let expiresAt, let rate, _) = placed else { return placed }
            return .reserved(expiresAt: expiresAt, rate: rate, capture: capture)
        case .decided(let request, let decision, let capture):
            return try write(db, book, request, decision, capture: capture, now: now)
        case .settle(let request):
            try validateRequestID(request.requestID)
            return .settled(try settle(db, book, request, now: now))
        case .release(let request):
            try validateRequestID(request.requestID)
            try release(db, book, request, now: now)
            return .released
        case .reconcile:
            return .reconciled(try reconcile(db, book, now: now))
        case .configure(let organizationID, let request, let audit):
            return .pool(try PoolAdministration.configure(db, book, organizationID: organizationID, request, audit: audit, now: now))
        case .grant(let organizationID, let userID, let request, let audit):
            let (grant, pool) = try PoolAdministration.grant(
                db, book, organizationID: organizationID, grantedBy: userID, request, audit: audit, now: now)
            return .granted(grant, pool)
        case .pool(let key):
            return .pool(try book.pool(db, key, now: now))
        case .write(let writes, let audit):
            for write in writes { try db.execute(write.statement, write.rows) }
            if let audit { try db.appendAudit(audit) }
            return .written
        }
    }

    static func validateRequestID(_ requestID: String) throws {
        guard !requestID.isEmpty, requestID.utf8.count <= 100 else {
            throw ServiceError.invalid("invalid_request_id", "request_id must be 1–100 characters", param: "request_id")
        }
    }

    /// The pools a request draws on, in path order: key (none for the web chat), owner (unless
    /// the organisation), organisation.
    static func path(organizationID: String, keyID: String, owner: Lumen_Common_V1_PrincipalRef) -> [Lumen_Common_V1_PrincipalRef] {
        var path: [Lumen_Common_V1_PrincipalRef] = keyID.isEmpty ? [] : [.with { $0.type = .key; $0.id = keyID }]
        if owner.type != .organization { path.append(owner) }
        path.append(.with { $0.type = .organization; $0.id = organizationID })
        return path
    }

    // Each operation writes after every check and before touching the book, with one statement
    // that may fail (closing a hold: its line's insert, then the hold's delete by its key), so an
    // operation that throws has changed nothing (no savepoint needed).

    static func reserve(
        _ db: any LedgerTables, _ book: Book, _ request: Lumen_Ledger_V1_ReserveRequest, prices: Lumen_Registry_V1_Prices, now: Int64
    ) throws -> Outcome {
        if let hold = try book.hold(db, request.requestID) {
            return .reserved(expiresAt: book.expiry(of: hold))
        }
        try validate(request)
        let (hold, window) = try admit(book, request, prices: prices, now: now)
        do {
            let placed = try place(db, book, request, hold, now: now)
            guard let window, case .reserved(let expiresAt, _, _) = placed else { return placed }
            return .reserved(expiresAt: expiresAt, rate: window)
        } catch {
            uncount(book, hold)
            throw error
        }
    }

    /// Decides a hold on its caller's thread, under the book's lock, when the book keeps all it
    /// reads (`Book.decidesAtOnce`, every pool of the path): the same checks as `reserve`, and
    /// the hold counted in its pools at once; nil when the book cannot decide it (the batch
    /// will). The caller queues the decision (`Operation.decided`) before it lets go of the lock,
    /// so that the batches write the holds in the order they were decided.
    ///
    /// `settlementsWaiting` (asked only when the request would be refused): settlements are
    /// queued or being written, perhaps not applied yet (one may linger for the next hold's
    /// batch: `GroupCommit`). A request they would refuse is then decided in a batch instead,
    /// after them — an answered request's hold never refuses the next one.
    static func decide(
        _ book: Book, _ request: Lumen_Ledger_V1_ReserveRequest, prices: Lumen_Registry_V1_Prices, now: Int64,
        settlementsWaiting: @autoclosure () -> Bool = false
    ) throws -> Book.Decision? {
        try validateRequestID(request.requestID)
        guard book.decidesAtOnce(request.requestID) else { return nil }
        try validate(request)
        let path = Book.PoolKey.path(of: request)
        var pools: [PoolRecord] = []
        pools.reserveCapacity(path.count)
        for key in path {
            guard var pool = book.keptPool(key) else { return nil }
            pool.refill(now: now)
            pools.append(pool)
        }
        let (hold, window): (Book.Hold, RateWindow?)
        do {
            (hold, window) = try admit(book, request, prices: prices, now: now)
        } catch where settlementsWaiting() {
            return nil
        }
        do {
            try check(request, hold, pools)
        } catch {
            uncount(book, hold)
            if settlementsWaiting() { return nil }
            throw error
        }
        let decision = Book.Decision(requestID: request.requestID, hold: hold, window: window, epoch: book.epoch)
        book.decide(decision, path: path)
        return decision
    }

    /// Writes the line of a hold decided on its caller's thread. Decided since the last reset, it
    /// is counted in its pools already; decided before, the pools were read again from the tables
    /// without it, so it is checked again and placed as a batch places one (a refusal then is
    /// its caller's: the hold never becomes durable, and its answer is never sent).
    static func write(
        _ db: any LedgerTables, _ book: Book, _ request: Lumen_Ledger_V1_ReserveRequest, _ decision: Book.Decision,
        capture: Lumen_Ledger_V1_CaptureSettings?, now: Int64
    ) throws -> Outcome {
        guard book.isCurrent(decision) else {
            book.staleDecisionCame()
            do {
                if try book.hold(db, request.requestID) == nil { _ = try place(db, book, request, decision.hold, now: now) }
            } catch {
                uncount(book, decision.hold)
                throw error
            }
            return .reserved(expiresAt: book.expiry(of: decision.hold), rate: decision.window, capture: capture)
        }
        do {
            try insert(db, request.requestID, decision.hold)
        } catch {
            book.withdraw(decision)
            uncount(book, decision.hold)
            throw error
        }
        book.deliver(decision)
        return .reserved(expiresAt: book.expiry(of: decision.hold), rate: decision.window, capture: capture)
    }

    /// The hold a reserve asks for, counted in its key's minute (the minute first: a request
    /// refused by both is a 429, and a 429 writes nothing); the minute when it counted in one.
    private static func admit(
        _ book: Book, _ request: Lumen_Ledger_V1_ReserveRequest, prices: Lumen_Registry_V1_Prices, now: Int64
    ) throws -> (Book.Hold, RateWindow?) {
        let byok = request.accessChannel == .byok
        let bound = HoldBound(inputTokens: request.inputBoundTokens, outputTokens: request.outputBoundTokens)
        var hold = Book.Hold(
            organizationID: request.organizationID, keyID: request.keyID, owner: request.owner,
            logicalModel: request.logicalModel, modelVendor: request.modelVendor, scene: request.scene,
            accessChannel: request.accessChannel, estimateMicros: byok ? 0 : bound.cost(at: prices), createdAt: now,
            origin: request.origin == .web ? .web : .api, prices: prices)
        guard !request.keyID.isEmpty else { return (hold, nil) }
        let limits = RateLimiter.Limits(requestsPerMinute: Int64(request.rpmLimit), tokensPerMinute: request.tpmLimit)
        switch book.rates.acquire(key: request.keyID, limits: limits, tokens: request.rateTokens, nowMillis: now) {
        case .unlimited:
            return (hold, nil)
        case .admitted(let second, let minute):
            hold.rate = Book.RateCharge(second: second, tokens: request.rateTokens)
            return (hold, minute)
        case .limited(let retryAfter, let reason, let minute):
            var error = ServiceError(.resourceExhausted, "rate_limit_exceeded", "\(reason); retry in \(retryAfter) s")
            error.retryAfter = retryAfter
            error.rateWindow = minute
            throw error
        }
    }

    /// Takes a hold that was not placed out of its key's minute.
    private static func uncount(_ book: Book, _ hold: Book.Hold) {
        if let rate = hold.rate { book.rates.adjust(key: hold.keyID, second: rate.second, tokens: -rate.tokens, request: true) }
    }

    /// The pools' checks and the hold's line, once the key's minute admitted the request.
    private static func place(
        _ db: any LedgerTables, _ book: Book, _ request: Lumen_Ledger_V1_ReserveRequest, _ hold: Book.Hold, now: Int64
    ) throws -> Outcome {
        let path = hold.path
        var pools = try path.map { try book.pool(db, $0, now: now) }
        try check(request, hold, pools)
        try insert(db, request.requestID, hold)
        book.open(request.requestID, hold)
        for (key, index) in zip(path, pools.indices) {
            pools[index].reservedMicros += hold.estimateMicros
            book.update(key, pools[index])
        }
        return .reserved(expiresAt: book.expiry(of: hold))
    }

    /// Whether `hold` fits every pool of its path (`pools`, refills applied); BYOK always does.
    private static func check(_ request: Lumen_Ledger_V1_ReserveRequest, _ hold: Book.Hold, _ pools: [PoolRecord]) throws {
        guard request.accessChannel != .byok else { return }
        let estimate = hold.estimateMicros
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

    /// The hold's row, unless its request has a line already (it was settled or released).
    private static func insert(_ db: any LedgerTables, _ requestID: String, _ hold: Book.Hold) throws {
        if try db.hasLine(requestID) {
            throw ServiceError(.alreadyExists, "request_settled", "request \(requestID) was already settled", param: "request_id")
        }
        try db.insertHold(requestID, hold)
    }

    static func settle(_ db: any LedgerTables, _ book: Book, _ request: Lumen_Ledger_V1_SettleRequest, now: Int64) throws -> Lumen_Ledger_V1_UsageLine {
        guard let hold = try book.hold(db, request.requestID) else {
            if let line = try db.line(request.requestID),
                line.status == Lumen_Ledger_V1_UsageStatus.settled.rawValue
            {
                return line.message
            }
            throw ServiceError(.notFound, "hold_not_found", "no hold for request \(request.requestID)", param: "request_id")
        }
        for (value, name) in [
            (request.inputTokens, "input_tokens"), (request.cachedInputTokens, "cached_input_tokens"),
            (request.cacheWriteTokens, "cache_write_tokens"), (request.outputTokens, "output_tokens"),
            (request.latencyMs, "latency_ms"),
        ] where value < 0 {
            throw ServiceError.invalid("invalid_usage", "\(name) must not be negative", param: name)
        }
        let priced: (micros: Int64, known: Bool) = hold.accessChannel == .byok ? (0, true) : cost(of: request, hold: hold, book: book)
        let charge = priced.micros
        // Charged at the hold when its model's prices could not be found: flagged as estimated.
        let estimated = request.estimated || !priced.known
        // The hold bounds what its request can cost; an upstream past that bound (one that
        // ignores max_tokens) is charged what it reported, and the line says by how much.
        let overrun = max(0, charge - hold.estimateMicros)
        let transaction = try close(
            db, book, request.requestID, hold, charge: charge, overrun: overrun, tokens: request, estimated: estimated,
            expired: false, now: now)
        return .with {
            $0.requestID = request.requestID
            $0.billingTransactionID = transaction
            $0.createdAt = .init(millis: hold.createdAt)
            $0.organizationID = hold.organizationID
            $0.keyID = hold.keyID
            $0.owner = hold.owner
            $0.logicalModel = hold.logicalModel
            $0.modelVendor = hold.modelVendor
            $0.scene = hold.scene
            $0.accessChannel = hold.accessChannel
            $0.origin = hold.origin
            $0.inputTokens = request.inputTokens
            $0.cachedInputTokens = request.cachedInputTokens
            $0.cacheWriteTokens = request.cacheWriteTokens
            $0.outputTokens = request.outputTokens
            $0.costMicros = charge
            $0.latencyMs = request.latencyMs
            $0.status = .settled
            $0.estimated = estimated
            $0.overrunMicros = overrun
            $0.backendID = String(request.backendID.prefix(64))
        }
    }

    /// What a settlement costs: its tokens at the prices its hold was placed at (a hold read back
    /// from the tables: at its model's prices now); the hold itself, not `known`, when its model's
    /// prices cannot be found (a hold placed before a restart, settled before the prices were
    /// followed again, or of a model the registry no longer has).
    static func cost(of request: Lumen_Ledger_V1_SettleRequest, hold: Book.Hold, book: Book) -> (micros: Int64, known: Bool) {
        guard let prices = hold.prices ?? book.prices.cached(hold.logicalModel)?.prices else { return (hold.estimateMicros, false) }
        let tokens = Pricing.Tokens(
            input: request.inputTokens, cachedInput: request.cachedInputTokens, cacheWrite: request.cacheWriteTokens,
            output: request.outputTokens)
        return (Pricing.cost(tokens, at: prices), true)
    }

    /// Settles a hold with `charge` (its line written, the hold deleted) and draws it from every
    /// pool of the path; the line's billing transaction id.
    static func close(
        _ db: any LedgerTables, _ book: Book, _ requestID: String, _ hold: Book.Hold, charge: Int64, overrun: Int64 = 0,
        tokens: Lumen_Ledger_V1_SettleRequest, estimated: Bool, expired: Bool, now: Int64
    ) throws -> String {
        let path = hold.path
        var pools = try path.map { try book.pool(db, $0, now: now) }
        let transaction = Identifier.make("btx")
        try db.closeHold(
            UsageLineRecord(pending: hold, requestID: requestID).settled(
                Settlement(
                    billingTransactionID: transaction, settledAt: now, inputTokens: tokens.inputTokens,
                    cachedInputTokens: tokens.cachedInputTokens, outputTokens: tokens.outputTokens, costMicros: charge,
                    latencyMs: tokens.latencyMs, estimated: estimated, expired: expired, overrunMicros: overrun,
                    backendID: String(tokens.backendID.prefix(64)), cacheWriteTokens: tokens.cacheWriteTokens,
                    httpStatus: Int(tokens.httpStatus), ttftMs: max(0, tokens.ttftMs))))
        if tokens.hasCapture, !expired {
            // Captured as the reserve said (the gateway echoes its retention), kept from the request's start.
            let capture = tokens.capture
            let days = Int64(min(max(capture.retentionDays, CaptureRules.retentionDays.lowerBound), CaptureRules.retentionDays.upperBound))
            try db.execute(CaptureRules.insertCapture, [[
                .text(requestID), .text(hold.organizationID), .integer(hold.createdAt), .integer(hold.createdAt + days * Rollups.day),
                .text(String(capture.prompt.utf8.prefix(Int(CaptureRules.maxBytes.upperBound))) ?? ""),
                .text(String(capture.answer.utf8.prefix(Int(CaptureRules.maxBytes.upperBound))) ?? ""), .bool(capture.truncated),
            ]])
        }
        book.close(requestID)
        if let rate = hold.rate, !expired {
            book.rates.adjust(
                key: hold.keyID, second: rate.second,
                tokens: tokens.inputTokens + tokens.cachedInputTokens + tokens.cacheWriteTokens + tokens.outputTokens - rate.tokens)
        }
        book.roll(hold, Rollups.Totals(
            requests: 1, inputTokens: tokens.inputTokens, cachedInputTokens: tokens.cachedInputTokens,
            cacheWriteTokens: tokens.cacheWriteTokens, outputTokens: tokens.outputTokens, costMicros: charge))
        for (key, index) in zip(path, pools.indices) {
            pools[index].reservedMicros -= hold.estimateMicros
            pools[index].spentMicros += charge
            if pools[index].poolMode == .balance { pools[index].balanceMicros -= charge }
            book.update(key, pools[index])
        }
        return transaction
    }

    /// Settles every hold whose time is up at its estimate, flagged `expired` and
    /// `estimated`: a request whose settlement never came (the gateway died, the stream
    /// broke) is charged what was held for it — never nothing, never more. At most
    /// `reconcileBatch` per sweep, so one sweep never holds the writer for long.
    static func reconcile(_ db: any LedgerTables, _ book: Book, now: Int64) throws -> Int {
        let expired = try book.expired(db, now: now).prefix(reconcileBatch)
        for (requestID, hold) in expired {
            _ = try close(
                db, book, requestID, hold, charge: hold.estimateMicros, tokens: .init(), estimated: true, expired: true, now: now)
        }
        return expired.count
    }

    static let reconcileBatch = 1_000

    /// Drops the hold (nothing was produced), its line kept FAILED at no cost; releasing twice,
    /// or a request never held, changes nothing.
    static func release(_ db: any LedgerTables, _ book: Book, _ request: Lumen_Ledger_V1_ReleaseRequest, now: Int64) throws {
        guard let hold = try book.hold(db, request.requestID) else { return }
        let path = hold.path
        let pools = try path.map { try book.pool(db, $0, now: now) }
        try db.closeHold(
            UsageLineRecord(pending: hold, requestID: request.requestID).failed(
                Failure(
                    settledAt: now, httpStatus: Int(request.httpStatus), errorCode: String(request.errorCode.prefix(64)),
                    latencyMs: max(0, request.latencyMs), backendID: String(request.backendID.prefix(64)))))
        book.close(request.requestID)
        if let rate = hold.rate { book.rates.adjust(key: hold.keyID, second: rate.second, tokens: -rate.tokens, request: true) }
        for (key, var pool) in zip(path, pools) {
            pool.reservedMicros -= hold.estimateMicros
            book.update(key, pool)
        }
    }

    static func validate(_ request: Lumen_Ledger_V1_ReserveRequest) throws {
        guard !request.organizationID.isEmpty else {
            throw ServiceError.invalid("organization_required", "organization_id is required", param: "organization_id")
        }
        // Only the dashboard's web chat goes without a key: a person, charged to their own pool.
        guard !request.keyID.isEmpty || (request.origin == .web && request.owner.type == .user) else {
            throw ServiceError.invalid(
                "key_required", "key_id is required (only the web chat, origin WEB for a user, has none)", param: "key_id")
        }
        guard request.owner.type != .unspecified, request.owner.type != .key, !request.owner.id.isEmpty else {
            throw ServiceError.invalid("invalid_owner", "owner must be the organisation, a user or a client", param: "owner")
        }
        for (value, name) in [(request.inputBoundTokens, "input_bound_tokens"), (request.outputBoundTokens, "output_bound_tokens")]
        where value < 0 {
            throw ServiceError.invalid("invalid_bound", "\(name) must not be negative", param: name)
        }
        guard request.accessChannel != .unspecified else {
            throw ServiceError.invalid("invalid_access_channel", "access_channel is required", param: "access_channel")
        }
        for (value, name) in [(Int64(request.rpmLimit), "rpm_limit"), (request.tpmLimit, "tpm_limit"), (request.rateTokens, "rate_tokens")]
        where value < 0 {
            throw ServiceError.invalid("invalid_rate_limit", "\(name) must not be negative", param: name)
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
