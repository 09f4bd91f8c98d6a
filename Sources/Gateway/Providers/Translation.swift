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
        messages.readText = openAI.readText
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

/// An OpenAI chat request's messages as a translated provider's system blocks and alternating
/// turns — the walk every translation shares (roles, tool call ids, the errors); what differs
/// is the provider's: a message's content as its blocks, an assistant's tool call, a tool's result.
struct ChatTranscript {
    private(set) var system: [JSONValue] = []
    private(set) var turns: [JSONValue] = []

    /// `field` names a turn's blocks and `assistantRole` the assistant's turns; `blocks` turns a
    /// message's content (and the field it is in) into blocks, of which `isText` picks those a
    /// system message keeps; `toolCall` turns an assistant's tool call into a block, `toolResult`
    /// a tool message (its call's id, its content, its field) into a block of the next user turn.
    init(
        _ request: [String: JSONValue], field: String, assistantRole: String,
        blocks: (JSONValue?, String) throws(APIError) -> [JSONValue], isText: (JSONValue) -> Bool,
        toolCall: (JSONValue, String) throws(APIError) -> JSONValue,
        toolResult: (String, JSONValue?, String) throws(APIError) -> JSONValue
    ) throws(APIError) {
        var turns = AlternatingTurns(field: field)
        for (index, message) in (request["messages"]?.arrayValue ?? []).enumerated() {
            let role = message["role"]?.stringValue ?? ""
            let param = "messages[\(index)]"
            switch role {
            case "system", "developer":
                system += try blocks(message["content"], param).filter(isText)
            case "user":
                turns.add("user", try blocks(message["content"], param))
            case "assistant":
                var content = try blocks(message["content"], param)
                for (number, call) in (message["tool_calls"]?.arrayValue ?? []).enumerated() {
                    content.append(try toolCall(call, "\(param).tool_calls[\(number)]"))
                }
                turns.add(assistantRole, content)
            case "tool":
                guard let id = message["tool_call_id"]?.stringValue, !id.isEmpty else {
                    throw APIError.invalid("invalid_messages", "a tool message needs its tool_call_id", param: "\(param).tool_call_id")
                }
                turns.add("user", [try toolResult(id, message["content"], param)])
            default:
                throw APIError.invalid(
                    "invalid_messages", "a message's role is system, developer, user, assistant or tool, not \(role)", param: param)
            }
        }
        guard !turns.messages.isEmpty else {
            throw APIError.invalid("invalid_messages", "messages need at least one user or assistant message", param: "messages")
        }
        self.turns = turns.messages
    }

    /// A message's content (a string, or an array of text and image parts) as `provider`'s
    /// blocks: `text` makes a text block (never of empty text), `image` one of an image inline
    /// (a `data:` URL, or the bytes Lumen fetched: `fetched`) and the field it came from; other
    /// parts are refused (400 `unsupported_content`).
    static func blocks(
        _ content: JSONValue?, param: String, provider: String, fetched: [String: FetchedImage],
        text: (String) -> JSONValue, image: (FetchedImage, String) throws(APIError) -> JSONValue
    ) throws(APIError) -> [JSONValue] {
        switch content {
        case nil, .null?: return []
        case .string(let string)?: return string.isEmpty ? [] : [text(string)]
        case .array(let parts)?:
            var blocks: [JSONValue] = []
            for (index, part) in parts.enumerated() {
                let place = "\(param).content[\(index)]"
                switch part["type"]?.stringValue {
                case "text":
                    if let string = part["text"]?.stringValue, !string.isEmpty { blocks.append(text(string)) }
                case "image_url":
                    let inline = try ChatImages.inline(part["image_url"]?["url"]?.stringValue ?? "", param: place, provider: provider, fetched: fetched)
                    blocks.append(try image(inline, place))
                default:
                    throw APIError.invalid(
                        "unsupported_content",
                        "this model's provider (\(provider)) takes text and image parts here, not \(part["type"]?.stringValue ?? "this part")",
                        param: place)
                }
            }
            return blocks
        case let other?:
            throw APIError.invalid("invalid_messages", "a message's content is a string or an array of parts, not \(other.typeName)", param: "\(param).content")
        }
    }

    /// Refuses `n` above 1 (400 `n_not_supported`) for a provider that answers one choice.
    static func refuseSeveralChoices(_ request: [String: JSONValue], provider: String) throws(APIError) {
        let invalid = APIError.invalid("invalid_n", "n must be a whole number from 1 to 128", param: "n")
        if let n = try JSONValue.wholeNumber(request["n"], in: 1...128, else: invalid), n > 1 {
            throw APIError.invalid("n_not_supported", "this model's provider (\(provider)) answers one choice: leave n out or set it to 1", param: "n")
        }
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
