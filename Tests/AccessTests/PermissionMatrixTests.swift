import GRPCCore
import LumenAPI
import LumenTesting
import RPCSupport
import Testing

/// Seed 000's table, decided by the services: every action on client C1 of organisation A by
/// an administrator, C1's manager, another client's manager, a plain member, an administrator
/// of organisation B and a caller with no credential, each cell the exact outcome.
@Suite("Who may do what, over the RPC API")
struct PermissionMatrixTests {
    enum Actor: String, CaseIterable, CustomStringConvertible {
        case admin, manager, otherManager, member, stranger, signedOut
        var description: String { rawValue }
    }

    enum Outcome: Equatable, CustomStringConvertible {
        case ok
        case denied(String)
        case notFound(String)
        case unauthenticated

        var description: String {
            switch self {
            case .ok: "ok"
            case .denied(let code): "PERMISSION_DENIED \(code)"
            case .notFound(let code): "NOT_FOUND \(code)"
            case .unauthenticated: "UNAUTHENTICATED"
            }
        }
    }

    /// Organisation A (an administrator, C1's manager, C2's manager, a member; clients C1 and
    /// C2, a key of C1, a model that needs consent) and organisation B's administrator.
    struct World: Sendable {
        var services: TestServices
        var organizationID: String
        var adminID: String
        var managerID: String
        var otherManagerID: String
        var memberID: String
        var client: String
        var otherClient: String
        var clientKey: String
        var metadata: [Actor: Metadata]
        var userIDs: [Actor: String]

        static func make(_ services: TestServices) async throws -> World {
            let acme = try await services.tenant("Acme")
            let lumen = services.asInternal
            func user(_ email: String) async throws -> String {
                let request = Lumen_Accounts_V1_CreateUserRequest.with {
                    $0.organizationID = acme.organizationID
                    $0.email = email
                }
                let response = try await services.accounts.createUser(request, metadata: lumen)
                return response.user.id
            }
            let manager = try await user("manager@acme.test")
            let otherManager = try await user("other@acme.test")
            let member = try await user("member@acme.test")
            func client(_ name: String, managedBy userID: String) async throws -> String {
                let request = Lumen_Accounts_V1_CreateClientRequest.with {
                    $0.organizationID = acme.organizationID
                    $0.name = name
                    $0.managerUserIds = [userID]
                }
                let response = try await services.accounts.createClient(request, metadata: lumen)
                return response.client.id
            }
            let c1 = try await client("C1", managedBy: manager)
            let c2 = try await client("C2", managedBy: otherManager)
            let key = try await services.keys.createKey(
                .with {
                    $0.organizationID = acme.organizationID
                    $0.owner = .client(c1)
                }, metadata: lumen
            ).key.id
            _ = try await services.registry.upsertModel(
                .with {
                    $0.model = .with {
                        $0.maxOutputTokens = 1024
                        $0.name = "careful"
                        $0.vendor = "lumen"
                        $0.scenes = [.chat]
                        $0.consentRequired = true
                        $0.enabled = true
                    }
                }, metadata: lumen)
            let globex = try await services.tenant("Globex")
            var metadata: [Actor: Metadata] = [.signedOut: Metadata()]
            // Whoever is not signed in names nobody; the services never see the name without a credential.
            var userIDs: [Actor: String] = [.signedOut: "usr_nobody"]
            for (actor, userID, organizationID) in [
                (Actor.admin, acme.adminUserID, acme.organizationID), (.manager, manager, acme.organizationID),
                (.otherManager, otherManager, acme.organizationID), (.member, member, acme.organizationID),
                (.stranger, globex.adminUserID, globex.organizationID),
            ] {
                metadata[actor] = services.acting(try await services.person(userID, organizationID: organizationID))
                userIDs[actor] = userID
            }
            return World(
                services: services, organizationID: acme.organizationID, adminID: acme.adminUserID, managerID: manager,
                otherManagerID: otherManager, memberID: member, client: c1, otherClient: c2, clientKey: key, metadata: metadata,
                userIDs: userIDs)
        }

        /// A fresh key of C1, made by Lumen itself, for an actor to revoke.
        func freshClientKey() async throws -> String {
            try await services.keys.createKey(
                .with {
                    $0.organizationID = organizationID
                    $0.owner = .client(client)
                }, metadata: services.asInternal
            ).key.id
        }
    }

    typealias Action = @Sendable (World, Metadata, String) async throws -> Void

