import Foundation
import GRPCCore
import Logging
import LumenAPI
import RPCSupport
import SharedRules
import Storage

/// The conversations service: the dashboard's web chats, each person's own and private whatever
/// their role, on a store of its own. It runs beside the accounts service; the people it names
/// are the accounts service's, but it never reads their tables.
public struct ConversationsService: Sendable {
    let store: any SQLStore
    let clock: WallClock
    let logger: Logger

    /// The conversations service's tables, opened (and migrated) by `openStore`.
    public struct Store: Sendable {
        let store: ConversationsStore
    }

    /// Opens the tables: `conversations.sqlite`, or the `conversations` schema of PostgreSQL.
    public static func openStore(_ location: StoreLocation, logger: Logger) async throws -> Store {
        Store(store: try await ConversationsStore(location, logger: logger))
    }

    /// Opens (and migrates) `conversations.sqlite` at `location`.
    public init(location: ServiceDatabase.Location, clock: WallClock = .system, logger: Logger) throws {
        self.init(store: Store(store: try ConversationsStore(location: location)), clock: clock, logger: logger)
    }

    /// The service on tables opened with `openStore`.
    public init(store: Store, clock: WallClock = .system, logger: Logger) {
        self.store = store.store.sql
        self.clock = clock
        self.logger = logger
    }
}

/// The rules of a conversation: who owns it, what its title, model and messages may be.
enum Conversations {
    static let maxTitle = 200
    static let maxModel = 200
    static let maxContentBytes = 1 << 20
    static let maxMessages = 10_000
    static let defaultTitle = "New conversation"

    static func notFound(_ id: String) -> ServiceError {
        ServiceError(.notFound, "conversation_not_found", "no conversation \(id)", param: "conversation_id")
    }

    /// Whose conversations a call may touch: the person calling (never someone else, even an
    /// administrator), or the user Lumen itself names.
    static func owner(_ requested: String) throws -> String {
        try requirePersonOrInternal()
        if let person = Caller.current?.person {
            guard requested.isEmpty || requested == person.userID else {
                throw ServiceError(.permissionDenied, "not_permitted", "a conversation is its owner's alone")
            }
            return person.userID
        }
        guard !requested.isEmpty else {
            throw ServiceError.invalid("user_required", "user_id is required", param: "user_id")
        }
        return requested
    }

    static func title(_ raw: String) throws -> String {
        let title = raw.trimmingCharacters(in: .whitespacesAndNewlines)
        guard title.count <= maxTitle else {
            throw ServiceError.invalid("invalid_title", "a title has at most \(maxTitle) characters", param: "title")
        }
        return title.isEmpty ? defaultTitle : title
    }

    static func model(_ raw: String) throws -> String {
        guard !raw.isEmpty, raw.count <= maxModel else {
            throw ServiceError.invalid("invalid_model", "model is required (at most \(maxModel) characters)", param: "model")
        }
        return raw
    }

    static let columns = "id, organization_id, user_id, title, model, message_count, created_at, updated_at"

    static func message(_ row: SQLRow) throws -> Lumen_Conversations_V1_Conversation {
        var conversation = Lumen_Conversations_V1_Conversation()
        conversation.id = try row[0]
        conversation.organizationID = try row[1]
        conversation.userID = try row[2]
        conversation.title = try row[3]
        conversation.model = try row[4]
        conversation.messageCount = Int32(try row[5] as Int64)
        conversation.createdAt = .init(millis: try row[6])
        conversation.updatedAt = .init(millis: try row[7])
        return conversation
    }

    /// The conversation `id` of `userID`, or NOT_FOUND (another person's is not found either).
    static func fetch(_ db: any SQLSession, id: String, organizationID: String, userID: String?) async throws
        -> Lumen_Conversations_V1_Conversation
    {
        guard
            let row = try await db.row(
                "SELECT \(columns) FROM conversations WHERE id = ? AND organization_id = ?", .text(id), .text(organizationID)),
            case let conversation = try message(row), userID == nil || conversation.userID == userID
        else { throw notFound(id) }
        return conversation
    }

