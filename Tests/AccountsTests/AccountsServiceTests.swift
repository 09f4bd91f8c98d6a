import GRPCCore
import LumenAPI
import LumenTesting
import Testing

@Suite("Accounts service over the in-process transport")
struct AccountsServiceTests {
    @Test("Bootstrap creates an organisation and its administrator, and refuses a second one of the same name", arguments: TestStore.available)
    func bootstrap(store: TestStore) async throws {
        try await TestServices.run(store: store) { services in
            let created = try await services.accounts.bootstrapOrganization(
                .with {
                    $0.organizationName = "  Acme Research "
                    $0.adminEmail = "Ada@Acme.Test"
                }, metadata: services.asInternal)
            #expect(created.organization.name == "Acme Research")
            #expect(created.organization.id.hasPrefix("org_"))
            #expect(created.admin.email == "ada@acme.test")
            #expect(created.admin.displayName == "ada")
            #expect(created.admin.isAdmin)
            #expect(created.admin.organizationID == created.organization.id)

            do {
                _ = try await services.accounts.bootstrapOrganization(
                    .with {
                        $0.organizationName = "acme research"
                        $0.adminEmail = "bob@acme.test"
                    }, metadata: services.asInternal)
                Issue.record("expected ALREADY_EXISTS")
            } catch let error as RPCError {
                #expect(error.code == .alreadyExists)
                #expect(reason(of: error) == "organization_exists")
            }
            let all = try await services.accounts.listOrganizations(.init(), metadata: services.asInternal)
            #expect(all.organizations.map(\.name) == ["Acme Research"])
        }
    }

    @Test("GetOrganization answers the caller's organisation, the same when read again, and never another's", arguments: TestStore.available)
    func getOrganization(store: TestStore) async throws {
        try await TestServices.run(store: store) { services in
            let acme = try await services.tenant("Acme")
            let globex = try await services.tenant("Globex")
            for _ in 1...2 {  // the second answer comes from what the service kept
                let organization = try await services.accounts.getOrganization(.init(), metadata: .bearer(acme.managementToken))
                    .organization
                #expect(organization.id == acme.organizationID && organization.name == "Acme")
                #expect(organization.createdAt.seconds > 0)
                let byID = try await services.accounts.getOrganization(
                    .with { $0.organizationID = globex.organizationID }, metadata: services.asInternal
                ).organization
                #expect(byID.id == globex.organizationID && byID.name == "Globex")
                // Globex has been read (and kept): Acme's token still cannot see it.
                do {
                    _ = try await services.accounts.getOrganization(
                        .with { $0.organizationID = globex.organizationID }, metadata: .bearer(acme.managementToken))
                    Issue.record("expected PERMISSION_DENIED")
                } catch let error as RPCError {
                    #expect(error.code == .permissionDenied)
                }
            }
            do {
                _ = try await services.accounts.getOrganization(
                    .with { $0.organizationID = "org_doesnotexist0000" }, metadata: services.asInternal)
                Issue.record("expected NOT_FOUND")
            } catch let error as RPCError {
                #expect(error.code == .notFound && reason(of: error) == "organization_not_found")
            }
        }
    }

    @Test("Bootstrap validates its input and is reserved for Lumen's own processes", arguments: TestStore.available)
    func bootstrapRules(store: TestStore) async throws {
        try await TestServices.run(store: store) { services in
            for (name, email, expected) in [("", "a@b.test", "invalid_name"), ("Acme", "not-an-email", "invalid_email")] {
                do {
                    _ = try await services.accounts.bootstrapOrganization(
                        .with {
                            $0.organizationName = name
                            $0.adminEmail = email
                        }, metadata: services.asInternal)
                    Issue.record("expected \(expected)")
                } catch let error as RPCError {
                    #expect(error.code == .invalidArgument)
                    #expect(reason(of: error) == expected)
                }
            }
            let tenant = try await services.tenant()
            do {
                _ = try await services.accounts.bootstrapOrganization(
                    .with {
                        $0.organizationName = "Other"
                        $0.adminEmail = "x@y.test"
                    }, metadata: tenant.metadata)
                Issue.record("expected PERMISSION_DENIED")
            } catch let error as RPCError {
                #expect(error.code == .permissionDenied)
            }
        }
    }

