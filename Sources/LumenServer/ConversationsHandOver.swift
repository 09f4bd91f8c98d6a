import Accounts
import Conversations
import Logging

/// Moves the web chats the accounts service kept before conversations had a service of their
/// own (accounts' migration v3) to the conversations service, at start, wherever both run:
/// a batch is adopted by conversations before accounts forgets it, so an interrupted hand-over
/// only repeats. Once every one has moved, a start reads one empty page and goes on.
public enum ConversationsHandOver {
    static let batch = 100

    /// How many conversations moved.
    @discardableResult
    public static func run(from accounts: AccountsService, to conversations: ConversationsService, logger: Logger) async throws -> Int {
        var moved = 0
        while true {
            let kept = try await accounts.legacyConversations(limit: batch)
            guard !kept.isEmpty else { break }
            try await conversations.adopt(kept)
            try await accounts.forgetLegacyConversations(kept.map(\.conversation.id))
            moved += kept.count
        }
        if moved > 0 { logger.notice("moved \(moved) web-chat conversations from the accounts store to their own") }
        return moved
    }
}