    /// Adds `message` to a conversation as its `seq`th (from 0), added at `createdAt`.
    static func insert(
        _ message: Lumen_Conversations_V1_ChatMessage, _ db: any SQLSession, conversationID: String, seq: Int, at createdAt: Int64
    ) async throws {
        try await db.execute(
            """
            INSERT INTO conversation_messages (conversation_id, seq, role, content, model, request_id, created_at)
            VALUES (?, ?, ?, ?, ?, ?, ?)
            """, .text(conversationID), .of(seq), .text(message.role), .text(message.content), .text(message.model),
            .text(message.requestID), .integer(createdAt))
    }

    /// The person calling, or nil for Lumen itself (which may read any of the organisation's).
    static var callingUser: String? { Caller.current?.person?.userID }

    /// Refuses management and operator tokens: conversations are people's.
    static func requirePersonOrInternal() throws {
        switch try Caller.require() {
        case .internal, .person: return
        case .management, .operator:
            throw ServiceError(
                .permissionDenied, "person_required", "conversations belong to the people who had them: sign in to the dashboard")
        }
    }
}

extension ConversationsService: Lumen_Conversations_V1_ConversationsService.SimpleServiceProtocol {
    public func createConversation(
        request: Lumen_Conversations_V1_CreateConversationRequest, context: ServerContext
    ) async throws -> Lumen_Conversations_V1_CreateConversationResponse {
        let organizationID = try Caller.organization(request.organizationID)
        let userID = try Conversations.owner(request.userID)
        let title = try Conversations.title(request.title)
        let model = try Conversations.model(request.model)
        let now = clock.nowMillis
        let id = Identifier.make("cnv")
        // The owner is the person calling (vouched for by the Lumen process that signed them
        // in) or a user Lumen itself names: neither needs looking up in the accounts service.
        let row = try await store.write { db in
            try await db.execute(
                """
                INSERT INTO conversations (id, organization_id, user_id, title, model, message_count, created_at, updated_at)
                VALUES (?, ?, ?, ?, ?, 0, ?, ?)
                """, .text(id), .text(organizationID), .text(userID), .text(title), .text(model), .integer(now), .integer(now))
            return try await Conversations.fetch(db, id: id, organizationID: organizationID, userID: userID)
        }
        return .with { $0.conversation = row }
    }

    public func listConversations(
        request: Lumen_Conversations_V1_ListConversationsRequest, context: ServerContext
    ) async throws -> Lumen_Conversations_V1_ListConversationsResponse {
        let organizationID = try Caller.organization(request.organizationID)
        let userID = try Conversations.owner(request.userID)
        let page = try Page(request.page, defaultLimit: 50, maxLimit: 200)
        let (rows, total) = try await store.read { db in
            let rows = try await db.rows(
                """
                SELECT \(Conversations.columns) FROM conversations WHERE organization_id = ? AND user_id = ?
                ORDER BY updated_at DESC, id LIMIT ? OFFSET ?
                """, [.text(organizationID), .text(userID), .of(page.limit), .of(page.offset)])
            let total = try await db.rows(
                "SELECT count(*) FROM conversations WHERE organization_id = ? AND user_id = ?", [.text(organizationID), .text(userID)]
            )[0][0] as Int
            return (try rows.map(Conversations.message), total)
        }
        return .with {
            $0.conversations = rows
            $0.pageInfo = page.info(total: total)
        }
    }

    public func getConversation(
        request: Lumen_Conversations_V1_GetConversationRequest, context: ServerContext
    ) async throws -> Lumen_Conversations_V1_GetConversationResponse {
        let organizationID = try Caller.organization(request.organizationID)
        try Conversations.requirePersonOrInternal()
        let userID = Conversations.callingUser
        let (row, messages) = try await store.read { db in
            let conversation = try await Conversations.fetch(db, id: request.conversationID, organizationID: organizationID, userID: userID)
            let messages = try await db.rows(
                "SELECT role, content, model, request_id, created_at FROM conversation_messages WHERE conversation_id = ? ORDER BY seq",
                [.text(request.conversationID)]
            ).map { row in
                var message = Lumen_Conversations_V1_ChatMessage()
                message.role = try row[0]
                message.content = try row[1]
                message.model = try row[2]
                message.requestID = try row[3]
                message.createdAt = .init(millis: try row[4])
                return message
            }
            return (conversation, messages)
        }
        return .with {
            $0.conversation = row
            $0.messages = messages
        }
    }

