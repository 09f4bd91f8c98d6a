import LumenAPI
import SharedRules
import Storage

extension ConversationsService {
    /// Takes conversations kept elsewhere before this service had them (the accounts service's,
    /// handed over at start), as they were — ids, owners, times and messages in order — in one
    /// transaction. A conversation already here is left as it is, so a hand-over interrupted
    /// after this call and before the sender forgot them is harmless to repeat.
    public func adopt(_ conversations: [Lumen_Conversations_V1_GetConversationResponse]) async throws {
        guard !conversations.isEmpty else { return }
        try await store.write { db in
            for kept in conversations {
                let conversation = kept.conversation
                guard
                    try await db.value(Int.self, "SELECT count(*) FROM conversations WHERE id = ?", .text(conversation.id)) == 0
                else { continue }
                try await db.execute(
                    """
                    INSERT INTO conversations (id, organization_id, user_id, title, model, message_count, created_at, updated_at)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                    """, .text(conversation.id), .text(conversation.organizationID), .text(conversation.userID),
                    .text(conversation.title), .text(conversation.model), .of(kept.messages.count),
                    .integer(conversation.createdAt.millis), .integer(conversation.updatedAt.millis))
                for (seq, message) in kept.messages.enumerated() {
                    try await Conversations.insert(message, db, conversationID: conversation.id, seq: seq, at: message.createdAt.millis)
                }
            }
        }
    }
}
