import Foundation
import GRPCCore
import LumenAPI
import LumenTesting
import RPCSupport
import Testing

/// The audit log's promise, walked over every RPC of every service: a call that changes
/// something writes exactly one entry, naming what it did and who did it. Every method of the
/// services is here — as a change (made below), a read, or left out of the log for a stated
/// reason — so that a new RPC fails this test until someone decides which it is.
@Suite("The audit log: every RPC that changes something writes exactly one entry")
struct AuditWalkTests {
    /// Methods that change nothing.
    static let reads: Set<String> = [
        "lumen.accounts.v1.AccountsService/GetOrganization", "lumen.accounts.v1.AccountsService/ListOrganizations",
        "lumen.accounts.v1.AccountsService/GetUser", "lumen.accounts.v1.AccountsService/ListUsers",
        "lumen.accounts.v1.AccountsService/ListGroups", "lumen.accounts.v1.AccountsService/GetClient",
        "lumen.accounts.v1.AccountsService/ListClients", "lumen.accounts.v1.AccountsService/WatchMemberships",
        "lumen.accounts.v1.AccountsService/GetSession", "lumen.accounts.v1.AccountsService/ListAuditLog",
        "lumen.accounts.v1.AccountsService/VerifyAuditLog", "lumen.accounts.v1.AccountsService/GetSingleSignOn",
        "lumen.accounts.v1.AccountsService/ListSingleSignOns",
        "lumen.keys.v1.KeysService/GetKey", "lumen.keys.v1.KeysService/ListKeys", "lumen.keys.v1.KeysService/Authenticate",
        "lumen.keys.v1.KeysService/WatchKeys", "lumen.keys.v1.KeysService/ListOperatorTokens",
        "lumen.keys.v1.KeysService/ListAuditLog", "lumen.keys.v1.KeysService/VerifyAuditLog",
        "lumen.ledger.v1.LedgerService/GetPool", "lumen.ledger.v1.LedgerService/ListGrants",
        "lumen.ledger.v1.LedgerService/GetOrganizationBalance", "lumen.ledger.v1.LedgerService/ListUsage",
        "lumen.ledger.v1.LedgerService/GetBilling", "lumen.ledger.v1.LedgerService/GetKeyTotals",
        "lumen.ledger.v1.LedgerService/GetOwnerUsage", "lumen.ledger.v1.LedgerService/GetUsageSeries",
        "lumen.ledger.v1.LedgerService/GetPoolAlerts", "lumen.ledger.v1.LedgerService/ListAlertEndpoints",
        "lumen.ledger.v1.LedgerService/ListAlertDeliveries", "lumen.ledger.v1.LedgerService/ListRequests",
        "lumen.ledger.v1.LedgerService/ListCaptures", "lumen.ledger.v1.LedgerService/GetRequestCapture",
        "lumen.ledger.v1.LedgerService/CheckInvariant",
        "lumen.ledger.v1.LedgerService/ListAuditLog", "lumen.ledger.v1.LedgerService/VerifyAuditLog",
        "lumen.registry.v1.ModelRegistryService/ListModels", "lumen.registry.v1.ModelRegistryService/GetModel",
        "lumen.registry.v1.ModelRegistryService/GetModelAccess", "lumen.registry.v1.ModelRegistryService/ListConsents",
        "lumen.registry.v1.ModelRegistryService/GetModelStatus", "lumen.registry.v1.ModelRegistryService/WatchRegistry",
        "lumen.registry.v1.ModelRegistryService/ListAuditLog", "lumen.registry.v1.ModelRegistryService/VerifyAuditLog",
        "lumen.conversations.v1.ConversationsService/ListConversations",
        "lumen.conversations.v1.ConversationsService/GetConversation",
    ]

