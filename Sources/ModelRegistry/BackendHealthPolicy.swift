import LumenAPI
import RPCSupport
import SharedRules

/// Passive health: how reported call outcomes move a backend between healthy and unhealthy.
///
/// `failureThreshold` consecutive failures open the circuit for `cooldownMillis`; while it is
/// open the backend is not routed to. Once the cooldown has passed the backend is tried again
/// (half-open): a success closes the circuit, another failure opens it for a new cooldown.
public struct BackendHealthPolicy: Sendable, Equatable {
    public var failureThreshold: Int
    public var cooldownMillis: Int64

    public init(failureThreshold: Int = 3, cooldownMillis: Int64 = 30_000) {
        self.failureThreshold = max(1, failureThreshold)
        self.cooldownMillis = max(0, cooldownMillis)
    }

    /// A backend's health state.
    public struct State: Sendable, Equatable {
        public var health: Lumen_Registry_V1_BackendHealth = .unspecified
        public var consecutiveFailures = 0
        public var circuitOpenUntil: Int64?

        public init(
            health: Lumen_Registry_V1_BackendHealth = .unspecified, consecutiveFailures: Int = 0,
            circuitOpenUntil: Int64? = nil
        ) {
            self.health = health
            self.consecutiveFailures = consecutiveFailures
            self.circuitOpenUntil = circuitOpenUntil
        }
    }

    /// The state after `successes` and `failures` observed at `now`, failures counted last:
    /// a batch that ends in failures leaves them counting towards the threshold.
    public func apply(successes: Int, failures: Int, to state: State, now: Int64) -> State {
        var next = state
        if successes > 0 {
            next = State(health: .healthy, consecutiveFailures: 0, circuitOpenUntil: nil)
        }
        guard failures > 0 else { return next }
        next.consecutiveFailures += failures
        let halfOpen = state.health == .unhealthy && (state.circuitOpenUntil ?? 0) <= now && successes == 0
        if next.consecutiveFailures >= failureThreshold || halfOpen {
            next.health = .unhealthy
            next.circuitOpenUntil = now + cooldownMillis
        }
        return next
    }

    /// Whether requests may be routed to the backend at `now`: healthy, untried, or unhealthy
    /// with its cooldown over (a trial request).
    public func isRoutable(_ state: State, now: Int64) -> Bool {
        BackendCircuit.isRoutable(health: state.health, circuitOpenUntil: state.circuitOpenUntil, now: now)
    }

    /// A model's status from whether it is enabled and its backends' health: ok when none is
    /// unhealthy, degraded when some are, down when all are (or it has none).
    public static func status(enabled: Bool, backends: [State]) -> Lumen_Registry_V1_ModelStatus {
        guard enabled else { return .disabled }
        let down = backends.filter { $0.health == .unhealthy }.count
        if backends.isEmpty || down == backends.count { return .down }
        return down == 0 ? .ok : .degraded
    }
}
