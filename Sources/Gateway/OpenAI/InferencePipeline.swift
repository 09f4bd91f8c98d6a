import Foundation
import HTTPTypes
import Hummingbird
import Logging
import LumenAPI
import NIOCore
import RPCSupport
import SharedRules
import Tracing
import WireFormats

/// One metered inference request from admission to settlement:
///
/// 1. admission from the caches (key 401, model 404, allowlist 403, consent 403, status 503,
///    scene 400);
/// 2. a hold of the estimate on the ledger's Meter stream (402 `insufficient_quota`);
/// 3. the upstream call with failover (the hold is released when nothing was produced);
/// 4. the answer relayed — as received, or event by event for a stream — and settled with
///    the upstream's usage, or Lumen's own count marked estimated when none came; a caller
///    who disconnects mid-stream is billed for what was produced (the ledger's key totals
///    count it in the same transaction). The settlement is queued as the answer goes out,
///    not awaited before it.
struct InferencePipeline: Sendable {
    let admission: InferenceAdmission
    let meter: any HoldMeter
    let router: BackendRouter
    let metrics: GatewayMetrics
    /// The streams being answered: a revoked key's or a deactivated owner's end (`StreamGuard`).
    let streams: OpenStreams
    let clock: WallClock
    let logger: Logger

    static let maxBodyBytes = 4 * 1024 * 1024
    /// Uploads (images, audio) may be larger; OpenAI takes 25 MB of audio.
    static let maxUploadBytes = 32 * 1024 * 1024
    static let maxUpstreamBodyBytes = 64 * 1024 * 1024
    static let byokHeader = HTTPField.Name("X-Upstream-Authorization")!

    /// What a request is about, once admitted and held.
    struct Admitted: Sendable {
        var requestID: String
        var key: Lumen_Keys_V1_Key
        var model: Lumen_Registry_V1_Model
        var request: InferenceRequest
        var byok: Bool
        var started: ContinuousClock.Instant
        /// Tokens counted against the key's per-minute limit (kept by the ledger) until settled.
        var rateTokens: Int64 = 0
        /// The key's minute with this request counted, for a key with per-minute limits: the
        /// answer's `x-ratelimit-*` headers.
        var rateWindow: RateWindow?
        /// When the answer's first byte was ready (a JSON answer's head, a stream's first event).
        var firstByte: ContinuousClock.Instant?
        /// Set when the ledger said to capture this request's prompt and answer.
        var capture: Lumen_Ledger_V1_CaptureSettings?
        /// When the hold, decided before the upstream call, is durable: nothing goes to the
        /// caller before (`durable`).
        var durability = HoldDurability.durable
        /// The backend that answered, once one has; the answer carries the logical name, the
        /// log line both.
        var backend: Lumen_Registry_V1_Backend?
        /// The API (a key) or the dashboard's web chat (a person, no key).
        var origin: Lumen_Common_V1_UsageOrigin = .api
        /// Told the answer's text and the request id once the answer has ended (the web chat
        /// keeps it), from the events the relay already parsed.
        var answered: (@Sendable (_ text: String, _ requestID: String) async -> Void)?
        /// The HTTP request's span context, when this process traces: the parent of the hold's,
        /// the settlement's and the release's spans, wherever those start (a stream's body is
        /// written outside the handler's task).
        var trace: InstrumentationContext?
    }

    /// Serves one request and counts it in the metrics (the model label only once the model
    /// is known to exist, so callers cannot inflate the label set).
    func handle(_ endpoint: InferenceEndpoint, _ httpRequest: Request) async throws -> Response {
        try await counted(endpoint, httpRequest) { started, label in
            try await serve(endpoint, httpRequest, started: started, label: &label)
        }
    }

    /// Runs `serve` and counts what it answered in the metrics.
    func counted(
        _ endpoint: InferenceEndpoint, _ httpRequest: Request,
        _ serve: (ContinuousClock.Instant, inout String) async throws -> Response
    ) async throws -> Response {
        let started = ContinuousClock.now
        var label = "-"
        do {
            let response = try await serve(started, &label)
            metrics.request(model: label, scene: endpoint.scene, status: Int(response.status.code))
            if !(response.headers[.contentType]?.hasPrefix("text/event-stream") ?? false) {
                metrics.latency(model: label, scene: endpoint.scene, started.duration(to: .now))
            }
            return response
        } catch {
            let apiError = APIErrorMiddleware<BasicRequestContext>.apiError(for: error, request: httpRequest, logger: logger)
            metrics.request(model: label, scene: endpoint.scene, status: Int(apiError.status.code))
            throw apiError
        }
    }