    /// Methods that change something the audit log leaves to another record, and why.
    static let elsewhere: [String: String] = [
        "lumen.accounts.v1.AccountsService/PutSession": "the dashboard's session store; the sign-in is the entry",
        "lumen.accounts.v1.AccountsService/DeleteSession": "the dashboard's session store",
        "lumen.ledger.v1.LedgerService/Reserve": "metering: the usage lines are its record",
        "lumen.ledger.v1.LedgerService/Settle": "metering: the usage lines are its record",
        "lumen.ledger.v1.LedgerService/Release": "metering: the usage lines are its record",
        "lumen.ledger.v1.LedgerService/Meter": "metering: the usage lines are its record",
        "lumen.registry.v1.ModelRegistryService/ReportBackendHealth": "a backend's health, not its configuration",
        "lumen.conversations.v1.ConversationsService/CreateConversation": "a person's own web chat",
        "lumen.conversations.v1.ConversationsService/UpdateConversation": "a person's own web chat",
        "lumen.conversations.v1.ConversationsService/DeleteConversation": "a person's own web chat",
        "lumen.conversations.v1.ConversationsService/AppendMessages": "a person's own web chat",
    ]

    static var everyMethod: Set<String> {
        Set(
            (Lumen_Accounts_V1_AccountsService.Method.descriptors + Lumen_Keys_V1_KeysService.Method.descriptors
                + Lumen_Ledger_V1_LedgerService.Method.descriptors + Lumen_Registry_V1_ModelRegistryService.Method.descriptors
                + Lumen_Conversations_V1_ConversationsService.Method.descriptors).map(\.fullyQualifiedMethod))
    }

