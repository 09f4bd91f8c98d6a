import Audit
import GRDB
import GRPCCore
import Logging
import LumenAPI
import RPCSupport
import ServiceLifecycle
import SharedRules
import Storage
import Synchronization
import Tracing
import UpstreamClient

/// The ledger service: pools, holds, usage lines and billing.
///
/// Every write — reserve, settle and release (one at a time or many in flight over `Meter`),
/// the reconciler's sweeps, pool configuration and grants — goes through one `GroupCommit`
/// and its in-memory `Book`, so concurrent operations share a durable transaction and a
/// grant is seen by the next reserve. Reads (pools, balances, usage, billing) see committed
/// batches, once the operations queued before them are in (`read`). The tables are a SQLite
/// file or the `ledger` schema of PostgreSQL (`Store`); the rules are the same code on both
/// (`LedgerTables` for the metering, `SQLStore` for the reads).
public struct LedgerService: Sendable {
    let store: Store
    /// The deployment's audit signing key: it signs the checkpoint of the entries pruned past
    /// retention (`pruneAudit`) and `VerifyAuditLog` checks a checkpoint with it. nil: never pruned.
    public var auditSigner: AuditSigner?
    /// The ledger's tables for reads (usage, billing, totals, the invariant check).
    var tables: any SQLStore { store.reads }
    let clock: WallClock
    let logger: Logger
    let committer: GroupCommit<Metering.Operation, Metering.Outcome>
    /// The metering's working state; only `committedPool` is read outside the group commit.
    let book: Book
    let holdTTL: Duration
    /// Who exists (accounts' users and clients, keys): asked before a pool or a key's usage is
    /// touched, so that a typo is NOT_FOUND, not a phantom pool. nil: not checked (tools that
    /// open the ledger alone).
    let directory: (any PrincipalDirectory)?
    /// Which keys are whose (`GetKeyTotals` checks a person's ids against it).
    let ownership = KeyOwnership()
    /// Watches the pools with budget alerts as batches commit, and records their crossings.
    let alerts = AlertMonitor()
    /// Whose requests' prompts and answers are captured.
    let captures = CaptureRules()
    /// The webhooks' signing secrets and the hosts they may be on (`--alert-webhook-hosts`).
    public var alertSettings = AlertSettings.random()

    /// How long a hold lives by default: 15 minutes.
    public static let defaultHoldTTL: Duration = .seconds(15 * 60)

    /// Where the ledger keeps its tables, opened (and migrated) by `openStore`.
    public struct Store: Sendable {
        enum Backend: Sendable {
            /// The writer (the group commit's) and reads of the same database.
            case sqlite(any DatabaseWriter, SQLiteStore)
            case postgres(PostgresLedger)
        }

        let backend: Backend

        init(backend: Backend) {
            self.backend = backend
        }

        /// The ledger database in SQLite at `location`.
        public init(sqlite location: ServiceDatabase.Location) throws {
            let writer = try ServiceDatabase.open(name: "ledger", at: location, migrator: LedgerStore.migrator)
            self.backend = .sqlite(writer, SQLiteStore(reading: writer))
        }

        /// The tables for reads (usage, billing, totals, the invariant check, the audit log).
        var reads: any SQLStore {
            switch backend {
            case .sqlite(_, let reads): reads
            case .postgres(let ledger): ledger.tables
            }
        }

        /// The audit log, read from the tables the group commit writes it in.
        var auditLog: AuditLog { AuditLog(sql: reads) }
    }

    /// The ledger's audit log as `Storage.AuditLogged` reads it.
    struct AuditLog: AuditLogged {
        let sql: any SQLStore
    }

    /// Opens the ledger's tables: a SQLite file, or the `ledger` schema of a PostgreSQL database
    /// (whose process must be its only writer: `PostgresServiceDatabase.claim`).
    public static func openStore(_ location: StoreLocation, logger: Logger) async throws -> Store {
        switch location {
        case .sqlite(let location): try Store(sqlite: location)
        case .postgres(let database): Store(backend: .postgres(try await PostgresLedger(database: database, logger: logger)))
        }
    }

    /// Checks the invariant on `store`'s tables (one consistent snapshot): `lumen admin ledger check`.
    public static func check(_ store: Store) async throws -> LedgerCheck.Report {
        try await store.reads.snapshot(LedgerCheck.check)
    }

    /// Walks the ledger's audit log in `store` (`lumen admin audit verify`).
    public static func verifyAudit(_ store: Store, signer: AuditSigner?) async throws -> AuditVerification {
        try await store.auditLog.verifyAudit(signer: signer)
    }