    func serve(
        _ endpoint: InferenceEndpoint, _ httpRequest: Request, started: ContinuousClock.Instant, label: inout String
    ) async throws -> Response {
        // Admission's span: the key, the body, the model and its access (`run` ends it).
        let checking = Traces.start("lumen.admission")
        let key: Lumen_Keys_V1_Key
        let request: InferenceRequest
        let credential: String?
        do {
            key = try admission.key(httpRequest)
            let buffer = try await httpRequest.body.collect(upTo: endpoint.isPassthrough ? Self.maxUploadBytes : Self.maxBodyBytes)
            request = try InferenceRequest(endpoint, bytes: buffer, contentType: httpRequest.headers[.contentType])
            credential = try Self.callerCredential(httpRequest)
        } catch {
            Traces.end(checking, failing: error)
            throw error
        }
        return try await run(
            request, key: key, callerCredential: credential, origin: .api, started: started, label: &label, checking: checking)
    }

    /// A chat completion for a person of the dashboard's web chat: admitted as the person (their
    /// groups, their consents, not deactivated), held on their own pool without a key, origin
    /// `web`, and answered as the API would.
    func serveWeb(
        organizationID: String, userID: String, body: [String: JSONValue], started: ContinuousClock.Instant, label: inout String,
        answered: @escaping @Sendable (_ text: String, _ requestID: String) async -> Void
    ) async throws -> Response {
        let checking = Traces.start("lumen.admission")
        if admission.memberships.isInactive(userID) {
            let error = APIError(.unauthorized, code: "owner_inactive", message: "your account is deactivated")
            Traces.end(checking, failing: error)
            throw error
        }
        let person = Lumen_Keys_V1_Key.with {
            $0.organizationID = organizationID
            $0.owner = .with {
                $0.type = .user
                $0.id = userID
            }
            $0.kind = .inference
            $0.status = .active
        }
        let request: InferenceRequest
        do {
            request = try InferenceRequest(.chatCompletions, body: body)
        } catch {
            Traces.end(checking, failing: error)
            throw error
        }
        return try await run(
            request, key: person, callerCredential: nil, origin: .web, started: started, label: &label, checking: checking,
            answered: answered)
    }

