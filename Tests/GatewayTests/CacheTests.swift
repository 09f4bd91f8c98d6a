import Foundation
import Gateway
import Logging
import LumenAPI
import LumenTesting
import RPCSupport
import SharedRules
import Testing

/// Waits (up to 10 s) for a condition that a watch stream makes true; fails the test otherwise.
func eventually(
    _ what: String, sourceLocation: SourceLocation = #_sourceLocation, _ condition: @Sendable () -> Bool
) async throws {
    let deadline = ContinuousClock.now + .seconds(10)
    while !condition() {
        guard ContinuousClock.now < deadline else {
            Issue.record("timed out waiting until \(what)", sourceLocation: sourceLocation)
            return
        }
        try await Task.sleep(for: .milliseconds(5))
    }
}

/// Runs `service` in the background while `body` runs.
func whileRunning(_ run: @escaping @Sendable () async throws -> Void, _ body: () async throws -> Void) async throws {
    try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask { try await run() }
        defer { group.cancelAll() }
        try await body()
    }
}

var quietLogger: Logger {
    var logger = Logger(label: "cache-test")
    logger.logLevel = .critical
    return logger
}

@Suite("Gateway caches fed by the watch streams")
struct CacheTests {
    @Test("The key cache authenticates from memory and follows revocations, new keys and expiry")
    func keyCache() async throws {
        let clock = ManualClock()
        try await TestServices.run(clock: clock.wallClock) { services in
            let tenant = try await services.tenant()
            let before = try await services.keys.createKey(
                .with { $0.expiresAt = .init(millis: clock.nowMillis + 60_000) }, metadata: tenant.metadata)
            let cache = KeyCache(keys: services.keys, internalToken: services.internalToken, clock: clock.wallClock, logger: quietLogger)
            #expect(cache.authenticate(before.secret).failure?.code == "keys_unavailable")
            try await whileRunning({ try await cache.run() }) {
                try await eventually("the cache synced") { cache.isSynced }
                #expect(try cache.authenticate(before.secret).get().id == before.key.id)
                #expect(cache.authenticate("sk-unknown").failure?.code == "invalid_api_key")

                let after = try await services.keys.createKey(.init(), metadata: tenant.metadata)
                try await eventually("a new key authenticates") { (try? cache.authenticate(after.secret).get()) != nil }

                _ = try await services.keys.updateKey(
                    .with {
                        $0.keyID = after.key.id
                        $0.status = .suspended
                    }, metadata: tenant.metadata)
                try await eventually("a suspension applies") { cache.authenticate(after.secret).failure?.code == "key_suspended" }
                _ = try await services.keys.revokeKey(.with { $0.keyID = after.key.id }, metadata: tenant.metadata)
                try await eventually("a revocation applies") { cache.authenticate(after.secret).failure?.code == "key_revoked" }

                clock.advance(seconds: 61)
                #expect(cache.authenticate(before.secret).failure?.code == "key_expired")
            }
        }
    }

    @Test("The registry cache holds models with their status and consents, live")
    func registryCache() async throws {
        try await TestServices.run { services in
            let tenant = try await services.tenant()
            _ = try await services.registry.upsertModel(
                .with {
                    $0.model = .with {
                        $0.maxOutputTokens = 1024
                        $0.name = "o1"
                        $0.vendor = "openai"
                        $0.enabled = true
                        $0.consentRequired = true
                    }
                }, metadata: services.asInternal)
            let cache = RegistryCache(registry: services.registry, internalToken: services.internalToken, logger: quietLogger)
            try await whileRunning({ try await cache.run() }) {
                try await eventually("the cache synced") { cache.isSynced }
                #expect(cache.model("o1")?.status == .down)
                _ = try await services.registry.upsertBackend(
                    .with {
                        $0.backend = .with {
                            $0.model = "o1"
                            $0.id = "mock"
                            $0.provider = .mock
                        }
                    }, metadata: services.asInternal)
                try await eventually("a new backend shows") { cache.model("o1")?.status == .ok }

                let user = Lumen_Common_V1_PrincipalRef.with {
                    $0.type = .user
                    $0.id = tenant.adminUserID
                }
                #expect(!cache.hasConsent(organizationID: tenant.organizationID, principal: user, model: "o1"))
                _ = try await services.registry.grantConsent(
                    .with {
                        $0.principal = user
                        $0.model = "o1"
                    }, metadata: tenant.metadata)
                try await eventually("a consent shows") {
                    cache.hasConsent(organizationID: tenant.organizationID, principal: user, model: "o1")
                }
                _ = try await services.registry.revokeConsent(
                    .with {
                        $0.principal = user
                        $0.model = "o1"
                    }, metadata: tenant.metadata)
                try await eventually("a withdrawn consent goes") {
                    !cache.hasConsent(organizationID: tenant.organizationID, principal: user, model: "o1")
                }
            }
        }
    }
}

extension Result {
    var failure: Failure? {
        if case .failure(let error) = self { return error }
        return nil
    }
}

/// Waits until an asynchronous condition holds (for state that arrives in a later batch).
func eventuallyAsync(
    _ what: String, sourceLocation: SourceLocation = #_sourceLocation, _ condition: @Sendable () async throws -> Bool
) async throws {
    let deadline = ContinuousClock.now + .seconds(10)
    while try await !condition() {
        guard ContinuousClock.now < deadline else {
            Issue.record("timed out waiting until \(what)", sourceLocation: sourceLocation)
            return
        }
        try await Task.sleep(for: .milliseconds(20))
    }
}
