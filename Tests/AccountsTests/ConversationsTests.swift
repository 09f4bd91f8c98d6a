import GRPCCore
import LumenAPI
import LumenTesting
import RPCSupport
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

            let first = try await services.accounts.createConversation(.with { $0.model = "lumen-demo" }, metadata: asGrace).conversation
            #expect(first.userID == grace && first.title == "New conversation" && first.messageCount == 0)
            let second = try await services.accounts.createConversation(
                .with {
                    $0.model = "lumen-demo"
                    $0.title = "  Travel plans  "
                }, metadata: asGrace
            ).conversation
            #expect(second.title == "Travel plans")

            let appended = try await services.accounts.appendMessages(
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
            let opened = try await services.accounts.getConversation(.with { $0.conversationID = first.id }, metadata: asGrace)
            #expect(opened.messages.map(\.role) == ["user", "assistant"])
            #expect(opened.messages.map(\.content) == ["Hello **there**", "Hi!"])
            #expect(opened.messages[1].requestID == "req_1")

            // The most recently changed first; the total counts them.
            let listed = try await services.accounts.listConversations(.init(), metadata: asGrace)
            #expect(listed.conversations.map(\.id) == [first.id, second.id] && listed.pageInfo.total == 2)

            let renamed = try await services.accounts.updateConversation(
                .with {
                    $0.conversationID = second.id
                    $0.title = "Trip to Lisbon"
                }, metadata: asGrace
            ).conversation
            #expect(renamed.title == "Trip to Lisbon")

            // Private: not the administrator's, not a management token's; another person's id is not found.
            #expect(await refusal { _ = try await services.accounts.getConversation(.with { $0.conversationID = first.id }, metadata: asAdmin) }
                == "\(RPCError.Code.notFound) conversation_not_found")
            #expect(await refusal { _ = try await services.accounts.listConversations(.with { $0.userID = grace }, metadata: asAdmin) }
                == "\(RPCError.Code.permissionDenied) not_permitted")
            #expect(await refusal { _ = try await services.accounts.listConversations(.with { $0.userID = grace }, metadata: acme.metadata) }
                == "\(RPCError.Code.permissionDenied) person_required")
            #expect(await refusal {
                _ = try await services.accounts.appendMessages(
                    .with {
                        $0.conversationID = first.id
                        $0.messages = [.with { $0.role = "system"; $0.content = "x" }]
                    }, metadata: asGrace)
            } == "\(RPCError.Code.invalidArgument) invalid_role")

            _ = try await services.accounts.deleteConversation(.with { $0.conversationID = first.id }, metadata: asGrace)
            #expect(await refusal { _ = try await services.accounts.getConversation(.with { $0.conversationID = first.id }, metadata: asGrace) }
                == "\(RPCError.Code.notFound) conversation_not_found")
            #expect(try await services.accounts.listConversations(.init(), metadata: asGrace).pageInfo.total == 1)
        }
    }
}
