import Crypto
import Foundation
import GRPCCore
import LumenAPI
import LumenTesting
import RPCSupport
import Testing

/// Passwords, invitations, dashboard sessions, groups and the membership snapshot, on every
/// store: what the dashboard relies on.
@Suite("People: sign-in, invitations, sessions, groups")
struct PeopleTests {
    func signIn(_ services: TestServices, _ email: String, _ password: String) async throws -> Lumen_Accounts_V1_User {
        try await services.accounts.signIn(
            .with {
                $0.email = email
                $0.password = password
            }, metadata: services.asInternal
        ).user
    }

    @Test("A password signs in; a wrong one or an unknown email does not; an invitation sets one, once", arguments: TestStore.available)
    func passwordsAndInvitations(store: TestStore) async throws {
        try await TestServices.run(store: store) { services in
            let tenant = try await services.tenant()
            let grace = try await services.accounts.createUser(
                .with {
                    $0.email = "grace@acme.test"
                    $0.password = "correct horse"
                }, metadata: tenant.metadata
            ).user
            #expect(try await signIn(services, " Grace@Acme.test ", "correct horse").id == grace.id)
            #expect(await refusal { _ = try await signIn(services, "grace@acme.test", "wrong horse") } == "unauthenticated invalid_credentials")
            #expect(await refusal { _ = try await signIn(services, "nobody@acme.test", "correct horse") } == "unauthenticated invalid_credentials")

            let ada = try await services.accounts.createUser(.with { $0.email = "ada@acme.test" }, metadata: tenant.metadata).user
            #expect(await refusal { _ = try await signIn(services, "ada@acme.test", "") } == "unauthenticated invalid_credentials")
            let invite = try await services.accounts.createInvite(.with { $0.userID = ada.id }, metadata: tenant.metadata)
            #expect(invite.token.hasPrefix("inv-"))
            let accepted = try await services.accounts.acceptInvite(
                .with {
                    $0.token = invite.token
                    $0.password = "analytical engine"
                }, metadata: services.asInternal
            ).user
            #expect(accepted.id == ada.id)
            #expect(try await signIn(services, "ada@acme.test", "analytical engine").id == ada.id)
            // Used once: a second acceptance, or an unknown token, finds nothing.
            for token in [invite.token, "inv-unknown"] {
                let again = await refusal {
                    _ = try await services.accounts.acceptInvite(
                        .with {
                            $0.token = token
                            $0.password = "something else"
                        }, metadata: services.asInternal)
                }
                #expect(again == "notFound invite_not_found")
            }
            // A deactivated user signs in no more.
            _ = try await services.accounts.updateUser(
                .with {
                    $0.userID = grace.id
                    $0.active = false
                }, metadata: tenant.metadata)
            #expect(await refusal { _ = try await signIn(services, "grace@acme.test", "correct horse") } == "unauthenticated invalid_credentials")
        }
    }

