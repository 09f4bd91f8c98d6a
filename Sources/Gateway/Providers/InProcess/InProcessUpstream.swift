import HTTPTypes
import LumenAPI
import NIOCore

/// The backends of provider `mock`: answered inside the process by an `InProcessProvider`
/// (Lumen's built-in model), in OpenAI's format; nothing to probe, nothing to configure.
struct InProcessUpstream: UpstreamProvider {
    let provider: any InProcessProvider

    func send(_ call: UpstreamCall) async throws -> UpstreamResponse {
        UpstreamResponse(try provider.respond(to: call.request.inProcessCall(model: call.model.name, id: String(call.requestID.dropFirst(4)))))
    }

    func answer(_ body: ByteBuffer, status: HTTPResponse.Status, contentType: String?, of call: UpstreamCall) -> ProviderAnswer {
        OpenAIWire.answer(body, status: status, contentType: contentType, of: call)
    }

    func stream(of call: UpstreamCall) -> any ProviderStream { OpenAIWire.stream(of: call) }

    func probe(_ backend: Lumen_Registry_V1_Backend, timeout: TimeAmount) async throws -> Int? { nil }

    func problem(of backend: Lumen_Registry_V1_Backend, environment: (String) -> String?) -> String { "" }
}
