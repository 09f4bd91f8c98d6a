import CoreMetrics
import Foundation
import Hummingbird
import LumenAPI
import Prometheus
import RPCSupport
import SharedRules
import Synchronization

/// The gateway's Prometheus metrics, served as text at `GET /metrics`.
///
/// swift-metrics types backed by one swift-prometheus registry per application (no global
/// bootstrap, so several gateways can live in one process, as in tests). Labels never carry
/// a key, a secret or a prompt.
public final class GatewayMetrics: Sendable {
    let registry = PrometheusCollectorRegistry()
    let factory: PrometheusMetricsFactory
    private let holdsOpen = Atomic<Int>(0)
    /// Per-request handles by label set, so a request looks one up instead of registering it.
    private let counters = Mutex<[String: CoreMetrics.Counter]>([:])
    private let timers = Mutex<[String: CoreMetrics.Timer]>([:])

    public init() {
        var factory = PrometheusMetricsFactory(registry: registry)
        let latencyBuckets: [Duration] = [
            .milliseconds(1), .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50),
            .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1), .seconds(2.5), .seconds(5),
            .seconds(10), .seconds(30), .seconds(60),
        ]
        factory.defaultDurationHistogramBuckets = latencyBuckets
        self.factory = factory
    }

    /// A finished (or streaming-started) request: count by model, status and scene.
    func request(model: String, scene: Lumen_Common_V1_Scene, status: Int) {
        counter("lumen_requests_total", [("model", model), ("status", String(status)), ("scene", scene.publicName)]).increment()
    }

    /// Time from the request's arrival to its last byte.
    func latency(model: String, scene: Lumen_Common_V1_Scene, _ duration: Duration) {
        timer("lumen_request_duration_seconds", [("model", model), ("scene", scene.publicName)])
            .recordNanoseconds(duration.wholeNanoseconds)
    }

    /// Time from the request's arrival to the first byte of the answer.
    func timeToFirstToken(model: String, _ duration: Duration) {
        timer("lumen_time_to_first_token_seconds", [("model", model)]).recordNanoseconds(duration.wholeNanoseconds)
    }

    /// A failed upstream call (connection, timeout, 5xx, 429).
    func upstreamError(model: String, backend: String) {
        counter("lumen_upstream_errors_total", [("model", model), ("backend", backend)]).increment()
    }

    private func counter(_ label: String, _ dimensions: [(String, String)]) -> CoreMetrics.Counter {
        Self.handle(in: counters, label, dimensions) { CoreMetrics.Counter(label: label, dimensions: dimensions, factory: factory) }
    }

    private func timer(_ label: String, _ dimensions: [(String, String)]) -> CoreMetrics.Timer {
        Self.handle(in: timers, label, dimensions) { CoreMetrics.Timer(label: label, dimensions: dimensions, factory: factory) }
    }

    /// The cached handle of a label set, made (and registered) on first use.
    private static func handle<Handle: Sendable>(
        in cache: borrowing Mutex<[String: Handle]>, _ label: String, _ dimensions: [(String, String)], make: () -> Handle
    ) -> Handle {
        let key = handleKey(label, dimensions)
        if let handle = cache.withLock({ $0[key] }) { return handle }
        let handle = make()
        cache.withLock { $0[key] = handle }
        return handle
    }

    /// Label values are model names, statuses and backend ids: none contains a newline.
    private static func handleKey(_ label: String, _ dimensions: [(String, String)]) -> String {
        dimensions.reduce(label) { $0 + "\n" + $1.1 }
    }

    func holdPlaced() { holdsOpen.add(1, ordering: .relaxed) }
    func holdClosed() { holdsOpen.subtract(1, ordering: .relaxed) }

    /// The exposition text, with the gauges read now: holds open, cache state, circuits, and
    /// the ledger's invariant (`invariant` nil: the ledger did not answer the check).
    func render(
        caches: GatewayCaches, meter: any HoldMeter, invariant: Lumen_Ledger_V1_CheckInvariantResponse?, nowMillis: Int64
    ) -> String {
        Gauge(label: "lumen_holds_open", factory: factory).record(holdsOpen.load(ordering: .relaxed))
        Gauge(label: "lumen_ledger_invariant_checked", factory: factory).record(invariant == nil ? 0 : 1)
        if let invariant {
            // Pools whose reserved amount differs from the sum of their open holds; 0 when the ledger is exact.
            Gauge(label: "lumen_ledger_invariant_violations", factory: factory).record(invariant.violations.count)
            Gauge(label: "lumen_ledger_open_holds", factory: factory).record(invariant.openHolds)
            // Settlements above their holds (an upstream past max_tokens): the only way a pool goes below zero.
            Gauge(label: "lumen_ledger_overrun_lines", factory: factory).record(invariant.overrunLines)
            Gauge(label: "lumen_ledger_overrun_micros", factory: factory).record(invariant.overrunMicros)
            Gauge(label: "lumen_ledger_pools_below_zero", factory: factory).record(invariant.poolsBelowZero.count)
            Gauge(label: "lumen_ledger_pools_below_zero_unexplained", factory: factory)
                .record(invariant.poolsBelowZero.filter(\.unexplained).count)
        }
        for (name, synced, entries) in [
            ("keys", caches.keys.isSynced, caches.keys.count), ("registry", caches.registry.isSynced, caches.registry.models.count),
            ("memberships", caches.memberships.isSynced, caches.memberships.count),
        ] {
            Gauge(label: "lumen_gateway_cache_synced", dimensions: [("cache", name)], factory: factory).record(synced ? 1 : 0)
            Gauge(label: "lumen_gateway_cache_entries", dimensions: [("cache", name)], factory: factory).record(entries)
        }
        Gauge(label: "lumen_ledger_stream_connected", factory: factory).record(meter.isConnected ? 1 : 0)
        for model in caches.registry.models {
            for backend in model.backends {
                let open = !backend.isRoutable(at: nowMillis) ? 1 : 0
                Gauge(label: "lumen_backend_circuit_open", dimensions: [("model", model.name), ("backend", backend.id)], factory: factory)
                    .record(open)
            }
        }
        return registry.emitToString()
    }
}
