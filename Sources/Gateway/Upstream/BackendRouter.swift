import Foundation
import GRPCCore
import HTTPTypes
import Logging
import LumenAPI
import NIOCore
import RPCSupport
import SharedRules
import Synchronization
import Tracing
import UpstreamClient

/// Chooses backends for a request and fails over between them.
///
/// - Order: a weighted random permutation of the model's routable backends (a backend of
///   weight 2 comes first twice as often as one of weight 1); one that failed in this
///   gateway within the last `demoteMillis` goes last, before the registry has even heard.
/// - Failover: a connection failure, a timeout before the response head, a 5xx or a 429
///   moves on to the next backend; nothing has reached the caller yet. So does a backend whose
///   host has every connection this gateway may open busy, with too many requests waiting
///   (`--upstream-max-connections`): not a failure of the backend; when no other backend
///   answers, the caller gets 503 `upstream_busy` with `Retry-After`. Any other answer,
///   4xx included, is the answer. A request a backend's provider cannot take as it is (an
///   endpoint or a part Anthropic has no counterpart for) moves on too, and is the caller's
///   400 when no other backend answers.
/// - Health: every outcome is reported to the registry in batches (`ReportBackendHealth`),
///   which opens and closes circuits; the gateway sees the result through its registry watch.
final class BackendRouter: Sendable {
    /// Who speaks each backend's wire format.
    let providers: Providers
    let health: BatchReporter<Lumen_Registry_V1_BackendReport, String>
    let clock: WallClock
    let logger: Logger
    let metrics: GatewayMetrics
    private let recentFailures = Mutex<[String: Int64]>([:])
    static let demoteMillis: Int64 = 5_000

    init(
        providers: Providers, registry: any Lumen_Registry_V1_ModelRegistryService.ClientProtocol, internalToken: String,
        metrics: GatewayMetrics, clock: WallClock, logger: Logger
    ) {
        self.providers = providers
        self.metrics = metrics
        self.clock = clock
        self.logger = logger
        self.health = BatchReporter(
            "backend health", interval: .milliseconds(250), logger: logger,
            merge: { pending, more in
                pending.successes += more.successes
                pending.failures += more.failures
                if more.observedAt.millis > pending.observedAt.millis { pending.observedAt = more.observedAt }
                if more.hasProblem { pending.problem = more.problem }
                if more.hasLastFailure { pending.lastFailure = more.lastFailure }
            },
            flush: { reports in
                _ = try await registry.reportBackendHealth(.with { $0.reports = reports }, metadata: .bearer(internalToken))
            })
    }

    /// The order in which to try `backends`: weighted random among the routable ones.
    static func order(
        _ backends: [Lumen_Registry_V1_Backend], now: Int64, demoted: Set<String> = [],
        using random: inout some RandomNumberGenerator
    ) -> [Lumen_Registry_V1_Backend] {
        let routable = backends.filter { $0.isRoutable(at: now) }
        // One backend has one order (no draw: the system's generator is a system call).
        guard routable.count > 1 else { return routable }
        // Efraimidis–Spirakis: sorting by u^(1/w) draws without replacement proportionally to w.
        let keyed = routable.map { backend -> (Lumen_Registry_V1_Backend, Double) in
            let weight = Double(max(backend.weight, 0))
            let u = Double.random(in: Double.ulpOfOne...1, using: &random)
            var key = weight > 0 ? pow(u, 1 / weight) : -1 + u / 2
            if demoted.contains(Self.key(backend)) { key -= 2 }
            return (backend, key)
        }
        return keyed.sorted { $0.1 > $1.1 }.map(\.0)
    }

    /// A backend's answer, with the call that got it and the provider that reads it.
    struct Answered: Sendable {
        var call: UpstreamCall
        var provider: any UpstreamProvider
        var response: UpstreamResponse
        /// The call's span, when this process traces: ended by whoever reads the answer to its end.
        var span: (any Span)?
    }