    /// Every action, with what each actor (admin, manager, other manager, member, stranger) gets;
    /// a caller without a credential is always UNAUTHENTICATED.
    static let cells: [(String, [Outcome], Action)] = [
        (
            "see C1", [.ok, .ok, .denied("not_permitted"), .denied("not_permitted"), .notFound("client_not_found")],
            { world, metadata, me in _ = try await world.services.accounts.getClient(.with { $0.clientID = world.client }, metadata: metadata) }
        ),
        (
            "rename C1", [.ok, .ok, .denied("not_permitted"), .denied("not_permitted"), .notFound("client_not_found")],
            { world, metadata, me in
                _ = try await world.services.accounts.updateClient(
                    .with {
                        $0.clientID = world.client
                        $0.name = "C1"
                    }, metadata: metadata)
            }
        ),
        (
            "deactivate C1", [.ok, .denied("admin_required"), .denied("admin_required"), .denied("admin_required"), .notFound("client_not_found")],
            { world, metadata, me in
                _ = try await world.services.accounts.updateClient(
                    .with {
                        $0.clientID = world.client
                        $0.active = false
                    }, metadata: metadata)
                _ = try await world.services.accounts.updateClient(
                    .with {
                        $0.organizationID = world.organizationID
                        $0.clientID = world.client
                        $0.active = true
                    }, metadata: world.services.asInternal)
            }
        ),
        (
            "add a manager to C1", [.ok, .denied("admin_required"), .denied("admin_required"), .denied("admin_required"), .notFound("client_not_found")],
            { world, metadata, me in
                _ = try await world.services.accounts.addClientManager(
                    .with {
                        $0.clientID = world.client
                        $0.userID = world.memberID
                    }, metadata: metadata)
                _ = try await world.services.accounts.removeClientManager(
                    .with {
                        $0.organizationID = world.organizationID
                        $0.clientID = world.client
                        $0.userID = world.memberID
                    }, metadata: world.services.asInternal)
            }
        ),
        (
            "remove a manager of C1",
            [.ok, .denied("admin_required"), .denied("admin_required"), .denied("admin_required"), .notFound("client_not_found")],
            { world, metadata, me in
                _ = try await world.services.accounts.removeClientManager(
                    .with {
                        $0.clientID = world.client
                        $0.userID = world.memberID
                    }, metadata: metadata)
            }
        ),
        (
            "search users", [.ok, .ok, .ok, .denied("not_permitted"), .ok],
            { world, metadata, me in _ = try await world.services.accounts.listUsers(.with { $0.search = "a" }, metadata: metadata) }
        ),
        (
            "look up the administrator", [.ok, .ok, .ok, .denied("not_permitted"), .notFound("user_not_found")],
            { world, metadata, me in _ = try await world.services.accounts.getUser(.with { $0.userID = world.adminID }, metadata: metadata) }
        ),
        (
            "create a client", [.ok, .denied("admin_required"), .denied("admin_required"), .denied("admin_required"), .ok],
            { world, metadata, me in
                _ = try await world.services.accounts.createClient(
                    .with { $0.name = "new \(Int.random(in: 0..<1_000_000_000))" }, metadata: metadata)
            }
        ),
        (
            "create a key for C1", [.ok, .ok, .denied("not_permitted"), .denied("not_permitted"), .notFound("client_not_found")],
            { world, metadata, me in _ = try await world.services.keys.createKey(.with { $0.owner = .client(world.client) }, metadata: metadata) }
        ),
        (
            "revoke a key of C1", [.ok, .ok, .notFound("key_not_found"), .notFound("key_not_found"), .notFound("key_not_found")],
            { world, metadata, me in
                let key = try await world.freshClientKey()
                _ = try await world.services.keys.revokeKey(.with { $0.keyID = key }, metadata: metadata)
            }
        ),
        (
            "list C1's keys", [.ok, .ok, .denied("not_permitted"), .denied("not_permitted"), .notFound("client_not_found")],
            { world, metadata, me in _ = try await world.services.keys.listKeys(.with { $0.owner = .client(world.client) }, metadata: metadata) }
        ),
        (
            "create a personal management token",
            [.ok, .denied("admin_required"), .denied("admin_required"), .denied("admin_required"), .ok],
            { world, metadata, me in
                _ = try await world.services.keys.createKey(
                    .with {
                        $0.kind = .management
                        $0.owner = .user(me)
                    }, metadata: metadata)
            }
        ),
        (
            "consent to a model for C1", [.ok, .ok, .denied("not_permitted"), .denied("not_permitted"), .notFound("client_not_found")],
            { world, metadata, me in
                _ = try await world.services.registry.grantConsent(
                    .with {
                        $0.principal = .client(world.client)
                        $0.model = "careful"
                    }, metadata: metadata)
            }
        ),
        (
            "see C1's pool", [.ok, .ok, .denied("not_permitted"), .denied("not_permitted"), .notFound("client_not_found")],
            { world, metadata, me in _ = try await world.services.ledger.getPool(.with { $0.owner = .client(world.client) }, metadata: metadata) }
        ),
        (
            "see the usage of C1's key", [.ok, .ok, .notFound("key_not_found"), .notFound("key_not_found"), .notFound("key_not_found")],
            { world, metadata, me in
                _ = try await world.services.ledger.listUsage(.with { $0.filter.keyID = world.clientKey }, metadata: metadata)
            }
        ),
        (
            "see the totals of C1's keys", [.ok, .ok, .denied("not_permitted"), .denied("not_permitted"), .notFound("client_not_found")],
            { world, metadata, me in
                _ = try await world.services.ledger.getKeyTotals(
                    .with {
                        $0.owner = .client(world.client)
                        $0.keyIds = [world.clientKey]
                    }, metadata: metadata)
            }
        ),
        (
            "grant to C1", [.ok, .denied("admin_required"), .denied("admin_required"), .denied("admin_required"), .notFound("client_not_found")],
            { world, metadata, me in
                _ = try await world.services.ledger.grant(
                    .with {
                        $0.owner = .client(world.client)
                        $0.amountMicros = 1_000_000
                        $0.reason = "test"
                    }, metadata: metadata)
            }
        ),
        (
            "configure C1's pool",
            [.ok, .denied("admin_required"), .denied("admin_required"), .denied("admin_required"), .notFound("client_not_found")],
            { world, metadata, me in
                _ = try await world.services.ledger.configurePool(
                    .with {
                        $0.owner = .client(world.client)
                        $0.mode = .balance
                    }, metadata: metadata)
            }
        ),
    ]