    @Test("Sessions: created once, read until they expire, updated, ended; a deactivated user's are gone", arguments: TestStore.available)
    func sessions(store: TestStore) async throws {
        let clock = ManualClock()
        try await TestServices.run(clock: clock.wallClock, store: store) { services in
            let tenant = try await services.tenant()
            let id = Data(SHA256.hash(data: Data("session-1".utf8)))
            let expiry = clock.nowMillis + 3_600_000
            func put(_ data: String, createOnly: Bool = false, expiresAt: Int64? = nil) async throws {
                _ = try await services.accounts.putSession(
                    .with {
                        $0.idSha256 = id
                        $0.userID = tenant.adminUserID
                        $0.data = Data(data.utf8)
                        $0.createOnly = createOnly
                        if let expiresAt { $0.expiresAt = .init(millis: expiresAt) }
                    }, metadata: services.asInternal)
            }
            func get() async throws -> Lumen_Accounts_V1_GetSessionResponse {
                try await services.accounts.getSession(.with { $0.idSha256 = id }, metadata: services.asInternal)
            }
            #expect(await refusal { try await put("first") } == "invalidArgument invalid_expiry")
            try await put("first", createOnly: true, expiresAt: expiry)
            #expect(await refusal { try await put("again", createOnly: true, expiresAt: expiry) } == "alreadyExists session_exists")
            #expect(String(decoding: try await get().data, as: UTF8.self) == "first")
            try await put("second")  // keeps its expiry
            let read = try await get()
            #expect(String(decoding: read.data, as: UTF8.self) == "second")
            #expect(read.expiresAt.millis == expiry)
            #expect(await refusal { _ = try await services.accounts.getSession(.with { $0.idSha256 = Data([1, 2]) }, metadata: services.asInternal) }
                == "invalidArgument invalid_session_id")

            clock.advance(seconds: 3_601)
            #expect(await refusal { _ = try await get() } == "notFound session_not_found")
            try await put("third", expiresAt: clock.nowMillis + 60_000)
            _ = try await services.accounts.deleteSession(.with { $0.idSha256 = id }, metadata: services.asInternal)
            #expect(await refusal { _ = try await get() } == "notFound session_not_found")

            let user = try await services.accounts.createUser(.with { $0.email = "lin@acme.test" }, metadata: tenant.metadata).user
            _ = try await services.accounts.putSession(
                .with {
                    $0.idSha256 = id
                    $0.userID = user.id
                    $0.data = Data("lin".utf8)
                    $0.expiresAt = .init(millis: clock.nowMillis + 60_000)
                }, metadata: services.asInternal)
            _ = try await services.accounts.updateUser(
                .with {
                    $0.userID = user.id
                    $0.active = false
                }, metadata: tenant.metadata)
            #expect(await refusal { _ = try await get() } == "notFound session_not_found")
        }
    }

    @Test("Group and client names are unique regardless of case and listed in caseless order; users' groups are kept", arguments: TestStore.available)
    func groupsAndMemberships(store: TestStore) async throws {
        try await TestServices.run(store: store) { services in
            let tenant = try await services.tenant()
            var groups: [String: String] = [:]
            for name in ["gamma", "Beta", "alpha"] {
                groups[name] = try await services.accounts.createGroup(.with { $0.name = name }, metadata: tenant.metadata).group.id
            }
            #expect(await refusal { _ = try await services.accounts.createGroup(.with { $0.name = "BETA" }, metadata: tenant.metadata) }
                == "alreadyExists group_exists")
            let listed = try await services.accounts.listGroups(.init(), metadata: tenant.metadata).groups.map(\.name)
            #expect(listed == ["alpha", "Beta", "gamma"])

            for name in ["zeta", "Eta"] {
                _ = try await services.accounts.createClient(.with { $0.name = name }, metadata: tenant.metadata)
            }
            #expect(await refusal { _ = try await services.accounts.createClient(.with { $0.name = "ETA" }, metadata: tenant.metadata) }
                == "alreadyExists client_exists")
            #expect(try await services.accounts.listClients(.init(), metadata: tenant.metadata).clients.map(\.name) == ["Eta", "zeta"])

            let user = try await services.accounts.createUser(
                .with {
                    $0.email = "mo@acme.test"
                    $0.groupIds = [groups["gamma"]!, groups["alpha"]!, groups["gamma"]!]
                }, metadata: tenant.metadata
            ).user
            #expect(user.groupIds == [groups["alpha"]!, groups["gamma"]!].sorted())
            #expect(await refusal {
                _ = try await services.accounts.createUser(
                    .with {
                        $0.email = "no@acme.test"
                        $0.groupIds = ["grp_unknown"]
                    }, metadata: tenant.metadata)
            } == "notFound group_not_found")
            // Nothing of the refused user was written.
            #expect(await refusal {
                _ = try await services.accounts.getUser(.with { $0.email = "no@acme.test" }, metadata: tenant.metadata)
            } == "notFound user_not_found")

            let page = try await services.accounts.listUsers(.with { $0.search = "mo" }, metadata: tenant.metadata)
            #expect(page.users.map(\.groupIds) == [user.groupIds])
        }
    }
}
