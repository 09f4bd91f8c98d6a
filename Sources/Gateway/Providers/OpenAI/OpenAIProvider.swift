import HTTPTypes
import LumenAPI
import NIOCore
import NIOHTTP1
import SharedRules
import WireFormats

/// Any OpenAI-compatible HTTP API (OpenAI, vLLM, Ollama, OpenRouter, …): `POST
/// {base_url}/{endpoint}` with the caller's body (the model replaced, usage asked for when
/// streaming), the credential as `Authorization: Bearer`; answers relayed as they come
/// (`OpenAIWire`), health from `GET {base_url}/models`.
struct OpenAIProvider: OpenAIWireProvider {
    let http: UpstreamHTTP

    func send(_ call: UpstreamCall) async throws -> UpstreamResponse {
        let (body, headers) = OpenAIWire.request(call) { "Bearer " + $0 }
        return try await http.post(
            UpstreamHTTP.url(call.backend.baseURL, call.request.endpoint.rawValue), headers: headers, body: body,
            timeout: UpstreamHTTP.timeout(of: call.backend))
    }

    func probe(_ backend: Lumen_Registry_V1_Backend, timeout: TimeAmount) async throws -> Int? {
        var headers = HTTPHeaders()
        if let credential = UpstreamHTTP.credential(backend.credentialEnv) {
            headers.add(name: "authorization", value: "Bearer " + credential)
        }
        return try await http.get(UpstreamHTTP.url(backend.baseURL, "models"), headers: headers, timeout: timeout)
    }
}

/// A provider whose answers are OpenAI's wire format (OpenAI-compatible APIs, Azure OpenAI):
/// read as `OpenAIWire` reads them.
protocol OpenAIWireProvider: UpstreamProvider {}

extension OpenAIWireProvider {
    func answer(_ body: ByteBuffer, status: HTTPResponse.Status, contentType: String?, of call: UpstreamCall) -> ProviderAnswer {
        OpenAIWire.answer(body, status: status, contentType: contentType, of: call)
    }

    func stream(of call: UpstreamCall) -> any ProviderStream { OpenAIWire.stream(of: call) }
}

/// Reading OpenAI's answers — what the OpenAI-compatible upstreams and the in-process mock
/// send: relayed as they came, the model's name rewritten to the logical one, usage and text
/// read for metering.
enum OpenAIWire {
    /// The body and headers of `call` in OpenAI's wire format: the caller's body with the
    /// upstream's model, its content type, `accept` for a stream, and the credential (the
    /// caller's own, else the backend's) as `authorization` makes it the header's value.
    static func request(
        _ call: UpstreamCall, credentialHeader: String = "authorization", _ authorization: (String) -> String
    ) -> (ByteBuffer, HTTPHeaders) {
        let (body, contentType) = call.request.upstreamBody(model: call.upstreamModel)
        var headers = HTTPHeaders()
        headers.add(name: "content-type", value: contentType)
        if call.request.stream { headers.add(name: "accept", value: "text/event-stream") }
        if let credential = call.callerCredential ?? UpstreamHTTP.credential(call.backend.credentialEnv) {
            headers.add(name: credentialHeader, value: authorization(credential))
        }
        return (body, headers)
    }

    /// The answer for the caller: as it came, or in Anthropic's format for a `/v1/messages` caller.
    static func answer(_ body: ByteBuffer, status: HTTPResponse.Status, contentType: String?, of call: UpstreamCall) -> ProviderAnswer {
        guard call.request.format == .anthropic else { return answer(body, status: status, contentType: contentType, model: call.model.name) }
        guard status.code < 300 else {
            return ProviderAnswer(
                body: MessagesAnswer.error(fromOpenAI: body, status: Int(status.code)), contentType: "application/json", reported: nil, text: "")
        }
        return MessagesAnswer.message(fromOpenAI: body, model: call.model.name)
            ?? answer(body, status: status, contentType: contentType, model: call.model.name)
    }

    /// The stream's reader for the caller's format.
    static func stream(of call: UpstreamCall) -> any ProviderStream {
        guard call.request.format == .anthropic else { return Stream(model: call.model.name, includeUsage: call.request.includeUsage) }
        return MessagesAnswer.Stream(model: call.model.name, id: "msg_" + call.requestID, promptTokens: call.request.promptTokens)
    }

    static func answer(_ body: ByteBuffer, status: HTTPResponse.Status, contentType: String?, model: String) -> ProviderAnswer {
        let contentType = contentType ?? "application/json"
        guard status.code < 300 else { return ProviderAnswer(body: body, contentType: contentType, reported: nil, text: "") }
        let relayed = ModelNameRewrite.applies(to: contentType) ? ModelNameRewrite.rewrite(body, to: model) : body
        return ProviderAnswer(
            body: relayed, contentType: contentType, reported: MeteredPayload.reportedUsage(in: body),
            text: MeteredPayload.decode(body.readableBytesView)?.text ?? "")
    }

    /// An OpenAI event stream, relayed event by event. The usage chunk Lumen asked for is
    /// dropped unless the caller asked for it too; `[DONE]` ends the answer.
    final class Stream: ProviderStream {
        let model: String
        let includeUsage: Bool
        private(set) var reported: Pricing.Tokens?
        /// The events' data, read for their text only when asked (no usage came, the web chat).
        private var unread: [String] = []

        init(model: String, includeUsage: Bool) {
            self.model = model
            self.includeUsage = includeUsage
        }

        func relay(_ event: SSEEvent, into out: inout ByteBuffer) -> Bool {
            if let data = event.data, !event.isDone {
                unread.append(data)
                // Only an event that names usage is parsed as it passes (the usage chunk, a
                // responses stream's `response.completed`).
                if MeteredPayload.mayReportUsage(data), let payload = MeteredPayload.decode(data.utf8), let tokens = payload.reported {
                    reported = tokens
                    if payload.hasNoChoices && !includeUsage { return false }
                }
            }
            var relayed = event.data == nil ? event.raw : ModelNameRewrite.rewrite(event.raw, to: model)
            out.writeBuffer(&relayed)
            return event.isDone
        }

        func text() -> String { unread.lazy.compactMap { MeteredPayload.decode($0.utf8)?.text }.joined() }
    }
}