    /// Admission of the model, the hold, the upstream call and the answer, for `key` (a
    /// person's stand-in without an id for the web chat); `checking`: admission's span, ended
    /// here once the model is admitted.
    func run(
        _ request: InferenceRequest, key: Lumen_Keys_V1_Key, callerCredential: String?, origin: Lumen_Common_V1_UsageOrigin,
        started: ContinuousClock.Instant, label: inout String, checking: (any Span)? = nil,
        answered: (@Sendable (_ text: String, _ requestID: String) async -> Void)? = nil
    ) async throws -> Response {
        let requestID = RequestID.current
        let endpoint = request.endpoint
        let model: Lumen_Registry_V1_Model
        do {
            model = try admission.model(request.model, for: key)
            label = model.name
            guard model.scenes.contains(endpoint.scene) else {
                throw APIError.invalid(
                    "model_not_supported", "\(model.name) does not serve /v1/\(endpoint.rawValue)", param: "model")
            }
            // A caller's own upstream key goes only to backends configured to take one; anywhere
            // else it would skip every budget on a backend that needs no credential.
            if callerCredential != nil, !model.backends.contains(where: \.byok) {
                throw APIError.invalid(
                    "byok_not_allowed",
                    "\(model.name) does not take your own upstream key: remove X-Upstream-Authorization (no backend of the model is configured with byok: true)",
                    param: "X-Upstream-Authorization")
            }
        } catch {
            Traces.end(checking, failing: error)
            throw error
        }
        if let checking {
            checking.updateAttributes { attributes in
                attributes["lumen.request_id"] = requestID
                if !key.id.isEmpty { attributes["lumen.key_id"] = key.id }
                attributes["lumen.model"] = model.name
            }
            checking.end()
        }
        var admitted = Admitted(
            requestID: requestID, key: key, model: model, request: request, byok: callerCredential != nil, started: started,
            origin: origin, answered: answered, trace: Traces.context)
        try await admit(&admitted)
        // The upstream call runs while the hold's batch commits; whatever comes of it, the
        // caller gets nothing before the hold is durable.
        let answered: BackendRouter.Answered
        do {
            answered = try await router.call(request, model: model, callerCredential: callerCredential, requestID: requestID)
        } catch {
            try await durable(admitted)
            let refusal = error as? APIError
            await release(admitted, status: Int(refusal?.status.code ?? 502), code: refusal?.code ?? "upstream_unavailable")
            throw error
        }
        let upstream = answered.response
        do {
            try await durable(admitted)
        } catch {
            upstream.abort()
            UpstreamSpan.fail(answered.span, code: "ledger_unavailable", message: "the hold did not become durable")
            throw error
        }
        admitted.backend = answered.call.backend
        if !request.stream {
            admitted.firstByte = .now
            metrics.timeToFirstToken(model: model.name, started.duration(to: .now))
        }
        guard upstream.status.code < 300 else {
            // The upstream refused the request itself (4xx): its error goes back as its provider reads it.
            UpstreamSpan.fail(answered.span, code: "\(upstream.status.code)", message: "the upstream refused the request")
            let body = try await upstream.collect(upTo: Self.maxUpstreamBodyBytes)
            await release(admitted, status: Int(upstream.status.code), code: "upstream_refused")
            let refusal = answered.provider.answer(body, status: upstream.status, contentType: upstream.contentType, of: answered.call)
            return Response(
                status: upstream.status, headers: Self.headers(contentType: refusal.contentType, admitted.rateWindow),
                body: .init(byteBuffer: refusal.body))
        }
        if request.stream {
            return relayStream(answered, admitted)
        }
        let body: ByteBuffer
        do {
            body = try await upstream.collect(upTo: Self.maxUpstreamBodyBytes)
        } catch {
            UpstreamSpan.fail(answered.span, code: "transport", message: "\(error)")
            throw error
        }
        let answer = answered.provider.answer(body, status: upstream.status, contentType: upstream.contentType, of: answered.call)
        settle(
            admitted, reported: answer.reported, producedText: answer.text,
            answer: admitted.capture == nil ? nil : String(buffer: answer.body), upstream: answered.span)
        await admitted.answered?(answer.text, admitted.requestID)
        return Response(
            status: upstream.status, headers: Self.headers(contentType: answer.contentType, admitted.rateWindow),
            body: .init(byteBuffer: answer.body))
    }

    /// An answer's headers: its type and, for a key with per-minute limits, its minute.
    static func headers(contentType: String, _ window: RateWindow?) -> HTTPFields {
        var headers: HTTPFields = [.contentType: contentType]
        window?.add(to: &headers)
        return headers
    }