    /// Prunes the audit entries older than `retentionDays` behind a signed checkpoint; how many
    /// went (none without a signer or a retention). On SQLite on the group commit's writer.
    public func pruneAudit(retentionDays: Int) async throws -> Int64 {
        let now = clock.nowMillis
        guard let auditSigner, let cutoff = AuditTrail.cutoff(retentionDays: retentionDays, now: now) else { return 0 }
        switch store.backend {
        case .sqlite(let writer, _):
            return try await writer.write { db in try AuditTrail.prune(before: cutoff, signer: auditSigner, now: now, in: db) }
        case .postgres(let ledger):
            return try await ledger.tables.write { session in
                try await AuditTrail.prune(before: cutoff, signer: auditSigner, now: now, in: session)
            }
        }
    }

    /// Opens the ledger database at `location`. A hold not settled or released within
    /// `holdTTL` is settled at its estimate by the reconciler: it must outlast the longest
    /// request (a long stream), or that request is billed its estimate.
    public init(
        location: ServiceDatabase.Location, prices: PriceBook, clock: WallClock = .system,
        holdTTL: Duration = LedgerService.defaultHoldTTL, directory: (any PrincipalDirectory)? = nil, logger: Logger
    ) throws {
        self.init(
            store: try Store(sqlite: location), prices: prices, clock: clock, holdTTL: holdTTL, directory: directory, logger: logger)
    }

    /// The ledger on tables opened with `openStore`, pricing at `prices` (run it beside the
    /// ledger: it follows the registry).
    public init(
        store: Store, prices: PriceBook, clock: WallClock = .system, holdTTL: Duration = LedgerService.defaultHoldTTL,
        directory: (any PrincipalDirectory)? = nil, logger: Logger
    ) {
        self.store = store
        self.clock = clock
        self.logger = logger
        self.holdTTL = holdTTL
        self.directory = directory
        let book = Book(holdTTLMillis: holdTTL.wholeMilliseconds, prices: prices)
        book.onCommit = { [alerts] pools in alerts.committed(pools) }
        self.book = book
        switch store.backend {
        case .sqlite(let writer, _):
            // The book under its lock one operation at a time (a hold decided on a caller's
            // thread waits for one operation at most).
            self.committer = GroupCommit(
                writer: writer, savepoints: false, synced: { $0.synced }, linger: Self.settlementLinger, lingers: { $0.lingers },
                beforeCommit: { db in try book.lock.withLock { try book.flush(SQLiteLedgerTables(db: db)) } },
                afterRollback: { book.lock.withLock { book.reset() } },
                afterCommit: { book.committed(book.lock.withLock { book.flushed() }) }
            ) { db, operation in
                try book.lock.withLock { try Metering.apply(SQLiteLedgerTables(db: db), book, operation, now: clock.nowMillis) }
            }
        case .postgres(let ledger):
            // Each batch at one time (what it read first was chosen for it), applied while the
            // batch before commits.
            self.committer = GroupCommit(synced: { $0.synced }, linger: Self.settlementLinger, lingers: { $0.lingers }) {
                batch, synced, decided, proceed, done in
                ledger.write(
                    batch, synced: synced, book: book, now: clock.nowMillis, decided: decided, proceed: proceed, done: done)
            }
        }
    }

    /// Settles every hold expired by now at its estimate (see `Metering.reconcile`); how many.
    public func reconcileExpiredHolds() async throws -> Int {
        guard case .reconciled(let count) = try await meter(.reconcile) else { return 0 }
        if count > 0 {
            logger.warning("expired holds settled at their estimate", metadata: ["holds": "\(count)"])
        }
        return count
    }

    /// Deletes usage lines (settled and failed) created before the UTC day `retentionDays` days
    /// before today, in chunks so that metering waits at most one chunk; how many. Rollups stay.
    public func pruneUsage(retentionDays: Int) async throws -> Int {
        guard retentionDays > 0 else { return 0 }
        let today = clock.nowMillis / Rollups.day * Rollups.day
        let cutoff = today - Int64(retentionDays) * Rollups.day
        var total = 0
        while true {
            let deleted: Int
            switch store.backend {
            case .sqlite(let writer, _):
                deleted = try await writer.write { db in try Retention.prune(db, before: cutoff, limit: Retention.chunk) }
            case .postgres(let ledger):
                deleted = try await ledger.prune(before: cutoff, limit: Retention.chunk)
            }
            total += deleted
            if deleted < Retention.chunk { break }
        }
        if total > 0 {
            logger.info("usage lines past retention deleted", metadata: ["lines": "\(total)", "retention_days": "\(retentionDays)"])
        }
        return total
    }

    /// The reconciler, to run next to the service: a sweep of expired holds every
    /// `interval` (by default a quarter of the hold TTL, between 1 and 60 seconds), and every
    /// hour the deletion of lines older than `usageRetentionDays` (0: lines are kept forever).
    public func reconciler(every interval: Duration? = nil, usageRetentionDays: Int = 0) -> some Service {
        let sweep = interval ?? min(.seconds(60), max(.seconds(1), holdTTL / 4))
        return HoldReconciler(ledger: self, interval: sweep, usageRetentionDays: usageRetentionDays)
    }