    @Test("Each change is one entry with its action and actor; every method is a change, a read or recorded elsewhere", arguments: TestStore.available)
    func walk(store: TestStore) async throws {
        try await TestServices.run(store: store) { services in
            let lumen = services.asInternal
            /// The newest entries of every service, newest first.
            @Sendable func newest() async throws -> [Lumen_Common_V1_AuditEntry] {
                let request = Lumen_Common_V1_ListAuditLogRequest.with {
                    $0.newestFirst = true
                    $0.limit = 1_000
                }
                return try await services.accounts.listAuditLog(request, metadata: lumen).entries
                    + services.keys.listAuditLog(request, metadata: lumen).entries
                    + services.ledger.listAuditLog(request, metadata: lumen).entries
                    + services.registry.listAuditLog(request, metadata: lumen).entries
            }
            let walk = Walk(newest: newest)
            func change<T>(
                _ method: MethodDescriptor, _ action: String, by actor: String, _ call: () async throws -> T
            ) async throws -> T {
                try await walk.change(method, action, by: actor, call)
            }
            typealias Accounts = Lumen_Accounts_V1_AccountsService.Method
            typealias Keys = Lumen_Keys_V1_KeysService.Method
            typealias Ledger = Lumen_Ledger_V1_LedgerService.Method
            typealias Registry = Lumen_Registry_V1_ModelRegistryService.Method

            let created = try await change(Accounts.BootstrapOrganization.descriptor, "organization.bootstrap", by: "internal") {
                try await services.accounts.bootstrapOrganization(
                    .with {
                        $0.organizationName = "Walk"
                        $0.adminEmail = "admin@walk.test"
                    }, metadata: lumen)
            }
            let organizationID = created.organization.id
            let adminID = created.admin.id
            let token = try await services.keys.createKey(
                .with {
                    $0.organizationID = organizationID
                    $0.kind = .management
                    $0.owner = .with {
                        $0.type = .user
                        $0.id = adminID
                    }
                    $0.name = "walk"
                }, metadata: lumen)
            let admin = Metadata.bearer(token.secret)

            let userID = try await change(Accounts.CreateUser.descriptor, "user.create", by: "management_token") {
                try await services.accounts.createUser(.with { $0.email = "ann@walk.test" }, metadata: admin).user.id
            }
            let groupID = try await change(Accounts.CreateGroup.descriptor, "group.create", by: "management_token") {
                try await services.accounts.createGroup(.with { $0.name = "Research" }, metadata: admin).group.id
            }
            try await change(Accounts.UpdateUser.descriptor, "user.update", by: "management_token") {
                _ = try await services.accounts.updateUser(
                    .with {
                        $0.userID = userID
                        $0.groups = .with { $0.ids = [groupID] }
                    }, metadata: admin)
            }
            let clientID = try await change(Accounts.CreateClient.descriptor, "client.create", by: "management_token") {
                try await services.accounts.createClient(.with { $0.name = "billing-bot" }, metadata: admin).client.id
            }
            try await change(Accounts.UpdateClient.descriptor, "client.update", by: "management_token") {
                _ = try await services.accounts.updateClient(
                    .with {
                        $0.clientID = clientID
                        $0.description_p = "pays the bills"
                    }, metadata: admin)
            }
            try await change(Accounts.AddClientManager.descriptor, "client.add_manager", by: "management_token") {
                _ = try await services.accounts.addClientManager(
                    .with {
                        $0.clientID = clientID
                        $0.userID = userID
                    }, metadata: admin)
            }
            try await change(Accounts.RemoveClientManager.descriptor, "client.remove_manager", by: "management_token") {
                _ = try await services.accounts.removeClientManager(
                    .with {
                        $0.clientID = clientID
                        $0.userID = userID
                    }, metadata: admin)
            }
            try await change(Accounts.SetPassword.descriptor, "user.set_password", by: "management_token") {
                _ = try await services.accounts.setPassword(
                    .with {
                        $0.userID = userID
                        $0.password = "correct horse battery"
                    }, metadata: admin)
            }
            let invitation = try await change(Accounts.CreateInvite.descriptor, "invite.create", by: "management_token") {
                try await services.accounts.createInvite(.with { $0.userID = userID }, metadata: admin).token
            }
            try await change(Accounts.AcceptInvite.descriptor, "invite.accept", by: "person") {
                _ = try await services.accounts.acceptInvite(
                    .with {
                        $0.token = invitation
                        $0.password = "another horse battery"
                    }, metadata: lumen)
            }
            try await change(Accounts.SignIn.descriptor, "session.sign_in", by: "person") {
                _ = try await services.accounts.signIn(
                    .with {
                        $0.email = "ann@walk.test"
                        $0.password = "another horse battery"
                    }, metadata: lumen)
            }
            try await change(Accounts.SetSingleSignOn.descriptor, "sso.set", by: "management_token") {
                _ = try await services.accounts.setSingleSignOn(
                    .with {
                        $0.sso = .with {
                            $0.issuer = "https://idp.walk.test"
                            $0.clientID = "lumen"
                            $0.passwordsAllowed = true
                        }
                    }, metadata: admin)
            }
            try await change(Accounts.SignInWithSingleSignOn.descriptor, "session.sign_in", by: "person") {
                _ = try await services.accounts.signInWithSingleSignOn(
                    .with {
                        $0.organizationID = organizationID
                        $0.claimsJson = #"{"sub":"ann","email":"ann@walk.test"}"#
                    }, metadata: lumen)
            }
            // A failed sign-in is one entry too, by nobody known.
            let before = Set(try await newest().map(\.hash))
            #expect(await refusal {
                _ = try await services.accounts.signIn(
                    .with {
                        $0.email = "ann@walk.test"
                        $0.password = "wrong horse battery"
                    }, metadata: lumen)
            } == "unauthenticated invalid_credentials")
            let failed = try await newest().filter { !before.contains($0.hash) }
            #expect(failed.map(\.action) == ["session.sign_in_failed"] && failed.first?.actorType == "anonymous")
            #expect(failed.first?.targetID == userID && failed.first?.organizationID == organizationID)

            let keyID = try await change(Keys.CreateKey.descriptor, "key.create", by: "management_token") {
                try await services.keys.createKey(.with { $0.name = "ci" }, metadata: admin).key.id
            }
            try await change(Keys.UpdateKey.descriptor, "key.update", by: "management_token") {
                _ = try await services.keys.updateKey(
                    .with {
                        $0.keyID = keyID
                        $0.name = "ci-2"
                    }, metadata: admin)
            }
            try await change(Keys.RevokeKey.descriptor, "key.revoke", by: "management_token") {
                _ = try await services.keys.revokeKey(.with { $0.keyID = keyID }, metadata: admin)
            }
            let operatorTokenID = try await change(Keys.CreateOperatorToken.descriptor, "operator_token.create", by: "internal") {
                try await services.keys.createOperatorToken(.with { $0.name = "platform" }, metadata: lumen).key.id
            }
            try await change(Keys.RevokeOperatorToken.descriptor, "operator_token.revoke", by: "internal") {
                _ = try await services.keys.revokeOperatorToken(.with { $0.keyID = operatorTokenID }, metadata: lumen)
            }