    /// Relays an SSE stream as it comes: the events each upstream chunk completes go to the
    /// caller in one write, as the backend's provider turns them out. The settlement
    /// is queued before the event that ends the answer (`[DONE]`) reaches the caller, or when
    /// the stream ends or the caller leaves. A stream whose key is revoked (or suspended, made
    /// inactive, expired) or whose owner is deactivated meanwhile is ended by `StreamGuard`:
    /// the upstream connection is closed, the caller gets an error event instead of the end,
    /// and what was produced until then is charged.
    func relayStream(_ answered: BackendRouter.Answered, _ admitted: Admitted) -> Response {
        let upstream = answered.response
        let body = ResponseBody { writer in
            let reader = answered.provider.stream(of: answered.call)
            let stopped = StreamStop()
            let streamID = streams.open(
                .init(keyID: admitted.key.id, ownerID: admitted.key.owner.id) { reason in
                    stopped.reason = reason
                    upstream.abort()
                })
            defer { streams.close(streamID) }
            var framing = answered.provider.framing()
            var settled = false
            var callerGone = false
            var first = true
            var timed = admitted
            /// What was produced when no usage came (the text, counted).
            func produced() -> String { reader.reported != nil ? "" : reader.text() }
            /// Settles when the reader says the answer `ended` (before what ends it is written:
            /// an answer in one event is settled as its first byte goes out).
            func settleAtEnd(_ ended: Bool) {
                if ended, !settled {
                    if timed.firstByte == nil { timed.firstByte = .now }
                    settle(
                        timed, reported: reader.reported, producedText: produced(), answer: timed.capture == nil ? nil : reader.text(),
                        upstream: answered.span)
                    settled = true
                }
            }
            /// One write for every event an upstream chunk completed (a write is a hop to the
            /// connection's event loop); `ending`: what the reader adds once the upstream ended.
            func send(_ events: [SSEEvent], ending: Bool = false) async throws {
                guard !events.isEmpty || ending else { return }
                var out = ByteBuffer()
                for event in events { settleAtEnd(reader.relay(event, into: &out)) }
                if ending { settleAtEnd(reader.finish(into: &out)) }
                guard out.readableBytes > 0 else { return }
                do {
                    try await writer.write(out)
                } catch {
                    callerGone = true
                    throw error
                }
                if first {
                    first = false
                    if timed.firstByte == nil { timed.firstByte = .now }
                    metrics.timeToFirstToken(model: admitted.model.name, admitted.started.duration(to: .now))
                }
            }
            do {
                try await upstream.forEachChunk { chunk in try await send(framing.feed(chunk)) }
                try await send(try framing.finish().map { [$0] } ?? [], ending: true)
            } catch {
                if !callerGone {
                    logger.warning("upstream stream broke off", metadata: ["request_id": "\(admitted.requestID)", "error": "\(error)"])
                }
            }
            let completed = settled  // `[DONE]` went out: a stop that came later changes nothing
            if !settled {
                settle(
                    timed, reported: reader.reported, producedText: produced(), answer: timed.capture == nil ? nil : reader.text(),
                    upstream: answered.span)
            }
            if let reason = stopped.reason, !completed {
                logger.notice(
                    "stream ended: \(reason.code)", metadata: ["request_id": "\(admitted.requestID)", "key_id": "\(admitted.key.id)"])
                if !callerGone {
                    let error = APIError(reason)
                    try? await writer.write(
                        admitted.request.format == .anthropic ? MessagesAnswer.errorEvent(error) : error.event)
                }
            }
            // Kept before the stream ends, so that a page reloaded after it shows the answer.
            if let answered = admitted.answered { await answered(reader.text(), admitted.requestID) }
            if !callerGone { try? await writer.finish(nil) }
            metrics.latency(model: admitted.model.name, scene: admitted.request.endpoint.scene, admitted.started.duration(to: .now))
        }
        var headers = Self.headers(contentType: "text/event-stream", admitted.rateWindow)
        headers[.cacheControl] = "no-cache"
        return Response(status: .ok, headers: headers, body: body)
    }

    // MARK: Budget and rate

    /// Holds the estimate, with the key's per-minute limits: the ledger counts the request in
    /// the key's minute before it checks any pool, so the limits hold across gateway replicas,
    /// a request refused by both answers 429 (and 402 once it fits the rate), and a 429 writes
    /// nothing.
    func admit(_ admitted: inout Admitted) async throws {
        admitted.rateTokens = admitted.request.promptTokens
            + Pricing.maxOutput(
                admitted.request.maxOutputTokens.map(Int64.init), choices: Int64(admitted.request.choices), model: admitted.model)
        let reservation = try await reserve(admitted)
        admitted.rateWindow = reservation.rate
        admitted.capture = reservation.capture
        admitted.durability = reservation.durability
    }

    /// Returns once the request's hold is durable: the promise that no caller receives a byte
    /// the ledger has not durably recorded (README, "Durability"). A hold that could not be
    /// made durable does not exist: the caller gets 503 `ledger_unavailable` and nothing is
    /// charged or released.
    func durable(_ admitted: Admitted) async throws {
        guard case .failure(let error) = await admitted.durability.wait() else { return }
        metrics.holdClosed()
        logger.error(
            "hold not durable; the request is answered 503 and not recorded",
            metadata: ["request_id": "\(admitted.requestID)", "error": "\(error)"])
        throw APIError(
            ServiceError(.unavailable, "ledger_unavailable", "the ledger could not record this request; try again"))
    }

    // MARK: Ledger