    /// Budget alerts, to run next to the service: the monitor that records crossings as batches
    /// commit, and the deliveries to the organisations' webhooks through `client`.
    public func alertService(client: UpstreamClient) -> some Service {
        AlertService(ledger: self, deliverer: AlertDeliverer(settings: alertSettings, client: client))
    }

    /// Evaluates the pools with alerts changed since the last time and records their crossings
    /// (what the alert service does as batches commit); how many alerts were recorded.
    @discardableResult
    public func processAlerts() async throws -> Int { try await alerts.process(self) }

    /// Sends the alert deliveries due now through `client`; how many were delivered.
    @discardableResult
    public func deliverAlerts(client: UpstreamClient) async throws -> Int {
        try await AlertDeliverer(settings: alertSettings, client: client).deliverDue(self)
    }

    /// Throws NOT_FOUND unless `owner` exists in the organisation (when a directory is set).
    /// Asked for management tokens and persons — people, who mistype; Lumen's own processes
    /// (the internal token) name principals from their records.
    func requireExists(_ owner: Lumen_Common_V1_PrincipalRef, organizationID: String, param: String) async throws {
        try await Caller.requireExists(owner, organizationID: organizationID, param: param, in: directory)
    }

    /// For a person: passes when they may act for `principal` (a key: for its owner, which the
    /// keys service tells); the organisation's pool is an administrator's. Others pass.
    func requireActing(for principal: Lumen_Common_V1_PrincipalRef, organizationID: String, param: String, to action: String) async throws {
        guard Caller.current?.person != nil else { return }
        var owner = principal
        if principal.type == .key {
            guard let directory else { throw Self.noDirectory }
            owner = try await directory.owner(ofKey: principal.id, organizationID: organizationID, param: param)
        }
        do {
            if owner.type == .organization || owner.type == .unspecified { try Caller.requireAdmin(to: action) }
            try Caller.requireActing(for: owner, to: action)
        } catch let error as ServiceError where error.status == .permissionDenied && principal.type == .key {
            // Another person's key is not found, as another organisation's is: its id tells nothing.
            throw ServiceError(.notFound, "key_not_found", "no key \(principal.id)", param: param)
        }
    }

    /// How long a settlement queued while the ledger's writer is idle waits for the next hold to
    /// share its transaction (one commit a request on a connection instead of two), at most.
    static let settlementLinger = Duration.milliseconds(5)

    static let noDirectory = ServiceError(
        .unavailable, "directory_unavailable", "this ledger cannot tell whose a key is: give it --keys-address")

    /// Reads what includes every metering operation queued before the call: the settlement a
    /// gateway queued before answering is in any read that follows the answer. `snapshot`: all
    /// of `body`'s statements see one committed state (a page and its total agree).
    func read<T: Sendable>(snapshot: Bool = false, _ body: @escaping @Sendable (any SQLSession) async throws -> T) async throws -> T {
        await committer.flushed()
        return snapshot ? try await tables.snapshot(body) : try await tables.read(body)
    }

    /// A pool as committed, refills due applied, after every metering operation queued before
    /// the call: from the book's committed pools (no database read, no hop), or — a pool not
    /// seen since the ledger started — read through the group commit (in a batch's
    /// transaction on the writer, answered once that batch is committed), which publishes it.
    func pool(_ key: Book.PoolKey) async throws -> PoolRecord {
        await committer.flushed()
        if var pool = book.committedPool(key) {
            pool.refill(now: clock.nowMillis)
            return pool
        }
        guard case .pool(let pool) = try await meter(.pool(key)) else {
            throw ServiceError(.internalError, "internal", "the ledger answered a pool read with something else")
        }
        return pool
    }

    /// Runs one metering operation through the group commit.
    func meter(_ operation: Metering.Operation) async throws -> Metering.Outcome {
        let result = await withCheckedContinuation { continuation in
            commit(operation) { continuation.resume(returning: $0) }
        }
        return try result.get()
    }

    /// Decides a reserve (`.reserve`) at once on the caller's thread when the book keeps all it
    /// reads (`Metering.decide`) and queues the write of its hold; `completion` hears once that
    /// is durable (or has failed: the hold then never existed). Nil when the book cannot decide
    /// it: `commit` it then. A refusal is thrown, and nothing is queued.
    func decideAtOnce(
        _ operation: Metering.Operation, completion: @escaping @Sendable (Result<Metering.Outcome, ServiceError>) -> Void
    ) throws -> Metering.Outcome? {
        guard case .reserve(let request, let prices, let capture) = operation else { return nil }
        return try book.lock.withLock {
            guard
                let decision = try Metering.decide(
                    book, request, prices: prices, now: clock.nowMillis, settlementsWaiting: committer.lingeringInFlight)
            else { return nil }
            // Queued under the lock: holds are written in the order they were decided.
            commit(.decided(request, decision, capture: capture), completion: completion)
            return .reserved(expiresAt: book.expiry(of: decision.hold), rate: decision.window, capture: capture)
        }
    }

