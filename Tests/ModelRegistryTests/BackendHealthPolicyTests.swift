import LumenAPI
import ModelRegistry
import RPCSupport
import SharedRules
import Testing

@Suite("Backend health: the passive circuit and the model status it implies")
struct BackendHealthPolicyTests {
    let policy = BackendHealthPolicy(failureThreshold: 3, cooldownMillis: 30_000)

    @Test("Failures below the threshold keep a backend routable; reaching it opens the circuit for the cooldown")
    func threshold() {
        var state = BackendHealthPolicy.State()
        state = policy.apply(successes: 0, failures: 2, to: state, now: 1_000)
        #expect(state.health == .unspecified)
        #expect(policy.isRoutable(state, now: 1_000))
        state = policy.apply(successes: 0, failures: 1, to: state, now: 2_000)
        #expect(state.health == .unhealthy)
        #expect(state.circuitOpenUntil == 32_000)
        #expect(!policy.isRoutable(state, now: 31_999))
        #expect(policy.isRoutable(state, now: 32_000))
    }

    @Test("After the cooldown one trial failure reopens the circuit; a success closes it")
    func halfOpen() {
        var state = policy.apply(successes: 0, failures: 3, to: .init(), now: 0)
        state = policy.apply(successes: 0, failures: 1, to: state, now: 40_000)
        #expect(state.health == .unhealthy)
        #expect(state.circuitOpenUntil == 70_000)
        state = policy.apply(successes: 1, failures: 0, to: state, now: 71_000)
        #expect(state == .init(health: .healthy, consecutiveFailures: 0, circuitOpenUntil: nil))
    }

    @Test("A success resets the count of consecutive failures")
    func successResets() {
        var state = policy.apply(successes: 0, failures: 2, to: .init(), now: 0)
        state = policy.apply(successes: 1, failures: 0, to: state, now: 1)
        state = policy.apply(successes: 0, failures: 2, to: state, now: 2)
        #expect(state.health == .healthy)
        #expect(state.consecutiveFailures == 2)
    }

    @Test("Status: ok when no backend is down, degraded when some are, down when all are or none exist, disabled when off")
    func status() {
        let up = BackendHealthPolicy.State(health: .healthy)
        let untried = BackendHealthPolicy.State()
        let down = BackendHealthPolicy.State(health: .unhealthy, consecutiveFailures: 3, circuitOpenUntil: 1)
        #expect(BackendHealthPolicy.status(enabled: true, backends: [up, untried]) == .ok)
        #expect(BackendHealthPolicy.status(enabled: true, backends: [up, down]) == .degraded)
        #expect(BackendHealthPolicy.status(enabled: true, backends: [down, down]) == .down)
        #expect(BackendHealthPolicy.status(enabled: true, backends: []) == .down)
        #expect(BackendHealthPolicy.status(enabled: false, backends: [up]) == .disabled)
    }
}

@Suite("Model access: blocked groups, allowed groups, consent")
struct ModelAccessPolicyTests {
    func model(allowed: [String] = [], blocked: [String] = [], consent: Bool = false) -> Lumen_Registry_V1_Model {
        .with {
            $0.name = "m"
            $0.allowedGroupIds = allowed
            $0.blockedGroupIds = blocked
            $0.consentRequired = consent
        }
    }

    @Test("Each badge of the profile page")
    func levels() {
        #expect(ModelAccessPolicy.level(of: model(), groups: [], consented: false) == .allowed)
        #expect(ModelAccessPolicy.level(of: model(blocked: ["interns"]), groups: ["interns", "staff"], consented: false) == .blocked)
        #expect(ModelAccessPolicy.level(of: model(allowed: ["research"]), groups: ["staff"], consented: false) == .blocked)
        #expect(ModelAccessPolicy.level(of: model(allowed: ["research"]), groups: ["research"], consented: false) == .allowed)
        #expect(ModelAccessPolicy.level(of: model(allowed: ["r"], blocked: ["r"]), groups: ["r"], consented: true) == .blocked)
        #expect(ModelAccessPolicy.level(of: model(consent: true), groups: [], consented: false) == .needsConsent)
        #expect(ModelAccessPolicy.level(of: model(consent: true), groups: [], consented: true) == .consented)
    }
}
