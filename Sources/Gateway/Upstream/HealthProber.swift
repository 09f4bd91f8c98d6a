import Logging
import LumenAPI
import NIOCore
import ServiceLifecycle
import UpstreamClient

/// The optional active health check (`lumen serve --probe-interval`): every interval, each
/// backend of every enabled model is asked whether it is up as its provider asks
/// (`UpstreamProvider.probe`; an OpenAI-compatible one `GET {base_url}/models`), and the outcome
/// is reported like a request's — so a dead backend's circuit opens before a caller meets
/// it, and an open circuit closes as soon as the backend answers again instead of waiting
/// for a trial request after the cooldown.
///
/// An answer below 500 (401, 404 included: the server is up) counts as a success; a
/// connection failure, a timeout or a 5xx as a failure; a 429 as neither.
final class HealthProber: Service, Sendable {
    let interval: Duration
    let registry: RegistryCache
    let router: BackendRouter
    let logger: Logger

    /// A probe waits at most this long, or the backend's own timeout if shorter.
    static let probeTimeout: Int64 = 5_000

    init(interval: Duration, registry: RegistryCache, router: BackendRouter, logger: Logger) {
        self.interval = interval
        self.registry = registry
        self.router = router
        self.logger = logger
    }

    func run() async throws {
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            do {
                try await cancelWhenGracefulShutdown { try await Task.sleep(for: self.interval) }
            } catch {
                return
            }
            await probeAll()
        }
    }

    /// Probes every backend once, concurrently.
    func probeAll() async {
        let backends = registry.models.filter(\.enabled).flatMap(\.backends)
        await withTaskGroup(of: Void.self) { group in
            for backend in backends {
                guard let provider = router.providers[backend.provider] else { continue }
                group.addTask { await self.probe(backend, provider) }
            }
        }
    }

    func probe(_ backend: Lumen_Registry_V1_Backend, _ provider: any UpstreamProvider) async {
        let timeout = min(Self.probeTimeout, backend.timeoutMs > 0 ? Int64(backend.timeoutMs) : Self.probeTimeout)
        do {
            guard let status = try await provider.probe(backend, timeout: .milliseconds(timeout)), status != 429 else { return }
            if status >= 500 {
                logger.warning("health probe failed", metadata: ["model": "\(backend.model)", "backend": "\(backend.id)", "status": "\(status)"])
            }
            router.outcome(of: backend, success: status < 500, failure: status >= 500 ? "health probe answered \(status)" : nil)
        } catch UpstreamClientError.saturated {
            // Every connection to the backend's host is busy answering (--upstream-max-connections):
            // that says nothing against its health.
            return
        } catch {
            logger.warning(
                "health probe failed",
                metadata: ["model": "\(backend.model)", "backend": "\(backend.id)", "error": "\(error)"])
            router.outcome(of: backend, success: false, failure: "health probe failed: \(error)")
        }
    }
}