    /// Queues `operation` into the group commit; `completion` hears its result once its batch
    /// is durable (or failed); `decided`, when given, its successful outcome as soon as it is
    /// applied, before its batch commits (README, "Durability"). A hold operation the gateway
    /// traces gets a span of its own, child of the gateway's, from its arrival here to the
    /// moment it is durable (README, "Tracing").
    func commit(
        _ operation: Metering.Operation, decided: (@Sendable (Metering.Outcome) -> Void)? = nil,
        completion: @escaping @Sendable (Result<Metering.Outcome, ServiceError>) -> Void
    ) {
        let span = operation.traced.flatMap { Traces.start($0.name, continuing: $0.traceparent) }
        guard let span else {
            committer.enqueue(operation, decided: decided) { completion(self.settled($0, operation)) }
            return
        }
        span.attributes["lumen.request_id"] = operation.requestID
        committer.enqueue(operation, decided: decided) { result in
            let settled = self.settled(result, operation)
            if case .failure(let refusal) = settled { Traces.fail(span, code: refusal.code, message: refusal.message) }
            span.end()
            completion(settled)
        }
    }

    /// A committed operation's result, with storage failures logged and turned into
    /// `ledger_unavailable` (the caller may retry: every operation is idempotent).
    func settled(_ result: Result<Metering.Outcome, any Error>, _ operation: Metering.Operation) -> Result<Metering.Outcome, ServiceError> {
        switch result {
        case .success(let outcome): return .success(outcome)
        case .failure(let error as ServiceError): return .failure(error)
        case .failure(let error):
            logger.error("ledger write failed", metadata: ["request_id": "\(operation.requestID)", "error": "\(error)"])
            return .failure(ServiceError(.unavailable, "ledger_unavailable", "the ledger could not record this request; try again"))
        }
    }

    /// The `Meter` stream's message for an operation's result; failures are a status, not an error.
    static func answer(_ result: Result<Metering.Outcome, ServiceError>, requestID: String) -> Lumen_Ledger_V1_MeterResponse {
        .with {
            $0.requestID = requestID
            switch result {
            case .success(.reserved(let expiresAt, let rate, let capture)):
                $0.holdExpiresAt = .init(millis: expiresAt)
                if let rate { $0.rateLimit = rate.message }
                if let capture { $0.capture = capture }
            case .success: break
            case .failure(let failure):
                $0.statusCode = Int32(failure.status.rawValue)
                $0.reason = failure.code
                $0.message = failure.message
                if let retryAfter = failure.retryAfter { $0.retryAfterSeconds = retryAfter }
                if let rate = failure.rateWindow { $0.rateLimit = rate.message }
            }
        }
    }
}

extension LedgerService: Lumen_Ledger_V1_LedgerService.SimpleServiceProtocol {
    public func getPool(request: Lumen_Ledger_V1_GetPoolRequest, context: ServerContext) async throws -> Lumen_Ledger_V1_GetPoolResponse {
        let organizationID = try Caller.organization(request.organizationID)
        let key = try PoolAdministration.poolKey(organizationID: organizationID, owner: request.owner)
        try await requireExists(request.owner, organizationID: organizationID, param: "owner")
        try await requireActing(for: request.owner, organizationID: organizationID, param: "owner", to: "see pools")
        let pool = try await pool(key)
        return .with { $0.pool = pool.message(now: clock.nowMillis) }
    }

    public func configurePool(request: Lumen_Ledger_V1_ConfigurePoolRequest, context: ServerContext) async throws -> Lumen_Ledger_V1_ConfigurePoolResponse {
        let organizationID = try Caller.organization(request.organizationID)
        let key = try PoolAdministration.poolKey(organizationID: organizationID, owner: request.owner)
        try await requireExists(request.owner, organizationID: organizationID, param: "owner")
        try Caller.requireAdmin(to: "configure pools")
        let now = clock.nowMillis
        let audit = ServiceAudit.entry("pool.configure", "pool", key.ownerID, organizationID: organizationID, at: now)
        guard case .pool(let pool) = try await meter(.configure(organizationID: organizationID, request, audit: audit)) else {
            return .init()
        }
        logger.notice(
            "pool configured",
            metadata: ["organization_id": "\(organizationID)", "owner": "\(LedgerCheck.describe(pool.ownerType, pool.ownerID))",
                       "mode": "\(pool.poolMode)"])
        return .with { $0.pool = pool.message(now: now) }
    }

    public func grant(request: Lumen_Ledger_V1_GrantRequest, context: ServerContext) async throws -> Lumen_Ledger_V1_GrantResponse {
        let organizationID = try Caller.organization(request.organizationID)
        let key = try PoolAdministration.poolKey(organizationID: organizationID, owner: request.owner)
        try await requireExists(request.owner, organizationID: organizationID, param: "owner")
        try Caller.requireAdmin(to: "grant")
        let grantedBy = try Caller.require().userID ?? ""
        let now = clock.nowMillis
        let audit = ServiceAudit.entry("pool.grant", "pool", key.ownerID, organizationID: organizationID, at: now)
        guard
            case .granted(let grant, let pool) = try await meter(
                .grant(organizationID: organizationID, grantedBy: grantedBy, request, audit: audit))
        else { return .init() }
        logger.notice(
            "grant",
            metadata: ["organization_id": "\(organizationID)", "grant_id": "\(grant.id)",
                       "owner": "\(LedgerCheck.describe(grant.ownerType, grant.ownerID))", "amount_micros": "\(grant.amountMicros)"])
        return .with {
            $0.grant = grant.message
            $0.pool = pool.message(now: now)
        }
    }

