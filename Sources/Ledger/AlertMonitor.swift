import Foundation
import Logging
import LumenAPI
import RPCSupport
import ServiceLifecycle
import SharedRules
import Storage
import Synchronization

/// Watches the pools that have budget alerts as the group commit makes their changes durable,
/// and records each crossing once: the book hands it every pool a batch wrote (`committed`,
/// on the commit's thread, a dictionary lookup when no pool has alerts); it evaluates them in
/// commit order, one at a time, and writes the crossing — the alert, a delivery per endpoint of
/// the organisation, the pool's new state — through the group commit. Its memory (each rule's
/// reference and the thresholds crossed) is written with every change and read back at start,
/// when every pool with alerts is evaluated again: a crossing whose batch committed just before
/// a crash is recorded after the restart.
final class AlertMonitor: Sendable {
    private struct State {
        var rules: [Book.PoolKey: AlertRules.Rule] = [:]
        var loaded = false
        /// Pools to evaluate: as committed, or nil to read (a rule just set).
        var changed: [Book.PoolKey: PoolRecord?] = [:]
    }

    private let state = Mutex(State())
    /// One evaluation at a time: each sees the rules as the previous one left them.
    private let serial = SerialWrites()
    /// Whether any pool has alerts: the book's hook returns at once otherwise.
    private let watching = Atomic<Bool>(false)
    private let wake: AsyncStream<Void>
    private let wakeup: AsyncStream<Void>.Continuation
    /// Told when alerts were recorded (the deliveries wait on it).
    let recorded: AsyncStream<Void>
    private let recordedSignal: AsyncStream<Void>.Continuation

    init() {
        (wake, wakeup) = AsyncStream.makeStream(bufferingPolicy: .bufferingNewest(1))
        (recorded, recordedSignal) = AsyncStream.makeStream(bufferingPolicy: .bufferingNewest(1))
    }

    /// The pools a batch wrote, once it is durable (the book's `committed`).
    func committed(_ pools: [Book.PoolKey: PoolRecord]) {
        guard watching.load(ordering: .relaxed) else { return }
        let any = state.withLock { state in
            var any = false
            for (key, pool) in pools where state.rules[key] != nil {
                state.changed[key] = pool
                any = true
            }
            return any
        }
        if any { wakeup.yield() }
    }

    /// A pool's thresholds as just set (empty: removed); the pool is evaluated next.
    func ruleChanged(_ key: Book.PoolKey, thresholds: [Int]) {
        state.withLock { state in
            if thresholds.isEmpty {
                state.rules[key] = nil
                state.changed[key] = nil
            } else {
                var rule = state.rules[key] ?? AlertRules.Rule(thresholds: thresholds)
                rule.thresholds = thresholds
                state.rules[key] = rule
                state.changed[key] = .some(nil)
            }
            watching.store(!state.rules.isEmpty, ordering: .relaxed)
        }
        wakeup.yield()
    }

    /// The rule of `key` as the monitor holds it (reference, thresholds crossed).
    func rule(_ key: Book.PoolKey) -> AlertRules.Rule? { state.withLock { $0.rules[key] } }

    /// Reads the rules and their state, once; every pool with alerts is then evaluated.
    func load(_ ledger: LedgerService) async throws {
        guard !state.withLock({ $0.loaded }) else { return }
        let rows = try await ledger.read { db in
            try await db.rows(
                """
                SELECT rule.organization_id, rule.owner_type, rule.owner_id, rule.thresholds,
                    coalesce(state.reference_micros, 0), coalesce(state.crossed, '')
                FROM alert_rules AS rule LEFT JOIN alert_state AS state
                    ON state.organization_id = rule.organization_id AND state.owner_type = rule.owner_type
                    AND state.owner_id = rule.owner_id
                """, [])
        }
        var rules: [Book.PoolKey: AlertRules.Rule] = [:]
        for row in rows {
            let key = Book.PoolKey(organizationID: try row[0], ownerType: try row[1], ownerID: try row[2])
            rules[key] = AlertRules.Rule(
                thresholds: AlertRules.percents(try row[3]), reference: try row[4], crossed: Set(AlertRules.percents(try row[5])))
        }
        state.withLock { state in
            guard !state.loaded else { return }
            // Rules set since the read began are newer.
            state.rules.merge(rules) { current, _ in current }
            for key in state.rules.keys where state.changed[key] == nil { state.changed[key] = .some(nil) }
            state.loaded = true
            watching.store(!state.rules.isEmpty, ordering: .relaxed)
        }
    }

