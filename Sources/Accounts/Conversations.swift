import Foundation
import GRDB
import GRPCCore
import LumenAPI
import RPCSupport
import SharedRules

/// The dashboard's web-chat conversations: each person's own, private whatever their role.
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

    static func message(_ row: Row) -> Lumen_Accounts_V1_Conversation {
        .with {
            $0.id = row["id"]
            $0.organizationID = row["organization_id"]
            $0.userID = row["user_id"]
            $0.title = row["title"]
            $0.model = row["model"]
            $0.messageCount = row["message_count"]
            $0.createdAt = .init(millis: row["created_at"])
            $0.updatedAt = .init(millis: row["updated_at"])
        }
    }

    /// The conversation `id` of `userID`, or NOT_FOUND (another person's is not found either).
    static func fetch(_ db: Database, id: String, organizationID: String, userID: String?) throws -> Row {
        guard
            let row = try Row.fetchOne(
                db, sql: "SELECT * FROM conversations WHERE id = ? AND organization_id = ?", arguments: [id, organizationID]),
            userID == nil || row["user_id"] == userID
        else { throw notFound(id) }
        return row
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

extension AccountsService {
    public func createConversation(
        request: Lumen_Accounts_V1_CreateConversationRequest, context: ServerContext
    ) async throws -> Lumen_Accounts_V1_CreateConversationResponse {
        let organizationID = try Caller.organization(request.organizationID)
        let userID = try Conversations.owner(request.userID)
        let title = try Conversations.title(request.title)
        let model = try Conversations.model(request.model)
        let now = clock.nowMillis
        let id = Identifier.make("cnv")
        let row = try await store.writer.write { db in
            guard try UserRecord.filter(Column("id") == userID && Column("organization_id") == organizationID).fetchCount(db) == 1 else {
                throw ServiceError(.notFound, "user_not_found", "no user \(userID)", param: "user_id")
            }
            try db.execute(
                sql: """
                    INSERT INTO conversations (id, organization_id, user_id, title, model, message_count, created_at, updated_at)
                    VALUES (?, ?, ?, ?, ?, 0, ?, ?)
                    """, arguments: [id, organizationID, userID, title, model, now, now])
            return Conversations.message(try Conversations.fetch(db, id: id, organizationID: organizationID, userID: userID))
        }
        return .with { $0.conversation = row }
    }

    public func listConversations(
        request: Lumen_Accounts_V1_ListConversationsRequest, context: ServerContext
    ) async throws -> Lumen_Accounts_V1_ListConversationsResponse {
        let organizationID = try Caller.organization(request.organizationID)
        let userID = try Conversations.owner(request.userID)
        let page = try Page(request.page, defaultLimit: 50, maxLimit: 200)
        let (rows, total) = try await store.writer.read { db in
            let rows = try Row.fetchAll(
                db,
                sql: """
                    SELECT * FROM conversations WHERE organization_id = ? AND user_id = ?
                    ORDER BY updated_at DESC, id LIMIT ? OFFSET ?
                    """, arguments: [organizationID, userID, page.limit, page.offset])
            let total =
                try Int.fetchOne(
                    db, sql: "SELECT COUNT(*) FROM conversations WHERE organization_id = ? AND user_id = ?",
                    arguments: [organizationID, userID]) ?? 0
            return (rows.map(Conversations.message), total)
        }
        return .with {
            $0.conversations = rows
            $0.pageInfo = page.info(total: total)
        }
    }

    public func getConversation(
        request: Lumen_Accounts_V1_GetConversationRequest, context: ServerContext
    ) async throws -> Lumen_Accounts_V1_GetConversationResponse {
        let organizationID = try Caller.organization(request.organizationID)
        try Conversations.requirePersonOrInternal()
        let userID = Conversations.callingUser
        let (row, messages) = try await store.writer.read { db in
            let row = try Conversations.fetch(db, id: request.conversationID, organizationID: organizationID, userID: userID)
            let messages = try Row.fetchAll(
                db,
                sql: "SELECT role, content, model, request_id, created_at FROM conversation_messages WHERE conversation_id = ? ORDER BY seq",
                arguments: [request.conversationID]
            ).map { row in
                Lumen_Accounts_V1_ChatMessage.with {
                    $0.role = row["role"]
                    $0.content = row["content"]
                    $0.model = row["model"]
                    $0.requestID = row["request_id"]
                    $0.createdAt = .init(millis: row["created_at"])
                }
            }
            return (Conversations.message(row), messages)
        }
        return .with {
            $0.conversation = row
            $0.messages = messages
        }
    }

    public func updateConversation(
        request: Lumen_Accounts_V1_UpdateConversationRequest, context: ServerContext
    ) async throws -> Lumen_Accounts_V1_UpdateConversationResponse {
        let organizationID = try Caller.organization(request.organizationID)
        try Conversations.requirePersonOrInternal()
        let userID = Conversations.callingUser
        let title = request.hasTitle ? try Conversations.title(request.title) : nil
        let model = request.hasModel ? try Conversations.model(request.model) : nil
        guard title != nil || model != nil else { throw ServiceError.invalid("empty_update", "give title or model", param: "title") }
        let now = clock.nowMillis
        let row = try await store.writer.write { db in
            _ = try Conversations.fetch(db, id: request.conversationID, organizationID: organizationID, userID: userID)
            try db.execute(
                sql: "UPDATE conversations SET title = coalesce(?, title), model = coalesce(?, model), updated_at = ? WHERE id = ?",
                arguments: [title, model, now, request.conversationID])
            return Conversations.message(
                try Conversations.fetch(db, id: request.conversationID, organizationID: organizationID, userID: userID))
        }
        return .with { $0.conversation = row }
    }

    public func deleteConversation(
        request: Lumen_Accounts_V1_DeleteConversationRequest, context: ServerContext
    ) async throws -> Lumen_Accounts_V1_DeleteConversationResponse {
        let organizationID = try Caller.organization(request.organizationID)
        try Conversations.requirePersonOrInternal()
        let userID = Conversations.callingUser
        try await store.writer.write { db in
            _ = try Conversations.fetch(db, id: request.conversationID, organizationID: organizationID, userID: userID)
            try db.execute(sql: "DELETE FROM conversation_messages WHERE conversation_id = ?", arguments: [request.conversationID])
            try db.execute(sql: "DELETE FROM conversations WHERE id = ?", arguments: [request.conversationID])
        }
        return .init()
    }

    public func appendMessages(
        request: Lumen_Accounts_V1_AppendMessagesRequest, context: ServerContext
    ) async throws -> Lumen_Accounts_V1_AppendMessagesResponse {
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
        let row = try await store.writer.write { db in
            let row = try Conversations.fetch(db, id: request.conversationID, organizationID: organizationID, userID: userID)
            let count: Int = row["message_count"]
            guard count + request.messages.count <= Conversations.maxMessages else {
                throw ServiceError.invalid(
                    "too_many_messages", "a conversation holds at most \(Conversations.maxMessages) messages; start another",
                    param: "messages")
            }
            let statement = try db.makeStatement(
                sql: """
                    INSERT INTO conversation_messages (conversation_id, seq, role, content, model, request_id, created_at)
                    VALUES (?, ?, ?, ?, ?, ?, ?)
                    """)
            for (offset, message) in request.messages.enumerated() {
                try statement.execute(arguments: [
                    request.conversationID, count + offset, message.role, message.content, message.model, message.requestID, now,
                ])
            }
            try db.execute(
                sql: "UPDATE conversations SET message_count = message_count + ?, updated_at = ? WHERE id = ?",
                arguments: [request.messages.count, now, request.conversationID])
            return Conversations.message(
                try Conversations.fetch(db, id: request.conversationID, organizationID: organizationID, userID: userID))
        }
        return .with { $0.conversation = row }
    }
}