    public func listGrants(request: Lumen_Ledger_V1_ListGrantsRequest, context: ServerContext) async throws -> Lumen_Ledger_V1_ListGrantsResponse {
        let organizationID = try Caller.organization(request.organizationID)
        try Caller.requireAdmin(to: "list grants")
        let page = try Page(request.page, defaultLimit: 50, maxLimit: 100)
        var filter = "organization_id = ?"
        var arguments: [SQLValue] = [.text(organizationID)]
        if request.hasOwner {
            let key = try PoolAdministration.poolKey(organizationID: organizationID, owner: request.owner)
            try await requireExists(request.owner, organizationID: organizationID, param: "owner")
            filter += " AND owner_type = ? AND owner_id = ?"
            arguments += [.of(key.ownerType), .text(key.ownerID)]
        }
        let (grants, total) = try await read(snapshot: true) { [filter, arguments] db in
            (
                try await db.rows(
                    "SELECT \(GrantRow.columns) FROM grants WHERE \(filter) ORDER BY created_at DESC, id DESC LIMIT ? OFFSET ?",
                    arguments + [.of(page.limit), .of(page.offset)]
                ).map(GrantRow.init),
                try await db.rows("SELECT count(*) FROM grants WHERE \(filter)", arguments)[0][0] as Int
            )
        }
        return .with {
            $0.grants = grants.map(\.message)
            $0.pageInfo = page.info(total: total)
        }
    }

    public func getOrganizationBalance(request: Lumen_Ledger_V1_GetOrganizationBalanceRequest, context: ServerContext) async throws -> Lumen_Ledger_V1_GetOrganizationBalanceResponse {
        let organizationID = try Caller.organization(request.organizationID)
        try Caller.requireAdmin(to: "see the organisation's balance")
        let now = clock.nowMillis
        let key = try PoolAdministration.poolKey(organizationID: organizationID, owner: .with { $0.type = .organization })
        let pool = try await pool(key)
        return .with {
            $0.mode = pool.poolMode
            $0.balanceMicros = pool.balanceMicros
            $0.reservedMicros = pool.reservedMicros
            $0.availableMicros = pool.balanceMicros - pool.reservedMicros
            $0.spentMicros = pool.spentMicros
            $0.grantedMicros = pool.grantedMicros
            $0.asOf = .init(millis: now)
            if let limit = pool.limitMicros { $0.limitMicros = limit }
            $0.refillPerHourMicros = pool.refillPerHourMicros
            if let next = pool.nextRefillAt { $0.nextRefillAt = .init(millis: next) }
        }
    }

    /// A reserve with its model's prices (nothing to look up for BYOK, which holds nothing).
    /// A reserve with its model's prices (nothing to look up for BYOK, which holds nothing), and
    /// how its request is captured, if it is.
    func reserveOperation(_ request: Lumen_Ledger_V1_ReserveRequest) async throws -> Metering.Operation {
        let capture = try await captures.settings(self, organizationID: request.organizationID, owner: request.owner, keyID: request.keyID)
        if request.accessChannel == .byok { return .reserve(request, prices: .init(), capture: capture) }
        if let model = book.prices.cached(request.logicalModel) { return .reserve(request, prices: model.prices, capture: capture) }
        return .reserve(request, prices: try await book.prices.model(request.logicalModel).prices, capture: capture)
    }

    public func reserve(request: Lumen_Ledger_V1_ReserveRequest, context: ServerContext) async throws -> Lumen_Ledger_V1_ReserveResponse {
        try Caller.requireInternal()
        guard case .reserved(let expiresAt, let rate, let capture) = try await meter(try await reserveOperation(request)) else {
            return .init()
        }
        return .with {
            $0.expiresAt = .init(millis: expiresAt)
            if let rate { $0.rateLimit = rate.message }
            if let capture { $0.capture = capture }
        }
    }
    public func settle(request: Lumen_Ledger_V1_SettleRequest, context: ServerContext) async throws -> Lumen_Ledger_V1_SettleResponse {
        try Caller.requireInternal()
        guard case .settled(let line) = try await meter(.settle(request)) else { return .init() }
        return .with { $0.line = line }
    }
    public func release(request: Lumen_Ledger_V1_ReleaseRequest, context: ServerContext) async throws -> Lumen_Ledger_V1_ReleaseResponse {
        try Caller.requireInternal()
        _ = try await meter(.release(request))
        return .init()
    }