            let ann = Lumen_Common_V1_PrincipalRef.with {
                $0.type = .user
                $0.id = userID
            }
            try await change(Ledger.ConfigurePool.descriptor, "pool.configure", by: "management_token") {
                _ = try await services.ledger.configurePool(
                    .with {
                        $0.owner = ann
                        $0.mode = .balance
                        $0.limitMicros = 5_000_000
                    }, metadata: admin)
            }
            try await change(Ledger.Grant.descriptor, "pool.grant", by: "management_token") {
                _ = try await services.ledger.grant(
                    .with {
                        $0.owner = ann
                        $0.amountMicros = 2_000_000
                        $0.reason = "pilot"
                    }, metadata: admin)
            }
            try await change(Ledger.SetPoolAlerts.descriptor, "pool.alerts", by: "management_token") {
                _ = try await services.ledger.setPoolAlerts(
                    .with {
                        $0.owner = ann
                        $0.thresholdsPercent = [50, 80]
                    }, metadata: admin)
            }
            let endpoint = try await change(Ledger.CreateAlertEndpoint.descriptor, "alert_endpoint.create", by: "management_token") {
                try await services.ledger.createAlertEndpoint(.with { $0.url = "https://hooks.example.com/lumen" }, metadata: admin).endpoint
            }
            try await change(Ledger.DeleteAlertEndpoint.descriptor, "alert_endpoint.delete", by: "management_token") {
                _ = try await services.ledger.deleteAlertEndpoint(.with { $0.endpointID = endpoint.id }, metadata: admin)
            }
            try await change(Ledger.SetCapture.descriptor, "capture.set", by: "management_token") {
                _ = try await services.ledger.setCapture(
                    .with { $0.rule = .with { $0.owner = .with { $0.type = .organization }; $0.enabled = true; $0.retentionDays = 7; $0.maxBytes = 4_096 } },
                    metadata: admin)
            }

            var model = TestServices.meteredModel
            model.name = "walk-model"
            model.scenes = [.chat]
            model.consentRequired = true
            try await change(Registry.UpsertModel.descriptor, "model.upsert", by: "internal") {
                _ = try await services.registry.upsertModel(.with { $0.model = model }, metadata: lumen)
            }
            let backend = Lumen_Registry_V1_Backend.with {
                $0.id = "a"
                $0.model = "walk-model"
                $0.provider = .mock
                $0.weight = 1
            }
            try await change(Registry.UpsertBackend.descriptor, "backend.upsert", by: "internal") {
                _ = try await services.registry.upsertBackend(.with { $0.backend = backend }, metadata: lumen)
            }
            try await change(Registry.RemoveBackend.descriptor, "backend.remove", by: "internal") {
                _ = try await services.registry.removeBackend(
                    .with {
                        $0.model = "walk-model"
                        $0.backendID = "a"
                    }, metadata: lumen)
            }
            try await change(Registry.GrantConsent.descriptor, "consent.grant", by: "management_token") {
                _ = try await services.registry.grantConsent(
                    .with {
                        $0.principal = ann
                        $0.model = "walk-model"
                    }, metadata: admin)
            }
            try await change(Registry.RevokeConsent.descriptor, "consent.revoke", by: "management_token") {
                _ = try await services.registry.revokeConsent(
                    .with {
                        $0.principal = ann
                        $0.model = "walk-model"
                    }, metadata: admin)
            }

