import Crypto
import Foundation
import GRPCCore
import LumenAPI
import LumenTesting
import RPCSupport
import Testing

@testable import Accounts

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

    @Test("Passwords refuse control characters, fewer than 10 characters and easy guesses, and say why; nothing is written", arguments: TestStore.available)
    func passwordRules(store: TestStore) async throws {
        try await TestServices.run(store: store) { services in
            let tenant = try await services.tenant()
            func create(_ email: String, _ password: String) async -> String? {
                await refusal {
                    _ = try await services.accounts.createUser(
                        .with {
                            $0.email = email
                            $0.password = password
                        }, metadata: tenant.metadata)
                }
            }
            for password in ["long enough\u{0}tail", "tab\tinside it", "line\nbreak here", "short one", "password"] {
                #expect(await create("x@acme.test", password) == "invalidArgument invalid_password", "\(password)")
            }
            for password in [
                "Password12", "password123!", "1234567890", "qwertyuiop", "abcdefghijk", "0987654321",
                "aaaaaaaaaaaa", "abababababab", "Sunshine2024", "  iloveyou  ", "administrator", "12345678901234",
            ] {
                #expect(await create("x@acme.test", password) == "invalidArgument weak_password", "\(password)")
            }
            // Nothing was written: the email is free.
            for (index, password) in ["correct horse battery", "Tr0ub4dor&3x!", "grüne Äpfel im Herbst"].enumerated() {
                #expect(await create("x\(index)@acme.test", password) == "ok", "\(password)")
            }
        }
    }

    @Test("An organisation keeps an active administrator: nobody deactivates themselves, the last one is neither demoted nor deactivated", arguments: TestStore.available)
    func lastAdministrator(store: TestStore) async throws {
        try await TestServices.run(store: store) { services in
            let tenant = try await services.tenant()
            let admin = try await services.person(tenant.adminUserID, organizationID: tenant.organizationID)
            func update(_ userID: String, as metadata: Metadata, _ change: (inout Lumen_Accounts_V1_UpdateUserRequest) -> Void) async -> String {
                await refusal {
                    var request = Lumen_Accounts_V1_UpdateUserRequest.with { $0.userID = userID }
                    change(&request)
                    _ = try await services.accounts.updateUser(request, metadata: metadata)
                }
            }
            #expect(await update(tenant.adminUserID, as: services.acting(admin)) { $0.active = false } == "failedPrecondition cannot_deactivate_self")
            #expect(await update(tenant.adminUserID, as: tenant.metadata) { $0.active = false } == "failedPrecondition last_admin")
            #expect(await update(tenant.adminUserID, as: tenant.metadata) { $0.isAdmin = false } == "failedPrecondition last_admin")
            // With a second administrator, either may step down — but not both.
            let grace = try await services.accounts.createUser(
                .with {
                    $0.email = "grace@acme.test"
                    $0.isAdmin = true
                }, metadata: tenant.metadata
            ).user
            #expect(await update(tenant.adminUserID, as: services.acting(admin)) { $0.isAdmin = false } == "ok")
            // (The tenant's token acted for the first administrator: it stopped with them. Lumen's own
            // processes are held to the rule too.)
            let lumen = services.asInternal
            #expect(await update(grace.id, as: lumen) { $0.organizationID = tenant.organizationID; $0.active = false } == "failedPrecondition last_admin")
            #expect(await update(grace.id, as: lumen) { $0.organizationID = tenant.organizationID; $0.displayName = "Grace H." } == "ok")
            let stillAdmin = try await services.accounts.getUser(
                .with {
                    $0.organizationID = tenant.organizationID
                    $0.userID = grace.id
                }, metadata: lumen
            ).user
            #expect(stillAdmin.isAdmin && stillAdmin.active)
        }
    }

    @Test("The way back: the deployment's operator reactivates a user or makes them an administrator, and nothing else", arguments: TestStore.available)
    func operatorRestores(store: TestStore) async throws {
        try await TestServices.run(store: store) { services in
            let tenant = try await services.tenant()
            let grace = try await services.accounts.createUser(.with { $0.email = "grace@acme.test" }, metadata: tenant.metadata).user
            _ = try await services.accounts.updateUser(
                .with {
                    $0.userID = grace.id
                    $0.active = false
                }, metadata: tenant.metadata)
            let op = try await services.keys.createOperatorToken(.with { $0.name = "ops" }, metadata: services.asInternal).secret
            let asOperator = Metadata.bearer(op)
            let organizationID = tenant.organizationID
            let update = { @Sendable (metadata: Metadata, change: @Sendable (inout Lumen_Accounts_V1_UpdateUserRequest) -> Void) async -> String in
                var request = Lumen_Accounts_V1_UpdateUserRequest.with { $0.organizationID = organizationID }
                change(&request)
                let sent = request
                return await refusal { _ = try await services.accounts.updateUser(sent, metadata: metadata) }
            }
            // Only restoring: never a deactivation, a demotion, a name or groups, and always a named organisation.
            #expect(await update(asOperator) { $0.userID = tenant.adminUserID; $0.active = false } == "permissionDenied operator_restores_only")
            #expect(await update(asOperator) { $0.userID = grace.id; $0.isAdmin = false } == "permissionDenied operator_restores_only")
            #expect(await update(asOperator) { $0.userID = grace.id; $0.displayName = "G" } == "permissionDenied operator_restores_only")
            #expect(await update(asOperator) { $0.userID = grace.id } == "permissionDenied operator_restores_only")
            #expect(await update(asOperator) { $0.organizationID = ""; $0.userID = grace.id; $0.active = true } == "invalidArgument organization_required")
            #expect(await update(asOperator) { $0.email = "nobody@acme.test"; $0.active = true } == "notFound user_not_found")
            // By email, case-insensitively: back in, and an administrator.
            #expect(await update(asOperator) { $0.email = "Grace@Acme.test"; $0.active = true; $0.isAdmin = true } == "ok")
            let restored = try await services.accounts.getUser(.with { $0.userID = grace.id }, metadata: tenant.metadata).user
            #expect(restored.active && restored.isAdmin)
            // The operator may list the organisations (to name one); an organisation's token may not.
            let organizations = try await services.accounts.listOrganizations(.init(), metadata: asOperator).organizations
            let listed = organizations.contains { $0.id == tenant.organizationID }
            #expect(listed)
            #expect(await refusal { _ = try await services.accounts.listOrganizations(.init(), metadata: tenant.metadata) } == "permissionDenied operator_only")
        }
    }

    @Test("Names refuse bidirectional controls and strings with nothing visible; ordinary scripts pass", arguments: TestStore.available)
    func nameText(store: TestStore) async throws {
        try await TestServices.run(store: store) { services in
            let tenant = try await services.tenant()
            for name in ["invoice\u{202E}fdp.exe", "\u{2066}admin\u{2069}", "\u{200B}\u{200B}", "\u{3164}", "\u{2800}\u{115F}", "a\u{0}b"] {
                #expect(await refusal { _ = try await services.accounts.createClient(.with { $0.name = name }, metadata: tenant.metadata) }
                    == "invalidArgument invalid_name", "\(name.unicodeScalars.map { String($0.value, radix: 16) })")
                #expect(await refusal { _ = try await services.accounts.createGroup(.with { $0.name = name }, metadata: tenant.metadata) }
                    == "invalidArgument invalid_name")
                #expect(await refusal {
                    _ = try await services.keys.createKey(.with { $0.name = name }, metadata: tenant.metadata)
                } == "invalidArgument invalid_name")
            }
            for name in ["Grüße aus Köln", "東京チーム", "שלום team", "🚀 launch", "نظام"] {
                #expect(await refusal { _ = try await services.accounts.createClient(.with { $0.name = name }, metadata: tenant.metadata) } == "ok", "\(name)")
            }
        }
    }

    @Test("Accepting an invitation ends the person's other sessions and voids their other invitations", arguments: TestStore.available)
    func invitationEndsSessions(store: TestStore) async throws {
        try await TestServices.run(store: store) { services in
            let tenant = try await services.tenant()
            let ada = try await services.accounts.createUser(
                .with {
                    $0.email = "ada@acme.test"
                    $0.password = "analytical engine"
                }, metadata: tenant.metadata
            ).user
            let session = Data(SHA256.hash(data: Data("a stolen session".utf8)))
            _ = try await services.accounts.putSession(
                .with {
                    $0.idSha256 = session
                    $0.userID = ada.id
                    $0.data = Data("ada".utf8)
                    $0.expiresAt = .init(millis: Int64(Date().timeIntervalSince1970 * 1000) + 3_600_000)
                }, metadata: services.asInternal)
            let first = try await services.accounts.createInvite(.with { $0.userID = ada.id }, metadata: tenant.metadata)
            let second = try await services.accounts.createInvite(.with { $0.userID = ada.id }, metadata: tenant.metadata)
            func accept(_ token: String, _ password: String) async throws {
                _ = try await services.accounts.acceptInvite(
                    .with {
                        $0.token = token
                        $0.password = password
                    }, metadata: services.asInternal)
            }
            try await accept(second.token, "difference engine")
            #expect(await refusal { _ = try await services.accounts.getSession(.with { $0.idSha256 = session }, metadata: services.asInternal) }
                == "notFound session_not_found")
            #expect(await refusal { try await accept(first.token, "a third password") } == "notFound invite_not_found")
            #expect(try await signIn(services, "ada@acme.test", "difference engine").id == ada.id)
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

/// The throttle's three counts, without bcrypt's time.
@Suite("Sign-in throttle: per email and address, per address, and a ceiling per email")
struct SignInThrottleTests {
    @Test("An attacker can lock neither a person out from everywhere cheaply nor spray one password across accounts")
    func throttle() {
        let throttle = SignInThrottle()
        var now: Int64 = 1_000_000
        for _ in 0..<10 { throttle.failed(email: "ada@acme.test", address: "203.0.113.1", now: now) }
        #expect(throttle.refusal(email: "ada@acme.test", address: "203.0.113.1", now: now)?.code == "too_many_sign_ins")
        // Elsewhere the person still signs in; a minute later the pair is free again.
        #expect(throttle.refusal(email: "ada@acme.test", address: "198.51.100.1", now: now) == nil)
        #expect(throttle.refusal(email: "ada@acme.test", address: "203.0.113.1", now: now + 60_000) == nil)

        // One address across 30 accounts: refused for any account, for 10 minutes.
        for index in 0..<30 { throttle.failed(email: "user\(index)@acme.test", address: "192.0.2.9", now: now) }
        let sprayed = throttle.refusal(email: "fresh@acme.test", address: "192.0.2.9", now: now + 1_000)
        #expect(sprayed?.code == "too_many_sign_ins" && sprayed?.retryAfter == 599)
        #expect(throttle.refusal(email: "fresh@acme.test", address: "192.0.2.9", now: now + 600_000) == nil)

        // The slower ceiling: 100 failures an hour for one email, from many addresses.
        now += 1_000_000
        for index in 0..<100 { throttle.failed(email: "grace@acme.test", address: "10.0.\(index / 5).\(index)", now: now + Int64(index)) }
        let ceiling = throttle.refusal(email: "grace@acme.test", address: "198.51.100.77", now: now + 100)
        #expect(ceiling?.code == "too_many_sign_ins" && ceiling?.message.contains("this email") == true)
        #expect(throttle.refusal(email: "grace@acme.test", address: "198.51.100.77", now: now + 3_600_001) == nil)
    }
}