    /// Every operation is answered as soon as its batch commits, in whatever order that is; a
    /// reserve sent with `answer_when_decided` also as soon as its batch has applied it.
    /// Messages go straight into the group commit as they arrive (no task per message);
    /// answers go back through one writer task because an `RPCWriter` takes one write at a
    /// time. The stream ends once every operation received has been answered.
    public func meter(
        request: RPCAsyncSequence<Lumen_Ledger_V1_MeterRequest, any Error>,
        response: RPCWriter<Lumen_Ledger_V1_MeterResponse>,
        context: ServerContext
    ) async throws {
        try Caller.requireInternal()
        let (answers, outbox) = AsyncStream.makeStream(of: Lumen_Ledger_V1_MeterResponse.self)
        // Operations in flight, and whether the caller has sent its last.
        let open = Mutex((inFlight: 0, ended: false))
        @Sendable func answered(_ answer: Lumen_Ledger_V1_MeterResponse) {
            outbox.yield(answer)
            let done = open.withLock { state in
                state.inFlight -= 1
                return state.ended && state.inFlight == 0
            }
            if done { outbox.finish() }
        }
        try await withThrowingDiscardingTaskGroup { group in
            group.addTask {
                for await answer in answers { try await response.write(answer) }
            }
            defer {
                let done = open.withLock { state in
                    state.ended = true
                    return state.inFlight == 0
                }
                if done { outbox.finish() }
            }
            for try await message in request {
                let operation: Metering.Operation
                switch message.op {
                case .reserve(let request):
                    // A model's prices are held (the watch brought them) but for a model created a
                    // moment ago, which is asked of the registry once.
                    do {
                        operation = try await reserveOperation(request)
                    } catch {
                        let failure = error as? ServiceError ?? ServiceError(.unavailable, "prices_unavailable", "\(error)")
                        outbox.yield(Self.answer(.failure(failure), requestID: request.requestID))
                        continue
                    }
                case .settle(let request): operation = .settle(request)
                case .release(let request): operation = .release(request)
                case nil:
                    outbox.yield(.with {
                        $0.statusCode = Int32(RPCError.Code.invalidArgument.rawValue)
                        $0.reason = "empty_operation"
                        $0.message = "a MeterRequest needs one of reserve, settle, release"
                    })
                    continue
                }
                open.withLock { $0.inFlight += 1 }
                // A reserve that asks is answered twice: decided (before its batch commits), then durable.
                var early: (@Sendable (Metering.Outcome) -> Void)?
                if message.answerWhenDecided, case .reserve = operation {
                    early = { outcome in
                        var answer = Self.answer(.success(outcome), requestID: operation.requestID)
                        answer.decided = true
                        outbox.yield(answer)
                    }
                }
                commit(operation, decided: early) { answered(Self.answer($0, requestID: operation.requestID)) }
            }
        }
    }

    /// The page's lines come from the `usage_by_key` index in its order; the total is counted
    /// from the rollups (settled lines) and the open holds (pending ones), never by scanning
    /// the key's lines.
    public func listUsage(request: Lumen_Ledger_V1_ListUsageRequest, context: ServerContext) async throws -> Lumen_Ledger_V1_ListUsageResponse {
        let organizationID = try Caller.organization(request.filter.organizationID)
        let filter = try UsageQuery(request.filter, organizationID: organizationID)
        try await requireExists(.with { $0.type = .key; $0.id = filter.keyID }, organizationID: organizationID, param: "key_id")
        try await requireActing(
            for: .with { $0.type = .key; $0.id = filter.keyID }, organizationID: organizationID, param: "key_id", to: "see usage")
        let page = try Page(request.page, defaultLimit: 50, maxLimit: 100)
        let (lines, total) = try await read(snapshot: true) { db in
            let retainedFrom = try await Retention.retainedFrom(db)
            let range = max(filter.range.lowerBound, retainedFrom)..<max(filter.range.upperBound, retainedFrom)
            let settled = try await Rollups.settled(db, filter, range: range).values.reduce(0) { $0 + $1.requests }
            let total = settled + (try await Rollups.pendingCount(db, filter, range: range))
            guard page.offset < total else { return ([UsageLineRecord](), Int(total)) }
            return (try await filter.page(db, range: range, limit: page.limit, offset: page.offset), Int(total))
        }
        return .with {
            $0.lines = lines.map(\.message)
            $0.pageInfo = page.info(total: total)
        }
    }

    public func getBilling(request: Lumen_Ledger_V1_GetBillingRequest, context: ServerContext) async throws -> Lumen_Ledger_V1_GetBillingResponse {
        let organizationID = try Caller.organization(request.filter.organizationID)
        let filter = try UsageQuery(request.filter, organizationID: organizationID)
        try await requireExists(.with { $0.type = .key; $0.id = filter.keyID }, organizationID: organizationID, param: "key_id")
        try await requireActing(
            for: .with { $0.type = .key; $0.id = filter.keyID }, organizationID: organizationID, param: "key_id", to: "see usage")
        let groups = try await read(snapshot: true) { db in try await Rollups.settled(db, filter, range: filter.range) }
        return Billing.response(groups)
    }

