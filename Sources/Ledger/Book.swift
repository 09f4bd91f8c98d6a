import LumenAPI
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
/// Only touched by one batch at a time — on SQLite on the database writer (inside
/// `GroupCommit`'s transactions), on PostgreSQL under `PostgresLedger`'s lock (a batch is
/// applied there while the one before commits) — hence `@unchecked Sendable`; except
/// `committedPool` and `committed(_:)`, which any thread may call: the pools as last committed,
/// published once their batch is durable.
final class Book: @unchecked Sendable {
    /// An open hold: what settling or releasing it needs, without reading its line back.
    struct Hold {
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

        var path: [PoolKey] {
            Metering.path(organizationID: organizationID, keyID: keyID, owner: owner).map {
                PoolKey(organizationID: organizationID, owner: $0)
            }
        }
    }

    /// A request's place in its key's minute: the second it counts in and the tokens counted.
    struct RateCharge {
        var second: Int64
        var tokens: Int64
    }

    struct PoolKey: Hashable {
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
    }

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
            if pools.count > Self.poolCacheLimit { pools.removeAll(keepingCapacity: true) }
            return
        }
        var written: [PoolRecord] = []
        written.reserveCapacity(dirty.count)
        for key in dirty {
            guard let pool = pools[key] else { continue }
            unpublished[key] = pool
            written.append(pool)
        }
        try db.writePools(written)
        dirty.removeAll(keepingCapacity: true)
    }

    /// The batch has committed: its pools are the committed ones now.
    func committed() { committed(flushed()) }

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

    /// Forgets everything; the next batch reloads from the database.
    func reset() {
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
