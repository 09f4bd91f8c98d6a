import LumenAPI
import Storage

/// The web chats this service kept before they had a service of their own: migration v3's
/// `conversations` and `conversation_messages`, read out and deleted once the conversations
/// service has them (`LumenServer`'s hand-over at start). Nothing else reads those tables.
extension AccountsService {
    /// The accounts store's migrations, for a test that writes its tables as an older Lumen did.
    @_spi(Testing) public static var migrations: [SQLMigration] { AccountsStore.migrations }

    /// Up to `limit` of the conversations kept here, each with its messages in order; none once
    /// every one was handed over.
    public func legacyConversations(limit: Int) async throws -> [Lumen_Conversations_V1_GetConversationResponse] {
        try await store.read { db in
            var found: [Lumen_Conversations_V1_GetConversationResponse] = []
            for row in try await db.rows(
                """
                SELECT id, organization_id, user_id, title, model, message_count, created_at, updated_at
                FROM conversations ORDER BY id LIMIT ?
                """, [.of(limit)])
            {
                var kept = Lumen_Conversations_V1_GetConversationResponse()
                kept.conversation.id = try row[0]
                kept.conversation.organizationID = try row[1]
                kept.conversation.userID = try row[2]
                kept.conversation.title = try row[3]
                kept.conversation.model = try row[4]
                kept.conversation.messageCount = Int32(try row[5] as Int64)
                kept.conversation.createdAt = .init(millis: try row[6])
                kept.conversation.updatedAt = .init(millis: try row[7])
                kept.messages = try await db.rows(
                    "SELECT role, content, model, request_id, created_at FROM conversation_messages WHERE conversation_id = ? ORDER BY seq",
                    [.text(kept.conversation.id)]
                ).map { message in
                    try .with {
                        $0.role = try message[0]
                        $0.content = try message[1]
                        $0.model = try message[2]
                        $0.requestID = try message[3]
                        $0.createdAt = .init(millis: try message[4])
                    }
                }
                found.append(kept)
            }
            return found
        }
    }

    /// Deletes conversations (and their messages) the conversations service now keeps.
    public func forgetLegacyConversations(_ ids: [String]) async throws {
        guard !ids.isEmpty else { return }
        try await store.write { db in
            let list = sqlPlaceholders(ids.count)
            try await db.execute("DELETE FROM conversation_messages WHERE conversation_id IN (\(list))", ids.map { .text($0) })
            try await db.execute("DELETE FROM conversations WHERE id IN (\(list))", ids.map { .text($0) })
        }
    }
}