    /// Holds the request's bound (README, "Budgets"), which the ledger prices at the model's
    /// prices (BYOK: nothing); returns once the ledger has decided it (its durability follows).
    func reserve(_ admitted: Admitted) async throws -> Reservation {
        let bound = admitted.request.bound(admitted.model)
        let span = Traces.start("lumen.hold", in: admitted.trace)
        span?.updateAttributes { attributes in
            attributes["lumen.hold.input_bound_tokens"] = bound.inputTokens
            attributes["lumen.hold.output_bound_tokens"] = bound.outputTokens
        }
        do {
            let reservation = try await meter.place(
                .with {
                    $0.requestID = admitted.requestID
                    $0.organizationID = admitted.key.organizationID
                    $0.keyID = admitted.key.id
                    $0.owner = admitted.key.owner
                    if admitted.key.hasLimitMicros { $0.keyLimitMicros = admitted.key.limitMicros }
                    $0.inputBoundTokens = bound.inputTokens
                    $0.outputBoundTokens = bound.outputTokens
                    $0.logicalModel = admitted.model.name
                    $0.modelVendor = admitted.model.vendor
                    $0.scene = admitted.request.endpoint.scene
                    $0.accessChannel = admitted.byok ? .byok : .platform
                    $0.origin = admitted.origin
                    $0.rpmLimit = admitted.key.rpmLimit
                    $0.tpmLimit = admitted.key.tpmLimit
                    $0.rateTokens = admitted.rateTokens
                    $0.traceparent = Traces.traceparent(of: span)
                })
            span?.end()
            metrics.holdPlaced()
            return reservation
        } catch var error as ServiceError {
            Traces.end(span, refusal: error)
            if error.code == "insufficient_quota" {
                error.message += "; this request may use up to \(bound.inputTokens) input tokens (its text, attachments and "
                    + "the provider's template) and \(bound.outputTokens) output tokens"
                    + (admitted.request.maxOutputTokens == nil && bound.outputTokens > 0
                        ? " (no max_tokens given: \(admitted.model.name)'s most); set max_tokens to need less" : "")
            }
            throw APIError(error)
        } catch {
            Traces.end(span, failing: error)
            throw error
        }
    }

    /// Drops the hold of a request that produced nothing; its line keeps what the caller got
    /// (`status`, the error's `code`), how long it took and the backend that refused it.
    func release(_ admitted: Admitted, status: Int, code: String) async {
        metrics.holdClosed()
        let span = Traces.start("lumen.release", in: admitted.trace)
        defer { span?.end() }
        do {
            try await meter.release(
                .with {
                    $0.requestID = admitted.requestID
                    $0.httpStatus = Int32(status)
                    $0.errorCode = code
                    $0.latencyMs = admitted.started.duration(to: .now).wholeMilliseconds
                    $0.backendID = admitted.backend?.id ?? ""
                    $0.traceparent = Traces.traceparent(of: span)
                })
        } catch {
            if let span { Traces.fail(span, code: "ledger_unavailable", message: "\(error)") }
            logger.error("release failed; the hold will expire", metadata: ["request_id": "\(admitted.requestID)", "error": "\(error)"])
        }
    }

