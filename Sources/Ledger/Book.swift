import LumenAPI
import SharedRules
import Synchronization

/// The ledger's working state, kept in memory so that a hold or a settlement costs one SQL
/// statement or two: the open holds (`usage_holds`) and the pools the metering touched.
///
/// The database stays the record. The ledger is the only writer of its tables, and every
/// change is written in the transaction that makes it: the hold, and the usage line that
/// closes it, by the operation itself, the pools it changed (metering, configuration and grants alike) and the rollups
/// and key and owner totals of the lines it settled once per batch (`flush`, from the group commit's `beforeCommit`).
/// When a batch rolls back, `reset` drops everything and the next batch reloads from the
/// database.
///
/// A hold is decided on its caller's thread when the book keeps everything the decision reads
/// (`Metering.decide`: the open holds, and the pools of its path): the decision counts it in
/// its pools at once, so that the next decision sees it, and queues the operation that writes
/// its line (`deliver`, in a batch); until then the pools written to the tables leave it out
/// (`undelivered`), so that what a batch commits is always what its lines say. A batch that
/// rolls back resets the book; the holds decided before that and not yet written are then
/// checked again when their operations come (`isCurrent`), and no hold is decided on a caller's
/// thread until they have all come — the pools read back from the tables do not count them.
///
/// Touched under `lock` only: by the batches (on SQLite on the database writer, inside
/// `GroupCommit`'s transactions; on PostgreSQL under `PostgresLedger`'s batches, a batch applied
/// there while the one before commits) and by the decisions on callers' threads — hence
/// `@unchecked Sendable`; except `committedPool` and `committed(_:)`, which any thread may call:
/// the pools as last committed, published once their batch is durable.
final class Book: @unchecked Sendable {
    /// An open hold: what settling or releasing it needs, without reading its line back.
    struct Hold: Sendable {
        var organizationID: String
        var keyID: String
        var owner: Lumen_Common_V1_PrincipalRef
        var logicalModel: String
        var modelVendor: String
        var scene: Lumen_Common_V1_Scene
        var accessChannel: Lumen_Common_V1_AccessChannel
        var estimateMicros: Int64
        var createdAt: Int64
        /// The API or the web chat (never unspecified: read as the API).
        var origin: Lumen_Common_V1_UsageOrigin = .api
        /// What the request counted in its key's minute (`rates`), to correct at settlement;
        /// nil for a key without limits, and for holds read back from the database.
        var rate: RateCharge?
        /// The model's prices when the hold was placed, which its settlement is charged at; nil
        /// for holds read back from the database (their model's prices now apply).
        var prices: Lumen_Registry_V1_Prices?

        var path: [PoolKey] { PoolKey.path(organizationID: organizationID, keyID: keyID, owner: owner) }
    }

    /// A request's place in its key's minute: the second it counts in and the tokens counted.
    struct RateCharge: Sendable {
        var second: Int64
        var tokens: Int64
    }

    struct PoolKey: Hashable, Sendable {
        var organizationID: String
        var ownerType: Int
        var ownerID: String

        init(organizationID: String, owner: Lumen_Common_V1_PrincipalRef) {
            self.organizationID = organizationID
            self.ownerType = owner.type.rawValue
            self.ownerID = owner.id
        }

        init(organizationID: String, ownerType: Int, ownerID: String) {
            self.organizationID = organizationID
            self.ownerType = ownerType
            self.ownerID = ownerID
        }

        /// The pools a request of this key and owner draws on, in path order (`Metering.path`).
        static func path(organizationID: String, keyID: String, owner: Lumen_Common_V1_PrincipalRef) -> [PoolKey] {
            Metering.path(organizationID: organizationID, keyID: keyID, owner: owner).map {
                PoolKey(organizationID: organizationID, owner: $0)
            }
        }

        /// The pools `request` draws on, in path order.
        static func path(of request: Lumen_Ledger_V1_ReserveRequest) -> [PoolKey] {
            path(organizationID: request.organizationID, keyID: request.keyID, owner: request.owner)
        }
    }

    /// A hold decided on its caller's thread, its line not yet written: what its operation
    /// (`Metering.Operation.decided`) carries to the batch that writes it.
    struct Decision: Sendable {
        var requestID: String
        var hold: Hold
        /// The key's minute, for a key with per-minute limits.
        var window: RateWindow?
        /// The book's `epoch` when it was decided.
        var epoch: Int
    }

    /// Guards everything below but the published pools (see above).
    let lock = BookLock()

    /// How long a hold lives before the reconciler settles it at its estimate.
    let holdTTLMillis: Int64
    /// The keys' requests and tokens per minute (memory only, kept across rollbacks).
    let rates = RateLimiter()
    /// The registry's prices, which the ledger follows.
    let prices: PriceBook
    /// Told the pools each batch wrote once it is durable (the budget alerts' monitor). Set once,
    /// before the first batch.
    var onCommit: (@Sendable ([PoolKey: PoolRecord]) -> Void)?

    init(holdTTLMillis: Int64, prices: PriceBook) {
        self.holdTTLMillis = holdTTLMillis
        self.prices = prices
    }

