import Foundation
import HTTPTypes
import Hummingbird
import LumenAPI
import NIOCore
import SharedRules
import WireFormats

/// Anthropic's Messages API for Claude Code and the `anthropic` SDKs: `POST /v1/messages` and
/// `POST /v1/messages/count_tokens`, the `sk-` key as `x-api-key` or `Authorization: Bearer`.
/// A message goes through the same admission, hold, routing, metering and ledger as a chat
/// completion (scene `chat`): to a Claude backend as the caller sent it (the model renamed,
/// `anthropic-version` and `anthropic-beta` forwarded), to any other translated both ways,
/// streams included. Every refusal is in Anthropic's shape (`{"type":"error","error":…}`) with
/// its status and type.
struct MessagesController<Context: RequestContext>: Sendable {
    let pipeline: InferencePipeline

    func addRoutes(to group: RouterGroup<Context>) {
        group.post("messages") { request, _ in await anthropicErrors(request) { try await messages(request) } }
        group.post("messages/count_tokens") { request, _ in await anthropicErrors(request) { try await countTokens(request) } }
    }

    /// `body`'s answer, or its refusal as Anthropic answers one.
    func anthropicErrors(_ request: Request, _ body: () async throws -> Response) async -> Response {
        do {
            return try await body()
        } catch {
            let apiError = APIErrorMiddleware<BasicRequestContext>.apiError(for: error, request: request, logger: pipeline.logger)
            let (status, body) = MessagesAnswer.refusal(apiError)
            var headers: HTTPFields = [.contentType: "application/json"]
            if let retryAfter = apiError.retryAfter { headers[.retryAfter] = "\(retryAfter)" }
            apiError.rateWindow?.add(to: &headers)
            return Response(status: status, headers: headers, body: .init(byteBuffer: body))
        }
    }

    func messages(_ request: Request) async throws -> Response {
        try await pipeline.counted(.chatCompletions, request) { started, label in
            let key = try pipeline.admission.key(request, xAPIKey: true)
            let inference = try await Self.inference(request, countOnly: false)
            return try await pipeline.run(inference, key: key, callerCredential: nil, origin: .api, started: started, label: &label)
        }
    }

    /// The request as Lumen meters it: Anthropic's body translated to a chat request, its own
    /// bytes and headers kept for a Claude backend.
    static func inference(_ request: Request, countOnly: Bool) async throws -> InferenceRequest {
        let bytes = try await request.body.collect(upTo: InferencePipeline.maxBodyBytes)
        var native = try JSONValue.object(from: bytes.readableBytesView)
        // count_tokens reads the input only (no max_tokens, no sampling): its bound counts that.
        if countOnly {
            native = native.filter { ["model", "messages", "system", "tools", "tool_choice"].contains($0.key) }
            native["max_tokens"] = .number(1)
        }
        var inference = try InferenceRequest(.chatCompletions, body: try MessagesRequest.chatBody(native))
        inference.format = .anthropic
        inference.anthropic = (bytes, request.headers[.anthropicVersion], request.headers[.anthropicBeta])
        return inference
    }

    /// `{"input_tokens": N}`: a Claude backend's own count, else Lumen's bound of the input (what
    /// a hold of the request would count). Never held, never charged.
    func countTokens(_ request: Request) async throws -> Response {
        let key = try pipeline.admission.key(request, xAPIKey: true)
        let inference = try await Self.inference(request, countOnly: true)
        let model = try pipeline.admission.model(inference.model, for: key)
        if let counted = await pipeline.router.countTokens(inference, model: model) {
            return Response(status: counted.status, headers: [.contentType: "application/json"], body: .init(byteBuffer: counted.body))
        }
        var out = ByteBuffer()
        var body = JSONMembers(opening: &out)
        body.number("input_tokens", "\(inference.bound(model).inputTokens)", in: &out)
        body.close(&out)
        return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: out))
    }
}

extension HTTPField.Name {
    static let anthropicVersion = HTTPField.Name("anthropic-version")!
    static let anthropicBeta = HTTPField.Name("anthropic-beta")!
}