    /// Reports what was measured — the upstream's usage, or Lumen's count (marked estimated) when the
    /// upstream reported none: the prompt as counted for the hold plus the text produced.
    /// Pass-through requests are billed per request, plus any tokens the upstream reports.
    /// The settlement is queued, not awaited: the answer goes out while it commits (the hold
    /// is durable already; README, "Durability").
    /// `answer`: what to capture of the answer, when the request is captured; `upstream`: the
    /// upstream call's span, ended here with the tokens. The settlement's own span lasts until
    /// the ledger has it durable.
    func settle(
        _ admitted: Admitted, reported: Pricing.Tokens?, producedText: @autoclosure () -> String, answer: String? = nil,
        upstream: (any Span)? = nil
    ) {
        let passthrough = admitted.request.endpoint.isPassthrough
        let tokens = reported
            ?? (passthrough
                ? Pricing.Tokens(input: 0, output: 0)
                : Pricing.Tokens(input: admitted.request.promptTokens, output: Int64(TokenEstimate.count(producedText()))))
        let estimated = reported == nil && !passthrough
        UpstreamSpan.end(upstream, tokens: tokens, estimated: estimated)
        let span = Traces.start("lumen.settle", in: admitted.trace)
        metrics.holdClosed()
        let latency = admitted.started.duration(to: .now)
        let latencyMs = latency.wholeMilliseconds
        let (logger, requestID) = (self.logger, admitted.requestID)
        meter.settle(
            .with {
                $0.requestID = admitted.requestID
                $0.inputTokens = tokens.input
                $0.cachedInputTokens = tokens.cachedInput
                $0.cacheWriteTokens = tokens.cacheWrite
                $0.outputTokens = tokens.output
                $0.latencyMs = latencyMs
                $0.estimated = estimated
                $0.backendID = admitted.backend?.id ?? ""
                $0.httpStatus = 200
                if let firstByte = admitted.firstByte { $0.ttftMs = admitted.started.duration(to: firstByte).wholeMilliseconds }
                if let capture = admitted.capture { $0.capture = Self.captured(admitted.request, answer: answer ?? "", as: capture) }
                $0.traceparent = Traces.traceparent(of: span)
            }
        ) { result in
            if let span {
                if case .failure(let error) = result { Traces.fail(span, code: error.code, message: error.message) }
                span.end()
            }
            if case .failure(let error) = result {
                logger.error(
                    "settle failed; the hold will be settled at its estimate when it expires",
                    metadata: ["request_id": "\(requestID)", "error": "\(error)"])
            }
        }
        logger.info(
            "inference",
            metadata: [
                "request_id": "\(admitted.requestID)", "key_id": "\(admitted.key.id)", "model": "\(admitted.model.name)",
                "endpoint": "\(admitted.request.format == .anthropic ? "messages" : admitted.request.endpoint.rawValue)",
                "input_tokens": "\(tokens.input)",
                "output_tokens": "\(tokens.output)", "channel": "\(admitted.byok ? "byok" : "platform")",
                "estimated": "\(estimated)", "latency_ms": "\(latencyMs)", "backend": "\(admitted.backend?.id ?? "")",
                "upstream_model": "\(admitted.backend.map { $0.upstreamModel.isEmpty ? admitted.model.name : $0.upstreamModel } ?? "")",
            ])
    }

    /// A captured request: its body as the caller sent it (a multipart upload is named, not
    /// kept) and its answer, each cut at the capture's size on a character's boundary.
    static func captured(_ request: InferenceRequest, answer: String, as settings: Lumen_Ledger_V1_CaptureSettings) -> Lumen_Ledger_V1_CapturedRequest {
        let prompt: String =
            if let anthropic = request.anthropic { String(buffer: anthropic.bytes) }
            else if let raw = request.rawBody { "[\(raw.contentType) body of \(raw.bytes.readableBytes) bytes, not captured]" }
            else { String(buffer: request.jsonBytes) }
        let limit = Int(settings.maxBytes)
        func cut(_ text: String) -> (String, Bool) {
            guard text.utf8.count > limit else { return (text, false) }
            var end = text.utf8.index(text.utf8.startIndex, offsetBy: limit)
            while end.samePosition(in: text.unicodeScalars) == nil, end > text.utf8.startIndex { end = text.utf8.index(before: end) }
            return (String(text[..<end]), true)
        }
        let (keptPrompt, promptCut) = cut(prompt)
        let (keptAnswer, answerCut) = cut(answer)
        return .with {
            $0.prompt = keptPrompt
            $0.answer = keptAnswer
            $0.truncated = promptCut || answerCut
            $0.retentionDays = settings.retentionDays
        }
    }

    /// The caller's own upstream key from `X-Upstream-Authorization` (`Bearer …` or bare).
    static func callerCredential(_ request: Request) throws(APIError) -> String? {
        guard let header = request.headers[byokHeader] else { return nil }
        let credential = AuthInterceptor.bearerToken(header) ?? header.trimmingCharacters(in: .whitespaces)
        guard !credential.isEmpty, !credential.contains(where: { $0.isNewline }) else {
            throw APIError.invalid(
                "invalid_upstream_authorization", "X-Upstream-Authorization must be `Bearer <your upstream key>`",
                param: "X-Upstream-Authorization")
        }
        return credential
    }
}