    @Test("Users: created in the caller's organisation, unique by email, found, searched, updated", arguments: TestStore.available)
    func users(store: TestStore) async throws {
        try await TestServices.run(store: store) { services in
            let tenant = try await services.tenant("Acme")
            let other = try await services.tenant("Globex")
            let group = try await services.accounts.createGroup(.with { $0.name = "research" }, metadata: tenant.metadata).group
            let user = try await services.accounts.createUser(
                .with {
                    $0.email = "grace@acme.test"
                    $0.displayName = "Grace"
                    $0.groupIds = [group.id]
                }, metadata: tenant.metadata
            ).user
            #expect(user.organizationID == tenant.organizationID)
            #expect(user.groupIds == [group.id])
            #expect(user.active && !user.isAdmin)

            do {
                _ = try await services.accounts.createUser(.with { $0.email = "GRACE@acme.test" }, metadata: tenant.metadata)
                Issue.record("expected user_exists")
            } catch let error as RPCError {
                #expect(reason(of: error) == "user_exists")
            }
            // The same email is free in another organisation.
            _ = try await services.accounts.createUser(.with { $0.email = "grace@acme.test" }, metadata: other.metadata)

            let byEmail = try await services.accounts.getUser(.with { $0.email = "Grace@Acme.test" }, metadata: tenant.metadata)
            #expect(byEmail.user.id == user.id)
            // A prefix of the email, the name or a word of the name; not any substring.
            _ = try await services.accounts.createUser(
                .with {
                    $0.email = "ada@acme.test"
                    $0.displayName = "Ada Lovelace-Gray"
                }, metadata: tenant.metadata)
            func search(_ text: String) async throws -> [String] {
                try await services.accounts.listUsers(.with { $0.search = text }, metadata: tenant.metadata).users.map(\.email)
            }
            #expect(try await search("GRA") == ["grace@acme.test"])
            #expect(try await search("race") == [])
            #expect(try await search("love") == ["ada@acme.test"])
            #expect(try await search("ada lov") == ["ada@acme.test"])
            #expect(try await search("acme") == [])
            #expect(try await search("%") == [])

            let updated = try await services.accounts.updateUser(
                .with {
                    $0.userID = user.id
                    $0.isAdmin = true
                    $0.groups = .init()
                }, metadata: tenant.metadata
            ).user
            #expect(updated.isAdmin && updated.groupIds.isEmpty && updated.displayName == "Grace")

            do {
                _ = try await services.accounts.getUser(.with { $0.userID = user.id }, metadata: other.metadata)
                Issue.record("expected user_not_found")
            } catch let error as RPCError {
                #expect(error.code == .notFound)
            }
        }
    }

    @Test("Clients have managers from their own organisation", arguments: TestStore.available)
    func clients(store: TestStore) async throws {
        try await TestServices.run(store: store) { services in
            let tenant = try await services.tenant()
            let client = try await services.accounts.createClient(
                .with {
                    $0.name = "ci-runner"
                    $0.managerUserIds = [tenant.adminUserID]
                }, metadata: tenant.metadata
            ).client
            #expect(client.managerUserIds == [tenant.adminUserID])
            let managed = try await services.accounts.listClients(
                .with { $0.managedByUserID = tenant.adminUserID }, metadata: tenant.metadata)
            #expect(managed.clients.map(\.id) == [client.id])
            let removed = try await services.accounts.removeClientManager(
                .with {
                    $0.clientID = client.id
                    $0.userID = tenant.adminUserID
                }, metadata: tenant.metadata
            ).client
            #expect(removed.managerUserIds.isEmpty)
            let inactive = try await services.accounts.updateClient(
                .with {
                    $0.clientID = client.id
                    $0.active = false
                }, metadata: tenant.metadata
            ).client
            #expect(!inactive.active)
            #expect(try await services.accounts.listClients(.init(), metadata: tenant.metadata).clients.isEmpty)
        }
    }
}
