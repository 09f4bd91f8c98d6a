import Foundation
import Gateway
import Hummingbird
import LumenAPI
import RPCSupport
import SharedRules
import WireFormats

/// The web chat's JSON API: a person's conversations (kept by the accounts service) and the
/// answers, streamed as the API streams them, through the gateway's own inference path
/// (`WebChat`: the same admission and ledger, origin `web`, charged to the person's pool).
struct ChatController: Sendable {
    let services: GatewayServices
    let webChat: WebChat?

    func addRoutes(to group: RouterGroup<DashboardContext>) {
        group.get("chat/conversations", use: list)
        group.post("chat/conversations", use: create)
        group.get("chat/conversations/{conversationId}", use: open)
        group.patch("chat/conversations/{conversationId}", use: update)
        group.delete("chat/conversations/{conversationId}", use: delete)
        group.post("chat/conversations/{conversationId}/messages", use: send)
    }

    @Sendable func list(_ request: Request, context: DashboardContext) async throws -> JSONResponse<ConversationList> {
        let response = try await APIError.translating {
            try await services.conversations.listConversations(
                .with { $0.page = .with { $0.limit = 200 } }, metadata: try context.acting(services))
        }
        return JSONResponse(ConversationList(data: response.conversations.map(ConversationObject.init), total: response.pageInfo.total))
    }

    /// `{"model", "title"?}`.
    @Sendable func create(_ request: Request, context: DashboardContext) async throws -> JSONResponse<ConversationObject> {
        let body = try await Body.object(request)
        try Body.refuseUnknown(body, allowed: ["model", "title"])
        let model = try Body.text(body, "model")
        let title = try Body.optionalText(body, "title")
        let conversation = try await APIError.translating {
            try await services.conversations.createConversation(
                .with {
                    $0.model = model
                    if let title { $0.title = title }
                }, metadata: try context.acting(services)
            ).conversation
        }
        return JSONResponse(ConversationObject(conversation))
    }

    @Sendable func open(_ request: Request, context: DashboardContext) async throws -> JSONResponse<ConversationDetail> {
        let response = try await conversation(try context.path("conversationId"), context)
        return JSONResponse(ConversationDetail(response))
    }

    func conversation(_ id: String, _ context: DashboardContext) async throws -> Lumen_Conversations_V1_GetConversationResponse {
        try await APIError.translating(params: ["conversation_id": "conversationId"]) {
            try await services.conversations.getConversation(.with { $0.conversationID = id }, metadata: try context.acting(services))
        }
    }

    /// `{"title"?, "model"?}`.
    @Sendable func update(_ request: Request, context: DashboardContext) async throws -> JSONResponse<ConversationObject> {
        let id = try context.path("conversationId")
        let body = try await Body.object(request)
        try Body.refuseUnknown(body, allowed: ["title", "model"])
        let title = try Body.optionalText(body, "title")
        let model = try Body.optionalText(body, "model")
        let conversation = try await APIError.translating(params: ["conversation_id": "conversationId"]) {
            try await services.conversations.updateConversation(
                .with {
                    $0.conversationID = id
                    if let title { $0.title = title }
                    if let model { $0.model = model }
                }, metadata: try context.acting(services)
            ).conversation
        }
        return JSONResponse(ConversationObject(conversation))
    }

    @Sendable func delete(_ request: Request, context: DashboardContext) async throws -> Response {
        let id = try context.path("conversationId")
        _ = try await APIError.translating(params: ["conversation_id": "conversationId"]) {
            try await services.conversations.deleteConversation(.with { $0.conversationID = id }, metadata: try context.acting(services))
        }
        return Response(status: .noContent)
    }

    /// `{"content", "model"?}`: the conversation so far and this message go to the model; the
    /// answer streams back as the API's server-sent events, and once it has ended both
    /// messages join the conversation. A refused request (no coins, blocked, consent needed)
    /// answers with the API's error and keeps nothing.
    @Sendable func send(_ request: Request, context: DashboardContext) async throws -> Response {
        guard let webChat else { throw APIError(.serviceUnavailable, code: "chat_unavailable", message: "this server runs no gateway") }
        let person = try context.person
        let metadata = try context.acting(services)
        let id = try context.path("conversationId")
        let body = try await Body.object(request)
        try Body.refuseUnknown(body, allowed: ["content", "model"])
        let content = try Body.text(body, "content")
        let current = try await conversation(id, context)
        // The page sends its picker's model every time: only a different one is a switch.
        let chosen = try Body.optionalText(body, "model").flatMap { $0 == current.conversation.model ? nil : $0 }
        let model = chosen ?? current.conversation.model
        let history: [JSONValue] = current.messages.map { .object(["role": .string($0.role), "content": .string($0.content)]) }
        let question: JSONValue = .object(["role": .string("user"), "content": .string(content)])
        let services = self.services
        let first = current.messages.isEmpty && current.conversation.title == "New conversation"
        return try await webChat.complete(
            organizationID: person.organizationID, userID: person.userID,
            body: ["model": .string(model), "stream": .bool(true), "messages": .array(history + [question])], request: request
        ) { answer, requestID in
            // What the model said, kept whatever happened to the browser meanwhile.
            _ = try? await services.conversations.appendMessages(
                .with {
                    $0.conversationID = id
                    $0.messages = [
                        .with {
                            $0.role = "user"
                            $0.content = content
                        },
                        .with {
                            $0.role = "assistant"
                            $0.content = answer
                            $0.model = model
                            $0.requestID = requestID
                        },
                    ]
                }, metadata: metadata)
            if first || chosen != nil {
                _ = try? await services.conversations.updateConversation(
                    .with {
                        $0.conversationID = id
                        if first { $0.title = ConversationObject.title(from: content) }
                        if let chosen { $0.model = chosen }
                    }, metadata: metadata)
            }
        }
    }
}

