@_spi(Testing) import Accounts
import Foundation
import GRPCCore
import Logging
import LumenAPI
import LumenTesting
import RPCSupport
import Storage
import Synchronization
import Testing

/// The web chat's conversations: kept per person, in order, private even from administrators.
@Suite("Conversations of the web chat")
struct ConversationsTests {
    @Test("A person starts, continues, lists, renames and deletes their conversations; nobody else sees them", arguments: TestStore.available)
    func ownConversations(store: TestStore) async throws {
        try await TestServices.run(store: store) { services in
            let acme = try await services.tenant("Acme")
            let grace = try await services.accounts.createUser(
                .with { $0.email = "grace@acme.test" }, metadata: acme.metadata
            ).user.id
            let asGrace = services.acting(try await services.person(grace, organizationID: acme.organizationID))
            let asAdmin = services.acting(try await services.person(acme.adminUserID, organizationID: acme.organizationID))

            let first = try await services.conversations.createConversation(.with { $0.model = "lumen-demo" }, metadata: asGrace).conversation
            #expect(first.userID == grace && first.title == "New conversation" && first.messageCount == 0)
            let second = try await services.conversations.createConversation(
                .with {
                    $0.model = "lumen-demo"
                    $0.title = "  Travel plans  "
                }, metadata: asGrace
            ).conversation
            #expect(second.title == "Travel plans")

            let appended = try await services.conversations.appendMessages(
                .with {
                    $0.conversationID = first.id
                    $0.messages = [
                        .with {
                            $0.role = "user"
                            $0.content = "Hello **there**"
                        },
                        .with {
                            $0.role = "assistant"
                            $0.content = "Hi!"
                            $0.model = "lumen-demo"
                            $0.requestID = "req_1"
                        },
                    ]
                }, metadata: asGrace
            ).conversation
            #expect(appended.messageCount == 2)
            let opened = try await services.conversations.getConversation(.with { $0.conversationID = first.id }, metadata: asGrace)
            #expect(opened.messages.map(\.role) == ["user", "assistant"])
            #expect(opened.messages.map(\.content) == ["Hello **there**", "Hi!"])
            #expect(opened.messages[1].requestID == "req_1")

            // The most recently changed first; the total counts them.
            let listed = try await services.conversations.listConversations(.init(), metadata: asGrace)
            #expect(listed.conversations.map(\.id) == [first.id, second.id] && listed.pageInfo.total == 2)

            let renamed = try await services.conversations.updateConversation(
                .with {
                    $0.conversationID = second.id
                    $0.title = "Trip to Lisbon"
                }, metadata: asGrace
            ).conversation
            #expect(renamed.title == "Trip to Lisbon")

            // Private: not the administrator's, not a management token's; another person's id is not found.
            #expect(await refusal { _ = try await services.conversations.getConversation(.with { $0.conversationID = first.id }, metadata: asAdmin) }
                == "\(RPCError.Code.notFound) conversation_not_found")
            #expect(await refusal { _ = try await services.conversations.listConversations(.with { $0.userID = grace }, metadata: asAdmin) }
                == "\(RPCError.Code.permissionDenied) not_permitted")
            #expect(await refusal { _ = try await services.conversations.listConversations(.with { $0.userID = grace }, metadata: acme.metadata) }
                == "\(RPCError.Code.permissionDenied) person_required")
            #expect(await refusal {
                _ = try await services.conversations.appendMessages(
                    .with {
                        $0.conversationID = first.id
                        $0.messages = [.with { $0.role = "system"; $0.content = "x" }]
                    }, metadata: asGrace)
            } == "\(RPCError.Code.invalidArgument) invalid_role")

            _ = try await services.conversations.deleteConversation(.with { $0.conversationID = first.id }, metadata: asGrace)
            #expect(await refusal { _ = try await services.conversations.getConversation(.with { $0.conversationID = first.id }, metadata: asGrace) }
                == "\(RPCError.Code.notFound) conversation_not_found")
            #expect(try await services.conversations.listConversations(.init(), metadata: asGrace).pageInfo.total == 1)
        }
    }

    @Test("Conversations the accounts store kept before move to their own at start, once, with their messages", arguments: TestStore.available)
    func handOver(store: TestStore) async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("lumen-handover-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try await TestServices.twice(location: .directory(directory), store: store) { run, tables in
            // A deployment from before: a person, and the accounts store's own conversation tables.
            let (organizationID, grace) = try await value(run) { services in
                let acme = try await services.tenant("Acme")
                let grace = try await services.accounts.createUser(.with { $0.email = "grace@acme.test" }, metadata: acme.metadata).user.id
                return (acme.organizationID, grace)
            }
            var logger = Logger(label: "test")
            logger.logLevel = .critical
            let accounts = try await tables.open("accounts", migrations: AccountsService.migrations, logger: logger)
            @Sendable func keepTheOldWay() async throws {
                try await accounts.write { db in
                    try await db.execute(
                        """
                        INSERT INTO conversations (id, organization_id, user_id, title, model, message_count, created_at, updated_at)
                        VALUES ('cnv_old', ?, ?, 'Before the move', 'lumen-demo', 2, 1000, 2000)
                        """, .text(organizationID), .text(grace))
                    for (seq, role, content) in [(0, "user", "Hello"), (1, "assistant", "Hi **there**")] {
                        try await db.execute(
                            """
                            INSERT INTO conversation_messages (conversation_id, seq, role, content, model, request_id, created_at)
                            VALUES ('cnv_old', ?, ?, ?, 'lumen-demo', 'req_old', 1500)
                            """, .integer(Int64(seq)), .text(role), .text(content))
                    }
                }
            }
            @Sendable func leftInAccounts() async throws -> Int {
                try #require(try await accounts.read { db in try await db.value(Int.self, "SELECT count(*) FROM conversation_messages") })
            }
            try await keepTheOldWay()

            // The next start moves it: the person finds it as it was, and accounts keeps none.
            @Sendable func graceSees() async throws -> [Lumen_Conversations_V1_GetConversationResponse] {
                try await value(run) { services in
                    let asGrace = services.acting(try await services.person(grace, organizationID: organizationID))
                    let listed = try await services.conversations.listConversations(.init(), metadata: asGrace).conversations
                    var opened: [Lumen_Conversations_V1_GetConversationResponse] = []
                    for conversation in listed {
                        opened.append(try await services.conversations.getConversation(.with { $0.conversationID = conversation.id }, metadata: asGrace))
                    }
                    return opened
                }
            }
            let moved = try await graceSees()
            #expect(moved.map(\.conversation.id) == ["cnv_old"])
            #expect(moved.first?.conversation.title == "Before the move" && moved.first?.conversation.messageCount == 2)
            #expect(moved.first?.conversation.updatedAt.millis == 2000)
            #expect(moved.first?.messages.map(\.content) == ["Hello", "Hi **there**"])
            #expect(moved.first?.messages.map(\.requestID) == ["req_old", "req_old"])
            #expect(try await leftInAccounts() == 0)

            // A hand-over cut short after the move and before accounts forgot: the next start
            // finishes it without a second copy.
            try await keepTheOldWay()
            let again = try await graceSees()
            #expect(again.map(\.conversation.id) == ["cnv_old"] && again.first?.messages.count == 2)
            #expect(try await leftInAccounts() == 0)
        }
    }
}

/// What `body` returned, run on services of `run`.
func value<T: Sendable>(_ run: TestServices.Runner, _ body: @escaping @Sendable (TestServices) async throws -> T) async throws -> T {
    let kept = Kept<T>()
    try await run { services in
        let result = try await body(services)
        kept.value.withLock { $0 = result }
    }
    return try #require(kept.value.withLock { $0 })
}

final class Kept<T: Sendable>: Sendable {
    let value = Mutex<T?>(nil)
}
