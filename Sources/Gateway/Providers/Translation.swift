import HTTPTypes
import NIOCore
import SharedRules
import WireFormats

/// A provider whose own wire format Lumen translates (Gemini, Bedrock): its answers are read
/// back as OpenAI's, and for a `/v1/messages` caller those in turn as Anthropic's
/// (`MessagesAnswer`, as for any OpenAI backend) — one translation per provider serves both
/// kinds of caller. Usage is what the provider reported, read once, whatever the caller speaks.
protocol TranslatingProvider: UpstreamProvider {
    /// A whole answer — a success, or the upstream's refusal — as OpenAI's.
    func openAIAnswer(_ body: ByteBuffer, status: HTTPResponse.Status, contentType: String?, of call: UpstreamCall) -> ProviderAnswer
    /// A successful stream read as OpenAI's chunks, ended by `[DONE]`; `includeUsage`: the usage
    /// chunk before it.
    func openAIStream(of call: UpstreamCall, includeUsage: Bool) -> any ProviderStream
}

extension TranslatingProvider {
    func answer(_ body: ByteBuffer, status: HTTPResponse.Status, contentType: String?, of call: UpstreamCall) -> ProviderAnswer {
        let openAI = openAIAnswer(body, status: status, contentType: contentType, of: call)
        guard call.request.format == .anthropic else { return openAI }
        var messages = OpenAIWire.answer(openAI.body, status: status, contentType: openAI.contentType, of: call)
        messages.reported = openAI.reported
        messages.text = openAI.text
        return messages
    }

    func stream(of call: UpstreamCall) -> any ProviderStream {
        guard call.request.format == .anthropic else { return openAIStream(of: call, includeUsage: call.request.includeUsage) }
        return MessagesChain(
            openAIStream(of: call, includeUsage: true),
            then: MessagesAnswer.Stream(model: call.model.name, id: "msg_" + call.requestID, promptTokens: call.request.promptTokens))
    }
}

/// A provider's stream read as OpenAI's chunks, which are read in turn as Anthropic's events.
final class MessagesChain: ProviderStream {
    private let openAI: any ProviderStream
    private let messages: MessagesAnswer.Stream
    private var parser = SSEParser()

    init(_ openAI: any ProviderStream, then messages: MessagesAnswer.Stream) {
        self.openAI = openAI
        self.messages = messages
    }

    var reported: Pricing.Tokens? { openAI.reported }
    func text() -> String { openAI.text() }

    func relay(_ event: SSEEvent, into out: inout ByteBuffer) -> Bool {
        var chunks = ByteBuffer()
        let ended = openAI.relay(event, into: &chunks)
        return pass(chunks, into: &out) || ended
    }

    func finish(into out: inout ByteBuffer) -> Bool {
        var chunks = ByteBuffer()
        let ended = openAI.finish(into: &chunks)
        return pass(chunks, into: &out) || ended
    }

    private func pass(_ chunks: ByteBuffer, into out: inout ByteBuffer) -> Bool {
        guard chunks.readableBytes > 0 else { return false }
        var ended = false
        for event in parser.feed(chunks) where messages.relay(event, into: &out) { ended = true }
        return ended
    }
}

/// Turns in the alternation Anthropic's and Bedrock's APIs require (and Gemini's prefers): a
/// message of the same role as the last is merged into it. `field` names a turn's list of
/// blocks (`content`, Gemini's `parts`).
struct AlternatingTurns {
    let field: String
    private(set) var messages: [JSONValue] = []
    private var lastRole = ""

    init(field: String) { self.field = field }

    mutating func add(_ role: String, _ blocks: [JSONValue]) {
        guard !blocks.isEmpty else { return }
        if role == lastRole, case .object(var last) = messages.removeLast() {
            last[field] = .array((last[field]?.arrayValue ?? []) + blocks)
            messages.append(.object(last))
        } else {
            messages.append(.object(["role": .string(role), field: .array(blocks)]))
        }
        lastRole = role
    }
}

/// OpenAI chat parameters a translated provider cannot honour. A request that sets one to
/// anything but its neutral value (null, false, 0, empty, `{"type": "text"}`) is refused
/// (400 `unsupported_parameter`, naming it) — never silently dropped.
enum UnmappedParameters {
    static func refuse(_ request: [String: JSONValue], _ names: [String], provider: String) throws(APIError) {
        for name in names {
            guard let value = request[name], !isNeutral(value) else { continue }
            throw APIError.invalid(
                "unsupported_parameter", "this model's provider (\(provider)) has no equivalent of \(name): leave it out", param: name)
        }
    }

    static func isNeutral(_ value: JSONValue) -> Bool {
        switch value {
        case .null, .bool(false): true
        case .number(let number): number == 0
        case .string(let string): string.isEmpty
        case .array(let elements): elements.isEmpty
        case .object(let members): members.isEmpty || (members.count == 1 && members["type"] == .string("text"))
        default: false
        }
    }
}