struct ConversationObject: Encodable, Sendable {
    var id: String
    var title: String
    var model: String
    var messageCount: Int32
    var createdAt: String
    var updatedAt: String

    init(_ conversation: Lumen_Conversations_V1_Conversation) {
        id = conversation.id
        title = conversation.title
        model = conversation.model
        messageCount = conversation.messageCount
        createdAt = RFC3339.format(millis: conversation.createdAt.millis)
        updatedAt = RFC3339.format(millis: conversation.updatedAt.millis)
    }

    /// A conversation's title from its first message: its first line of text (a code fence
    /// skipped) as plain text — Markdown's headings, quotes, list markers, emphasis, code
    /// ticks and link targets dropped — at most 60 characters.
    static func title(from content: String) -> String {
        let lines = content.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }
        let line = lines.lazy.filter { !$0.hasPrefix("```") && !$0.hasPrefix("~~~") }.map(Self.plain).first { !$0.isEmpty } ?? ""
        guard !line.isEmpty else { return "New conversation" }
        return line.count <= 60 ? line : String(line.prefix(59)) + "…"
    }

    /// One line of Markdown as the text a reader sees.
    static func plain(_ line: String) -> String {
        var text = Substring(line)
        func dropPrefix(_ pattern: Regex<Substring>) {
            if let match = text.prefixMatch(of: pattern) { text = text[match.range.upperBound...] }
        }
        dropPrefix(Self.blockMarker)
        var plain = String(text)
        plain.replace(Self.link) { "\($0.output.1)" }
        plain.replace(Self.emphasis) { "\($0.output.2)" }
        plain.replace(Self.underscores) { "\($0.output.1)\($0.output.3)" }
        plain.removeAll { $0 == "`" }
        return plain.trimmingCharacters(in: .whitespaces)
    }

    /// Quotes (`> `), headings (`## `), list items (`- `, `* `, `+ `, `1. `, `1) `), task boxes.
    // Regex literals: checked when Lumen is compiled, so none can fail at run time.
    nonisolated(unsafe) static let blockMarker = #/^(?:\s*>\s?)*\s*(?:\#{1,6}\s+|[-*+]\s+(?:\[[ xX]\]\s+)?|\d{1,9}[.)]\s+)?/#
    /// `[text](target)` and `![alt](target)`: the text.
    nonisolated(unsafe) static let link = #/!?\[([^\]]*)\]\([^)]*\)/#
    /// `**strong**`, `*em*`, `~~struck~~`: the words.
    nonisolated(unsafe) static let emphasis = #/(\*{1,3}|~~)(\S(?:.*?\S)?)\1/#
    /// `__strong__`, `_em_` — between spaces or punctuation only, so `snake_case_names` stay.
    nonisolated(unsafe) static let underscores = #/(^|\s)(_{1,3})(\S(?:.*?\S)?)\2(?=\s|$|[.,;:!?)])/#

    enum CodingKeys: String, CodingKey {
        case id, title, model
        case messageCount = "message_count"
        case createdAt = "created_at"
        case updatedAt = "updated_at"
    }
}

struct ConversationList: Encodable, Sendable {
    var object = "list"
    var data: [ConversationObject]
    var total: Int64
}

struct ConversationDetail: Encodable, Sendable {
    struct Message: Encodable, Sendable {
        var role: String
        var content: String
        var model: String
        var requestID: String
        var createdAt: String

        enum CodingKeys: String, CodingKey {
            case role, content, model
            case requestID = "request_id"
            case createdAt = "created_at"
        }
    }

    var conversation: ConversationObject
    var messages: [Message]

    init(_ response: Lumen_Conversations_V1_GetConversationResponse) {
        conversation = ConversationObject(response.conversation)
        messages = response.messages.map {
            Message(
                role: $0.role, content: $0.content, model: $0.model, requestID: $0.requestID,
                createdAt: RFC3339.format(millis: $0.createdAt.millis))
        }
    }
}