    public func getKeyTotals(request: Lumen_Ledger_V1_GetKeyTotalsRequest, context: ServerContext) async throws -> Lumen_Ledger_V1_GetKeyTotalsResponse {
        let organizationID = try Caller.organization(request.organizationID)
        guard request.keyIds.count <= 1000 else {
            throw ServiceError.invalid("too_many_keys", "ask for at most 1,000 keys at once", param: "key_ids")
        }
        let keyIDs = request.keyIds
        if Caller.current?.person != nil {
            // A person names whose keys they ask about, and gets only that owner's.
            guard request.hasOwner else {
                throw ServiceError(.permissionDenied, "not_permitted", "give owner: whose keys these are", param: "owner")
            }
            try await requireExists(request.owner, organizationID: organizationID, param: "owner")
            try await requireActing(for: request.owner, organizationID: organizationID, param: "owner", to: "see usage")
            guard let directory else { throw Self.noDirectory }
            if let other = try await ownership.firstNotOwned(keyIDs, by: request.owner, organizationID: organizationID, directory: directory) {
                throw ServiceError(.permissionDenied, "not_permitted", "\(other) is not a key of \(request.owner.id)", param: "key_ids")
            }
        }
        let totals = try await read { db in try await KeyTotals.fetch(db, organizationID: organizationID, keyIDs: keyIDs) }
        return .with { $0.totals = totals }
    }

    public func getOwnerUsage(request: Lumen_Ledger_V1_GetOwnerUsageRequest, context: ServerContext) async throws -> Lumen_Ledger_V1_GetOwnerUsageResponse {
        let organizationID = try Caller.organization(request.organizationID)
        guard request.owner.type == .user || request.owner.type == .client, !request.owner.id.isEmpty else {
            throw ServiceError.invalid("invalid_owner", "owner must be a user or a client", param: "owner")
        }
        try await requireExists(request.owner, organizationID: organizationID, param: "owner")
        try await requireActing(for: request.owner, organizationID: organizationID, param: "owner", to: "see usage")
        let owner = request.owner
        let (models, origins) = try await read(snapshot: true) { db in
            (
                try await OwnerTotals.fetch(db, organizationID: organizationID, owner: owner),
                try await OwnerTotals.origins(db, organizationID: organizationID, owner: owner)
            )
        }
        return .with {
            $0.models = models
            $0.origins = origins
        }
    }

    public func getUsageSeries(
        request: Lumen_Ledger_V1_GetUsageSeriesRequest, context: ServerContext
    ) async throws -> Lumen_Ledger_V1_GetUsageSeriesResponse {
        let organizationID = try Caller.organization(request.organizationID)
        let series = try UsageSeries(request, organizationID: organizationID, now: clock.nowMillis)
        if let owner = series.owner {
            try await requireExists(owner, organizationID: organizationID, param: "owner")
            try await requireActing(for: owner, organizationID: organizationID, param: "owner", to: "see usage")
        } else {
            try Caller.requireAdmin(to: "see the organisation's usage")
        }
        return try await read(snapshot: true) { db in try await series.fetch(db) }
    }

    public func listRequests(request: Lumen_Ledger_V1_ListRequestsRequest, context: ServerContext) async throws -> Lumen_Ledger_V1_ListRequestsResponse {
        try await listRequests(request)
    }

    public func setCapture(request: Lumen_Ledger_V1_SetCaptureRequest, context: ServerContext) async throws -> Lumen_Ledger_V1_SetCaptureResponse {
        try await setCapture(request)
    }

    public func listCaptures(request: Lumen_Ledger_V1_ListCapturesRequest, context: ServerContext) async throws -> Lumen_Ledger_V1_ListCapturesResponse {
        try await listCaptures(request)
    }

    public func getRequestCapture(
        request: Lumen_Ledger_V1_GetRequestCaptureRequest, context: ServerContext
    ) async throws -> Lumen_Ledger_V1_GetRequestCaptureResponse {
        try await getRequestCapture(request)
    }

    public func setPoolAlerts(request: Lumen_Ledger_V1_SetPoolAlertsRequest, context: ServerContext) async throws -> Lumen_Ledger_V1_SetPoolAlertsResponse {
        try await setPoolAlerts(request)
    }

    public func getPoolAlerts(request: Lumen_Ledger_V1_GetPoolAlertsRequest, context: ServerContext) async throws -> Lumen_Ledger_V1_GetPoolAlertsResponse {
        try await getPoolAlerts(request)
    }

    public func createAlertEndpoint(
        request: Lumen_Ledger_V1_CreateAlertEndpointRequest, context: ServerContext
    ) async throws -> Lumen_Ledger_V1_CreateAlertEndpointResponse {
        try await createAlertEndpoint(request)
    }