            // Every method is accounted for, once.
            let classified = Self.reads.union(Self.elsewhere.keys).union(walk.walked.keys)
            #expect(Self.everyMethod.subtracting(classified).isEmpty, "unclassified: \(Self.everyMethod.subtracting(classified).sorted())")
            #expect(classified.subtracting(Self.everyMethod).isEmpty, "no such method: \(classified.subtracting(Self.everyMethod).sorted())")
            #expect(Self.reads.intersection(walk.walked.keys).isEmpty && Self.reads.intersection(Self.elsewhere.keys).isEmpty)

            // Each chain is intact.
            for verified in [
                try await services.accounts.verifyAuditLog(.init(), metadata: lumen),
                try await services.keys.verifyAuditLog(.init(), metadata: lumen),
                try await services.ledger.verifyAuditLog(.init(), metadata: lumen),
                try await services.registry.verifyAuditLog(.init(), metadata: lumen),
            ] {
                #expect(verified.intact && verified.entries > 0)
            }
        }
    }

    @Test("A change that changes nothing writes nothing; a lockout is one entry, the refused attempts after it none")
    func noChangeNoEntry() async throws {
        try await TestServices.run { services in
            let acme = try await services.tenant()
            let lumen = services.asInternal
            func count() async throws -> Int {
                try await services.accounts.listAuditLog(.with { $0.limit = 1_000 }, metadata: lumen).entries.count
                    + services.ledger.listAuditLog(.with { $0.limit = 1_000 }, metadata: lumen).entries.count
            }
            let user = try await services.accounts.createUser(.with { $0.email = "bo@acme.test" }, metadata: acme.metadata).user
            let start = try await count()
            _ = try await services.accounts.updateUser(
                .with {
                    $0.userID = user.id
                    $0.displayName = user.displayName
                }, metadata: acme.metadata)
            let pool = Lumen_Ledger_V1_ConfigurePoolRequest.with {
                $0.owner = .with {
                    $0.type = .user
                    $0.id = user.id
                }
                $0.mode = .unlimited
            }
            _ = try await services.ledger.configurePool(pool, metadata: acme.metadata)
            #expect(try await count() == start + 1, "only the first configuration changed the pool")
            _ = try await services.ledger.configurePool(pool, metadata: acme.metadata)
            #expect(try await count() == start + 1)

            // Ten failures from one address lock the pair out: the tenth is the lockout.
            for attempt in 1...12 {
                _ = await refusal {
                    _ = try await services.accounts.signIn(
                        .with {
                            $0.email = "bo@acme.test"
                            $0.password = "not the password \(attempt)"
                            $0.clientAddress = "203.0.113.9"
                        }, metadata: lumen)
                }
            }
            let events = try await services.accounts.listAuditLog(
                .with {
                    $0.action = "session."
                    $0.limit = 1_000
                }, metadata: lumen
            ).entries
            #expect(events.map(\.action) == Array(repeating: "session.sign_in_failed", count: 9) + ["session.locked_out"])
            #expect(events.allSatisfy { $0.clientAddress == "203.0.113.9" && $0.targetID == user.id })
            #expect(events.last?.afterJson.contains("this email from your address") == true)
        }
    }
}

/// The methods walked so far, and the check of each change.
private final class Walk: @unchecked Sendable {
    let newest: @Sendable () async throws -> [Lumen_Common_V1_AuditEntry]
    /// Method → the action its call recorded.
    var walked: [String: String] = [:]

    init(newest: @escaping @Sendable () async throws -> [Lumen_Common_V1_AuditEntry]) {
        self.newest = newest
    }

    /// Runs `call` (a call of `method`) and expects one new entry: `action` by `actor`.
    func change<T>(_ method: MethodDescriptor, _ action: String, by actor: String, _ call: () async throws -> T) async throws -> T {
        let before = Set(try await newest().map(\.hash))
        let result = try await call()
        let added = try await newest().filter { !before.contains($0.hash) }
        #expect(added.map(\.action) == [action], "\(method)")
        #expect(added.first?.actorType == actor, "\(method)")
        walked[method.fullyQualifiedMethod] = action
        return result
    }
}