    public func updateConversation(
        request: Lumen_Conversations_V1_UpdateConversationRequest, context: ServerContext
    ) async throws -> Lumen_Conversations_V1_UpdateConversationResponse {
        let organizationID = try Caller.organization(request.organizationID)
        try Conversations.requirePersonOrInternal()
        let userID = Conversations.callingUser
        let title = request.hasTitle ? try Conversations.title(request.title) : nil
        let model = request.hasModel ? try Conversations.model(request.model) : nil
        guard title != nil || model != nil else { throw ServiceError.invalid("empty_update", "give title or model", param: "title") }
        let now = clock.nowMillis
        let row = try await store.write { db in
            _ = try await Conversations.fetch(db, id: request.conversationID, organizationID: organizationID, userID: userID)
            try await db.execute(
                "UPDATE conversations SET title = coalesce(?, title), model = coalesce(?, model), updated_at = ? WHERE id = ?",
                .of(title), .of(model), .integer(now), .text(request.conversationID))
            return try await Conversations.fetch(db, id: request.conversationID, organizationID: organizationID, userID: userID)
        }
        return .with { $0.conversation = row }
    }

    public func deleteConversation(
        request: Lumen_Conversations_V1_DeleteConversationRequest, context: ServerContext
    ) async throws -> Lumen_Conversations_V1_DeleteConversationResponse {
        let organizationID = try Caller.organization(request.organizationID)
        try Conversations.requirePersonOrInternal()
        let userID = Conversations.callingUser
        try await store.write { db in
            _ = try await Conversations.fetch(db, id: request.conversationID, organizationID: organizationID, userID: userID)
            try await db.execute("DELETE FROM conversation_messages WHERE conversation_id = ?", .text(request.conversationID))
            try await db.execute("DELETE FROM conversations WHERE id = ?", .text(request.conversationID))
        }
        return .init()
    }

    public func appendMessages(
        request: Lumen_Conversations_V1_AppendMessagesRequest, context: ServerContext
    ) async throws -> Lumen_Conversations_V1_AppendMessagesResponse {
        let organizationID = try Caller.organization(request.organizationID)
        try Conversations.requirePersonOrInternal()
        let userID = Conversations.callingUser
        for message in request.messages {
            guard message.role == "user" || message.role == "assistant" else {
                throw ServiceError.invalid("invalid_role", "a message's role is user or assistant", param: "messages")
            }
            guard message.content.utf8.count <= Conversations.maxContentBytes else {
                throw ServiceError.invalid("message_too_large", "a message has at most 1 MiB of text", param: "messages")
            }
        }
        let now = clock.nowMillis
        let row = try await store.write { db in
            let conversation = try await Conversations.fetch(db, id: request.conversationID, organizationID: organizationID, userID: userID)
            let count = Int(conversation.messageCount)
            guard count + request.messages.count <= Conversations.maxMessages else {
                throw ServiceError.invalid(
                    "too_many_messages", "a conversation holds at most \(Conversations.maxMessages) messages; start another",
                    param: "messages")
            }
            for (offset, message) in request.messages.enumerated() {
                try await Conversations.insert(message, db, conversationID: request.conversationID, seq: count + offset, at: now)
            }
            try await db.execute(
                "UPDATE conversations SET message_count = message_count + ?, updated_at = ? WHERE id = ?",
                .of(request.messages.count), .integer(now), .text(request.conversationID))
            return try await Conversations.fetch(db, id: request.conversationID, organizationID: organizationID, userID: userID)
        }
        return .with { $0.conversation = row }
    }
}