    public func listAlertEndpoints(
        request: Lumen_Ledger_V1_ListAlertEndpointsRequest, context: ServerContext
    ) async throws -> Lumen_Ledger_V1_ListAlertEndpointsResponse {
        try await listAlertEndpoints(request)
    }

    public func deleteAlertEndpoint(
        request: Lumen_Ledger_V1_DeleteAlertEndpointRequest, context: ServerContext
    ) async throws -> Lumen_Ledger_V1_DeleteAlertEndpointResponse {
        try await deleteAlertEndpoint(request)
    }

    public func listAlertDeliveries(
        request: Lumen_Ledger_V1_ListAlertDeliveriesRequest, context: ServerContext
    ) async throws -> Lumen_Ledger_V1_ListAlertDeliveriesResponse {
        try await listAlertDeliveries(request)
    }

    public func listAuditLog(
        request: Lumen_Common_V1_ListAuditLogRequest, context: ServerContext
    ) async throws -> Lumen_Common_V1_ListAuditLogResponse {
        try await ServiceAudit.list(request, from: store.auditLog)
    }

    public func verifyAuditLog(
        request: Lumen_Common_V1_VerifyAuditLogRequest, context: ServerContext
    ) async throws -> Lumen_Common_V1_VerifyAuditLogResponse {
        try await ServiceAudit.verify(store.auditLog, signer: auditSigner)
    }

    public func checkInvariant(request: Lumen_Ledger_V1_CheckInvariantRequest, context: ServerContext) async throws -> Lumen_Ledger_V1_CheckInvariantResponse {
        try Caller.requireInternal()
        let report = try await read(snapshot: true, LedgerCheck.check)
        return .with {
            $0.pools = Int64(report.pools)
            $0.openHolds = Int64(report.openHolds)
            $0.violations = report.violations.map { violation in
                .with {
                    $0.organizationID = violation.organizationID
                    $0.owner = violation.principal
                    $0.reservedMicros = violation.reservedMicros
                    $0.openHoldsMicros = violation.openHoldsMicros
                }
            }
            $0.overrunLines = Int64(report.overrunLines)
            $0.overrunMicros = report.overrunMicros
            $0.poolsBelowZero = report.poolsBelowZero.map { pool in
                .with {
                    $0.organizationID = pool.organizationID
                    $0.owner = pool.principal
                    $0.balanceMicros = pool.balanceMicros
                    $0.overrunMicros = pool.overrunMicros
                    $0.unexplained = pool.unexplained
                }
            }
        }
    }
}

/// Sweeps expired holds on a timer (`LedgerService.reconcileExpiredHolds`) and applies the
/// usage retention (`LedgerService.pruneUsage`) once an hour, and checkpoints the ledger's WAL
/// beside its writer (`WALCheckpointer`), until shutdown; then waits for every queued
/// operation (the settlements of the last answers) to commit. Services stop in reverse order
/// of starting, so the gateway has finished its requests by then.
struct HoldReconciler: Service {
    let ledger: LedgerService
    let interval: Duration
    let usageRetentionDays: Int

    func run() async throws {
        // The WAL is checkpointed beside the writer while the ledger runs (not inside a commit).
        let checkpoints = Task { [backend = ledger.store.backend] in
            guard case .sqlite(let writer, _) = backend else { return }
            await WALCheckpointer(writer: writer)?.run()
        }
        await reconcile()
        checkpoints.cancel()
        await checkpoints.value
    }

    private func reconcile() async {
        var lastPrune: ContinuousClock.Instant?
        var lastCapturePrune: ContinuousClock.Instant?
        while !Task.isShuttingDownGracefully {
            do {
                // The sleep ends at graceful shutdown: the process must not wait out an interval.
                try await cancelWhenGracefulShutdown { try await Task.sleep(for: interval) }
            } catch {
                await ledger.committer.flushed()
                return
            }
            do {
                // A sweep settles at most a batch; keep going while there were that many.
                while try await ledger.reconcileExpiredHolds() >= Metering.reconcileBatch {}
            } catch {
                ledger.logger.error("reconciling expired holds failed; will retry", metadata: ["error": "\(error)"])
            }
            if usageRetentionDays > 0, lastPrune.map({ $0.duration(to: .now) >= .seconds(3600) }) ?? true {
                lastPrune = .now
                do {
                    _ = try await ledger.pruneUsage(retentionDays: usageRetentionDays)
                } catch {
                    ledger.logger.error("deleting usage lines past retention failed; will retry", metadata: ["error": "\(error)"])
                }
            }
            // Captured prompts and answers go within a minute of their time.
            if lastCapturePrune.map({ $0.duration(to: .now) >= .seconds(60) }) ?? true {
                lastCapturePrune = .now
                do {
                    try await ledger.pruneCaptures()
                } catch {
                    ledger.logger.error("deleting expired captures failed; will retry", metadata: ["error": "\(error)"])
                }
            }
        }
        await ledger.committer.flushed()
    }
}