    /// When `hold` expires.
    func expiry(of hold: Hold) -> Int64 { hold.createdAt + holdTTLMillis }

    /// Pools kept between batches at most; past it the cache starts again (clean entries only).
    static let poolCacheLimit = 100_000

    /// Pools as committed (read from the database, or written by a batch that committed), for
    /// reads from any thread; `unpublished`: the pools the current batch wrote, published once
    /// it commits.
    private let published = Mutex<[PoolKey: PoolRecord]>([:])
    private var unpublished: [PoolKey: PoolRecord] = [:]

    private var holds: [String: Hold] = [:]
    private var holdsLoaded = false
    private var pools: [PoolKey: PoolRecord] = [:]
    private var dirty: Set<PoolKey> = []
    /// Holds decided on callers' threads whose lines no batch has written yet, and what they
    /// add to each pool's `reservedMicros` here (the tables' pools leave it out until then).
    private var decided: [String: Hold] = [:]
    private var undelivered: [PoolKey: Int64] = [:]
    /// Counts the resets: a decision taken before the last one is checked again when written.
    private(set) var epoch = 0
    /// Decisions taken before the last reset whose operations have not come yet.
    private var stale = 0
    /// The batch's additions to the usage rollups.
    private var rollups: [Rollups.Key: Rollups.Totals] = [:]
    /// The batch's additions to the keys' totals.
    private var keyTotals: [KeyTotals.Key: KeyTotals.Delta] = [:]
    /// The batch's additions to the users' and clients' totals by model, and by origin.
    private var ownerTotals: [OwnerTotals.Key: KeyTotals.Delta] = [:]
    private var originTotals: [OwnerTotals.OriginKey: KeyTotals.Delta] = [:]

    /// The open hold of `requestID`, if any.
    func hold(_ db: any LedgerTables, _ requestID: String) throws -> Hold? {
        try loadHolds(db)
        return holds[requestID]
    }

    func open(_ requestID: String, _ hold: Hold) { holds[requestID] = hold }

    /// The open holds whose time is up at `now`, oldest first.
    func expired(_ db: any LedgerTables, now: Int64) throws -> [(requestID: String, hold: Hold)] {
        try loadHolds(db)
        return holds.filter { expiry(of: $0.value) <= now }.map { ($0.key, $0.value) }.sorted { $0.hold.createdAt < $1.hold.createdAt }
    }

    func close(_ requestID: String) { holds[requestID] = nil }

    /// The pool of `key` with the refills due by `now` applied; an unconfigured pool that
    /// has no row yet is a fresh one (written when changed).
    func pool(_ db: any LedgerTables, _ key: PoolKey, now: Int64) throws -> PoolRecord {
        var pool: PoolRecord
        if let cached = pools[key] {
            pool = cached
        } else {
            pool = try db.pool(key)
                ?? PoolRecord(organizationID: key.organizationID, ownerType: key.ownerType, ownerID: key.ownerID, now: now)
            pools[key] = pool
            // Pools are written only when a batch commits (`flush`): what was read is committed.
            publish([key: pool])
        }
        let before = (pool.balanceMicros, pool.refilledAt)
        pool.refill(now: now)
        if before != (pool.balanceMicros, pool.refilledAt) { update(key, pool) }
        return pool
    }

    /// Records a changed pool, to be written when the batch commits.
    func update(_ key: PoolKey, _ pool: PoolRecord) {
        pools[key] = pool
        dirty.insert(key)
    }

    /// Adds a settled line to the batch's rollups.
    func roll(_ hold: Hold, _ totals: Rollups.Totals) {
        for key in Rollups.keys(of: hold) { rollups[key, default: Rollups.Totals()].add(totals) }
        if !hold.keyID.isEmpty {  // the web chat's lines have no key
            keyTotals[KeyTotals.Key(organizationID: hold.organizationID, keyID: hold.keyID), default: KeyTotals.Delta()]
                .add(totals, at: hold.createdAt)
        }
        if hold.owner.type == .user || hold.owner.type == .client {
            let key = OwnerTotals.Key(
                organizationID: hold.organizationID, ownerType: hold.owner.type.rawValue, ownerID: hold.owner.id,
                logicalModel: hold.logicalModel)
            ownerTotals[key, default: KeyTotals.Delta()].add(totals, at: hold.createdAt)
            let origin = OwnerTotals.OriginKey(
                organizationID: hold.organizationID, ownerType: hold.owner.type.rawValue, ownerID: hold.owner.id,
                origin: hold.origin.rawValue)
            originTotals[origin, default: KeyTotals.Delta()].add(totals, at: hold.createdAt)
        }
    }