    @Test("Each action × each caller: the exact status and code")
    func matrix() async throws {
        try await TestServices.run { services in
            let world = try await World.make(services)
            for (name, expected, action) in Self.cells {
                for (actor, outcome) in zip(Actor.allCases, expected + [.unauthenticated]) {
                    let got: Outcome
                    do {
                        try await action(world, try #require(world.metadata[actor]), try #require(world.userIDs[actor]))
                        got = .ok
                    } catch let error as RPCError {
                        switch error.code {
                        case .permissionDenied: got = .denied(reason(of: error))
                        case .notFound: got = .notFound(reason(of: error))
                        case .unauthenticated: got = .unauthenticated
                        default: got = .denied("\(error.code) \(reason(of: error)): \(error.message)")
                        }
                    }
                    #expect(got == outcome, "\(name) by \(actor)")
                }
            }
        }
    }

    @Test("A management token stops with its user: deactivated → 401, demoted → 403, restored → works")
    func managementTokenFollowsItsUser() async throws {
        try await TestServices.run { services in
            let acme = try await services.tenant("Acme")
            func listKeys() async -> String {
                do {
                    _ = try await services.keys.listKeys(.with { $0.organizationID = acme.organizationID }, metadata: acme.metadata)
                    return "ok"
                } catch let error as RPCError {
                    return "\(error.code) \(reason(of: error))"
                } catch {
                    return "\(error)"
                }
            }
            func update(_ change: (inout Lumen_Accounts_V1_UpdateUserRequest) -> Void) async throws {
                var request = Lumen_Accounts_V1_UpdateUserRequest.with {
                    $0.organizationID = acme.organizationID
                    $0.userID = acme.adminUserID
                }
                change(&request)
                _ = try await services.accounts.updateUser(request, metadata: services.asInternal)
            }
            // A second administrator, so that the first may be demoted and deactivated (an
            // organisation keeps one).
            _ = try await services.accounts.createUser(
                .with {
                    $0.email = "second@acme.test"
                    $0.isAdmin = true
                }, metadata: acme.metadata)
            #expect(await listKeys() == "ok")
            try await update { $0.isAdmin = false }
            #expect(await listKeys() == "\(RPCError.Code.permissionDenied) admin_required")
            try await update { $0.isAdmin = true }
            #expect(await listKeys() == "ok")
            try await update { $0.active = false }
            #expect(await listKeys() == "\(RPCError.Code.unauthenticated) token_owner_inactive")
            try await update { $0.active = true }
            #expect(await listKeys() == "ok")
        }
    }

    @Test("Key totals: a person names only their owner's keys — one of another client is refused, a key made since is known")
    func keyTotalsOnlyOfTheOwnersKeys() async throws {
        try await TestServices.run { services in
            let world = try await World.make(services)
            let manager = try #require(world.metadata[.manager])
            func totals(_ keyIDs: [String]) async -> String {
                do {
                    let response = try await world.services.ledger.getKeyTotals(
                        .with {
                            $0.owner = .client(world.client)
                            $0.keyIds = keyIDs
                        }, metadata: manager)
                    return response.totals.map(\.keyID) == keyIDs ? "ok" : "wrong keys"
                } catch let error as RPCError {
                    return "\(error.code) \(reason(of: error))"
                } catch {
                    return "\(error)"
                }
            }
            let theirs = try await world.services.keys.createKey(
                .with {
                    $0.organizationID = world.organizationID
                    $0.owner = .client(world.otherClient)
                }, metadata: world.services.asInternal
            ).key.id
            let denied = "\(RPCError.Code.permissionDenied) not_permitted"
            #expect(await totals([world.clientKey]) == "ok")
            #expect(await totals([world.clientKey, theirs]) == denied)
            let made = try await world.freshClientKey()
            #expect(await totals([world.clientKey, made]) == "ok")
            #expect(await totals([theirs]) == denied)
            #expect(await totals([made, "key_made_up"]) == denied)
        }
    }
}