    /// Evaluates the pools changed since the last time and records their crossings; how many.
    @discardableResult
    func process(_ ledger: LedgerService) async throws -> Int {
        try await serial.run { try await evaluate(ledger) }
    }

    private func evaluate(_ ledger: LedgerService) async throws -> Int {
        try await load(ledger)
        let (changed, rules) = state.withLock { state in
            defer { state.changed = [:] }
            return (state.changed, state.rules)
        }
        guard !changed.isEmpty else { return 0 }
        do {
            return try await record(changed, rules: rules, ledger)
        } catch {
            // Evaluated again next time (unless a newer state of the pool came meanwhile).
            state.withLock { state in
                for (key, pool) in changed where state.changed[key] == nil { state.changed[key] = pool }
            }
            throw error
        }
    }

    private func record(
        _ changed: [Book.PoolKey: PoolRecord?], rules: [Book.PoolKey: AlertRules.Rule], _ ledger: LedgerService
    ) async throws -> Int {
        let now = ledger.clock.nowMillis
        var writes: [AlertRules.Write] = []
        var updated: [Book.PoolKey: AlertRules.Rule] = [:]
        var alerts = 0
        for (key, known) in changed {
            guard let rule = rules[key] else { continue }
            let pool: PoolRecord
            if let known { pool = known } else { pool = try await ledger.pool(key) }
            let (after, crossed) = AlertRules.evaluate(rule, pool)
            if after != rule {
                writes.append(.init(statement: AlertRules.setState, rows: [AlertRules.key(key) + [.integer(after.reference), .text(AlertRules.text(after.crossed.sorted()))]]))
                updated[key] = after
            }
            guard let threshold = crossed else { continue }
            let id = Identifier.make("alt")
            writes.append(.init(statement: AlertRules.insertEvent, rows: [[
                .text(id), .text(key.organizationID), .of(key.ownerType), .text(key.ownerID), .of(threshold),
                .integer(pool.balanceMicros), .integer(after.reference), .integer(now),
            ]]))
            let endpoints = try await ledger.read { db in
                try await db.rows("SELECT id FROM alert_endpoints WHERE organization_id = ?", [.text(key.organizationID)])
            }
            let deliveries: [[SQLValue]] = try endpoints.map { row in
                [.text(id), .text(try row[0]), .text(key.organizationID), .of(Lumen_Ledger_V1_AlertDeliveryStatus.pending.rawValue), .integer(0),
                 .integer(now), .integer(0), .text(""), .integer(now)]
            }
            if !deliveries.isEmpty { writes.append(.init(statement: AlertRules.insertDelivery, rows: deliveries)) }
            alerts += 1
            ledger.logger.notice(
                "budget alert", metadata: ["organization_id": "\(key.organizationID)", "owner": "\(LedgerCheck.describe(key.ownerType, key.ownerID))",
                    "threshold_percent": "\(threshold)", "alert_id": "\(id)", "endpoints": "\(deliveries.count)"])
        }
        guard !writes.isEmpty else { return 0 }
        _ = try await ledger.meter(.write(writes, audit: nil))
        state.withLock { state in
            for (key, rule) in updated where state.rules[key] != nil {
                // Thresholds set meanwhile stay; what was crossed and the reference are the evaluation's.
                state.rules[key]?.reference = rule.reference
                state.rules[key]?.crossed = rule.crossed
            }
        }
        if alerts > 0 { recordedSignal.yield() }
        return alerts
    }

    /// Evaluates as batches commit, until shutdown.
    func run(_ ledger: LedgerService) async {
        await withGracefulShutdownHandler {
            wakeup.yield()
            for await _ in wake {
                do {
                    try await process(ledger)
                } catch {
                    ledger.logger.error("budget alerts: evaluation failed; retried with the next change", metadata: ["error": "\(error)"])
                    try? await Task.sleep(for: .seconds(1))
                    wakeup.yield()
                }
            }
        } onGracefulShutdown: { [wakeup, recordedSignal] in
            wakeup.finish()
            recordedSignal.finish()
        }
    }
}

/// The budget alerts beside the ledger: the monitor and the deliveries, until shutdown.
struct AlertService: Service {
    let ledger: LedgerService
    let deliverer: AlertDeliverer

    func run() async throws {
        await withDiscardingTaskGroup { group in
            group.addTask { await ledger.alerts.run(ledger) }
            group.addTask { await deliverer.run(ledger, monitor: ledger.alerts) }
        }
    }
}
