import LumenAPI

/// The one rule of whether a backend may receive requests, shared by the registry (which
/// derives health) and the gateway (which routes from its cached copy).
public enum BackendCircuit {
    /// Healthy or untried backends are routable; an unhealthy one only once its cooldown is
    /// over (the half-open trial).
    public static func isRoutable(health: Lumen_Registry_V1_BackendHealth, circuitOpenUntil: Int64?, now: Int64) -> Bool {
        health != .unhealthy || (circuitOpenUntil ?? 0) <= now
    }
}

extension Lumen_Registry_V1_Backend {
    /// Whether requests may be routed to this backend at `now` (milliseconds since 1970).
    public func isRoutable(at now: Int64) -> Bool {
        BackendCircuit.isRoutable(
            health: health, circuitOpenUntil: hasCircuitOpenUntil ? circuitOpenUntil.millis : nil, now: now)
    }
}