    /// Sends `request` to the first backend of `model` that answers, in routing order.
    func call(
        _ request: InferenceRequest, model: Lumen_Registry_V1_Model, callerCredential: String?, requestID: String
    ) async throws -> Answered {
        let now = clock.nowMillis
        let demoted = recentFailures.withLock { failures in
            Set(failures.filter { now - $0.value < Self.demoteMillis }.map(\.key))
        }
        var generator = SystemRandomNumberGenerator()
        // A caller's own upstream key goes only to the backends that take one.
        let backends = callerCredential == nil ? model.backends : model.backends.filter(\.byok)
        let candidates = Self.order(backends, now: now, demoted: demoted, using: &generator)
        var lastProblem = "no backend of \(model.name) is routable"
        var refusal: APIError?
        var busy = false
        for backend in candidates {
            guard let provider = providers[backend.provider] else {
                lastProblem = "backend \(backend.id) is of provider \(backend.provider.publicName), which this gateway does not speak"
                continue
            }
            let started = ContinuousClock.now
            let call = UpstreamCall(
                request: request, backend: backend, model: model, callerCredential: callerCredential, requestID: requestID)
            // Each backend tried is a call of its own (its span the upstream's parent).
            let span = UpstreamSpan.start(call)
            do {
                let response = try await Traces.within(span) { try await provider.send(call) }
                let code = response.status.code
                if code >= 500 || code == 429 {
                    UpstreamSpan.fail(span, code: "\(code)", message: "answered \(code)")
                    lastProblem = "backend \(backend.id) answered \(code)"
                    _ = try? await response.collect(upTo: 64 * 1024)
                    if code >= 500 {
                        outcome(of: backend, success: false, failure: "answered \(code) (request \(requestID))")
                    } else {
                        metrics.upstreamError(model: backend.model, backend: backend.id)
                    }
                    logger.warning(
                        "upstream refused\(backend.id == candidates.last?.id ? "" : "; trying the next backend")",
                        metadata: ["model": "\(model.name)", "backend": "\(backend.id)", "status": "\(code)", "request_id": "\(requestID)"])
                    continue
                }
                outcome(of: backend, success: true)
                return Answered(call: call, provider: provider, response: response, span: span)
            } catch let error as APIError where error.status.code < 500 {
                // This backend's provider cannot take the request as it is (400): another
                // backend's may; if none answers, this is the caller's answer. Not a failure.
                UpstreamSpan.fail(span, code: error.code, message: error.message)
                refusal = refusal ?? error
            } catch UpstreamClientError.saturated {
                // Every connection to the backend's host is busy: the backend is not at fault.
                UpstreamSpan.fail(span, code: "upstream_busy", message: "every connection to the backend's host is busy")
                busy = true
                lastProblem = "backend \(backend.id) has every connection this gateway may open busy"
            } catch {
                UpstreamSpan.fail(span, code: Task.isCancelled ? "cancelled" : "transport", message: "\(error)")
                if Task.isCancelled { throw CancellationError() }
                let failure = "failed after \(ContinuousClock.now - started): \(error)"
                outcome(of: backend, success: false, failure: "\(failure) (request \(requestID))")
                lastProblem = "backend \(backend.id) \(failure)"
                logger.warning(
                    "upstream failed\(backend.id == candidates.last?.id ? "" : "; trying the next backend")",
                    metadata: ["model": "\(model.name)", "backend": "\(backend.id)", "error": "\(error)", "request_id": "\(requestID)"])
            }
        }
        if let refusal { throw refusal }
        if busy {
            logger.warning(
                "upstream connections exhausted",
                metadata: ["model": "\(model.name)", "last": "\(lastProblem)", "request_id": "\(requestID)"])
            var error = APIError(
                .serviceUnavailable, code: "upstream_busy",
                message: "every connection to \(model.name)'s upstreams is in use; try again in a moment (request \(requestID))", param: nil)
            error.retryAfter = 1
            throw error
        }
        // The details (backends' addresses, connection errors) are the operator's: they go to the
        // log under the request id; the caller gets a short, stable answer.
        logger.error(
            "no upstream answered",
            metadata: ["model": "\(model.name)", "tried": "\(candidates.count)", "last": "\(lastProblem)", "request_id": "\(requestID)"])
        throw APIError(
            .badGateway, code: "upstream_unavailable",
            message: "no upstream of \(model.name) answered; try again later (request \(requestID))", param: nil)
    }

    /// Asks the first routable Claude backend of `model` to count a `/v1/messages` request's
    /// input tokens (`POST /v1/messages/count_tokens`): its answer, or nil when the model has no
    /// such backend or none answered (the caller then gets Lumen's own count).
    func countTokens(_ request: InferenceRequest, model: Lumen_Registry_V1_Model) async -> (status: HTTPResponse.Status, body: ByteBuffer)? {
        var generator = SystemRandomNumberGenerator()
        for backend in Self.order(model.backends, now: clock.nowMillis, using: &generator) where backend.provider == .anthropic {
            guard let provider = providers[.anthropic] as? AnthropicProvider, let native = request.anthropic else { return nil }
            let upstreamModel = backend.upstreamModel.isEmpty ? model.name : backend.upstreamModel
            if let counted = try? await provider.countTokens(
                native.bytes, model: upstreamModel, backend: backend, version: native.version, beta: native.beta),
                counted.status.code < 500 && counted.status.code != 429
            {
                return counted
            }
        }
        return nil
    }

    /// Records a call's outcome for the registry's health (and for local demotion); a failure
    /// says what went wrong, for the operator (`Backend.last_failure`).
    func outcome(of backend: Lumen_Registry_V1_Backend, success: Bool, failure: String? = nil) {
        let now = clock.nowMillis
        if !success { metrics.upstreamError(model: backend.model, backend: backend.id) }
        recentFailures.withLock { failures in
            if success { failures[Self.key(backend)] = nil } else { failures[Self.key(backend)] = now }
        }
        health.record(
            .with {
                $0.model = backend.model
                $0.backendID = backend.id
                $0.successes = success ? 1 : 0
                $0.failures = success ? 0 : 1
                $0.observedAt = .init(millis: now)
                if let failure { $0.lastFailure = failure }
            }, under: Self.key(backend))
    }

    /// Tells the registry what this gateway finds wrong with a backend's configuration
    /// (`Backend.problem`; empty: nothing).
    func report(problem: String, of backend: Lumen_Registry_V1_Backend) {
        health.record(
            .with {
                $0.model = backend.model
                $0.backendID = backend.id
                $0.problem = problem
            }, under: Self.key(backend))
    }

    static func key(_ backend: Lumen_Registry_V1_Backend) -> String {
        backend.model + "\u{0}" + backend.id
    }
}