    /// Writes the pools changed in this batch, and its rollups.
    func flush(_ db: any LedgerTables) throws {
        if !rollups.isEmpty {
            try db.addRollups(rollups)
            rollups.removeAll(keepingCapacity: true)
        }
        if !keyTotals.isEmpty {
            try db.addKeyTotals(keyTotals)
            keyTotals.removeAll(keepingCapacity: true)
        }
        if !ownerTotals.isEmpty {
            try db.addOwnerTotals(ownerTotals)
            ownerTotals.removeAll(keepingCapacity: true)
        }
        if !originTotals.isEmpty {
            try db.addOriginTotals(originTotals)
            originTotals.removeAll(keepingCapacity: true)
        }
        guard !dirty.isEmpty else {
            // Decided holds are counted in their pools here only: those pools stay.
            if pools.count > Self.poolCacheLimit, decided.isEmpty { pools.removeAll(keepingCapacity: true) }
            return
        }
        var written: [PoolRecord] = []
        written.reserveCapacity(dirty.count)
        for key in dirty {
            guard var pool = pools[key] else { continue }
            if let held = undelivered[key] { pool.reservedMicros -= held }
            unpublished[key] = pool
            written.append(pool)
        }
        try db.writePools(written)
        dirty.removeAll(keepingCapacity: true)
    }

    // MARK: Holds decided on callers' threads

    /// Whether a hold for `requestID` may be decided now without a batch (see above).
    func decidesAtOnce(_ requestID: String) -> Bool {
        holdsLoaded && stale == 0 && holds[requestID] == nil && decided[requestID] == nil
    }

    /// Counts a decided hold in `pools` (the pools of its path, as checked): reserved here, not
    /// yet in the tables.
    func decide(_ decision: Decision, path: [PoolKey]) {
        decided[decision.requestID] = decision.hold
        for key in path {
            pools[key]?.reservedMicros += decision.hold.estimateMicros
            undelivered[key, default: 0] += decision.hold.estimateMicros
        }
    }

    /// Whether `decision` was taken since the last reset (its hold is counted in the pools).
    func isCurrent(_ decision: Decision) -> Bool { decision.epoch == epoch }

    /// A current decision's line is written in this batch: its hold is open, its pools written.
    func deliver(_ decision: Decision) {
        decided[decision.requestID] = nil
        holds[decision.requestID] = decision.hold
        for key in decision.hold.path {
            undelivered[key, default: 0] -= decision.hold.estimateMicros
            if undelivered[key] == 0 { undelivered[key] = nil }
            dirty.insert(key)
        }
    }

    /// A current decision's line could not be written: its hold counts nowhere.
    func withdraw(_ decision: Decision) {
        decided[decision.requestID] = nil
        for key in decision.hold.path {
            pools[key]?.reservedMicros -= decision.hold.estimateMicros
            undelivered[key, default: 0] -= decision.hold.estimateMicros
            if undelivered[key] == 0 { undelivered[key] = nil }
        }
    }

    /// A decision taken before the last reset has come to be written (checked again).
    func staleDecisionCame() { stale -= 1 }

    /// The pools written by the batches flushed since the last call (a batch's, taken when it
    /// has flushed, to publish once it commits while the next batch is being applied).
    func flushed() -> [PoolKey: PoolRecord] {
        defer { unpublished.removeAll(keepingCapacity: true) }
        return unpublished
    }

    /// A batch that wrote `pools` has committed (any thread: only what is published is touched).
    func committed(_ pools: [PoolKey: PoolRecord]) {
        guard !pools.isEmpty else { return }
        publish(pools)
        onCommit?(pools)
    }

    /// `key`'s pool as last committed, refills not applied; nil when it has not been read or
    /// written since the ledger started (read it through a batch then).
    func committedPool(_ key: PoolKey) -> PoolRecord? {
        published.withLock { $0[key] }
    }

    private func publish(_ changed: [PoolKey: PoolRecord]) {
        published.withLock { published in
            if published.count + changed.count > Self.poolCacheLimit { published.removeAll(keepingCapacity: true) }
            published.merge(changed) { _, new in new }
        }
    }

    /// Forgets everything; the next batch reloads from the database. The holds decided and not
    /// yet written are checked again when they come.
    func reset() {
        stale += decided.count
        decided = [:]
        undelivered = [:]
        epoch += 1
        unpublished = [:]
        holds = [:]
        holdsLoaded = false
        pools = [:]
        dirty = []
        rollups = [:]
        keyTotals = [:]
        ownerTotals = [:]
        originTotals = [:]
    }

    private func loadHolds(_ db: any LedgerTables) throws {
        guard !holdsLoaded else { return }
        holds = try db.openHolds()
        holdsLoaded = true
    }

    /// Whether the open holds have been read since the start or the last rollback.
    var hasHolds: Bool { holdsLoaded }

    /// The open hold of `requestID` as kept, without reading the database.
    func keptHold(_ requestID: String) -> Hold? { holds[requestID] }

    /// The open holds as kept (all of them once `hasHolds`).
    func keptHolds() -> [String: Hold] { holds }

    /// The pool of `key` as kept (changes of this batch included), without reading the database.
    func keptPool(_ key: PoolKey) -> PoolRecord? { pools[key] }
}

/// The lock of a `Book` (see there).
final class BookLock: Sendable {
    private let mutex = Mutex(())
    func withLock<T>(_ body: () throws -> T) rethrows -> T { try mutex.withLock { _ in try body() } }
}
