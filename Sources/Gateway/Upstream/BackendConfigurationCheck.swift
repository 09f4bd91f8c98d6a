import Logging
import LumenAPI
import ServiceLifecycle

/// Looks, from where the gateway runs, at what the registry cannot see: what each backend's
/// provider finds wrong with its configuration here (`UpstreamProvider.problem`: a
/// `credential_env` that names a variable not set here, a bedrock backend without AWS keys).
/// One that is not is warned
/// about (naming the variable and the backend) as soon as the registry has loaded — at start —
/// and whenever a backend changes, and reported to the registry as the backend's `problem`, so
/// that `lumen admin models list` and `ListModels` show it. Requests still go to it (the
/// upstream answers 401): the check informs, it does not route.
final class BackendConfigurationCheck: Service, Sendable {
    let registry: RegistryCache
    let router: BackendRouter
    let interval: Duration
    let logger: Logger
    let environment: @Sendable (String) -> String?

    init(
        registry: RegistryCache, router: BackendRouter, interval: Duration = .seconds(2), logger: Logger,
        environment: @escaping @Sendable (String) -> String? = UpstreamHTTP.credential
    ) {
        self.registry = registry
        self.router = router
        self.interval = interval
        self.logger = logger
        self.environment = environment
    }

    /// What is wrong with `backend` from here; empty when nothing.
    func problem(of backend: Lumen_Registry_V1_Backend) -> String {
        router.providers[backend.provider]?.problem(of: backend, environment: environment) ?? ""
    }

    func run() async throws {
        // What this process last said about each backend, so that each change is logged once.
        var said: [String: String] = [:]
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            if registry.isSynced { check(&said) }
            do {
                try await cancelWhenGracefulShutdown { try await Task.sleep(for: self.interval) }
            } catch {
                return
            }
        }
    }

    func check(_ said: inout [String: String]) {
        for backend in registry.models.flatMap(\.backends) {
            let problem = problem(of: backend)
            let key = BackendRouter.key(backend)
            if said[key] != problem && !problem.isEmpty {
                logger.warning(
                    "backend misconfigured: \(problem), so the upstream gets no key; set it where `lumen serve` runs",
                    metadata: ["model": "\(backend.model)", "backend": "\(backend.id)", "variable": "\(backend.credentialEnv)"])
            }
            said[key] = problem
            if problem != backend.problem { router.report(problem: problem, of: backend) }
        }
    }
}
