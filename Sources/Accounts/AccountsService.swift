import Foundation
import GRPCCore
import Logging
import LumenAPI
import RPCSupport
import SharedRules
import Storage

/// The accounts service: organisations, users, groups, clients and their managers.
public struct AccountsService: Sendable {
    let store: AccountsStore
    /// The deployment's audit signing key: it signs the checkpoint of the entries pruned past
    /// retention (`pruneAudit`) and `VerifyAuditLog` checks a checkpoint with it. nil: never pruned.
    public var auditSigner: AuditSigner?
    let memberships = EventHub<Lumen_Accounts_V1_MembershipEvent>()
    /// Counts every committed creation or change of a user (`CredentialChangeSource`).
    public let credentialChanges = CredentialChanges()
    let clock: WallClock
    let logger: Logger
    let passwords: Passwords
    let throttle = SignInThrottle()
    let organizations = Organizations()

    /// Opens (and migrates) the accounts database at `location`. `passwordCost` is bcrypt's
    /// work factor for new passwords (12: about a quarter of a second a hash).
    public init(location: ServiceDatabase.Location, clock: WallClock = .system, passwordCost: UInt8 = 12, logger: Logger) throws {
        self.init(store: Store(store: try AccountsStore(location: location)), clock: clock, passwordCost: passwordCost, logger: logger)
    }

    /// The accounts service's tables, opened (and migrated) by `openStore`.
    public struct Store: Sendable {
        let store: AccountsStore
    }

    /// Opens the accounts tables: a SQLite file, or the `accounts` schema of a PostgreSQL database.
    public static func openStore(_ location: StoreLocation, logger: Logger) async throws -> Store {
        Store(store: try await AccountsStore(location, logger: logger))
    }

    /// The accounts service on tables opened with `openStore`.
    public init(store: Store, clock: WallClock = .system, passwordCost: UInt8 = 12, logger: Logger) {
        self.store = store.store
        self.clock = clock
        self.passwords = Passwords(cost: passwordCost)
        self.logger = logger
    }

    static let maxNameLength = 100

    static func name(_ raw: String, param: String) throws -> String {
        let name = raw.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !name.isEmpty, name.count <= maxNameLength else {
            throw AccountsError.invalidName(param, "\(param) must be 1–\(maxNameLength) characters")
        }
        if let problem = NameText.problem(name) { throw AccountsError.invalidName(param, "\(param) \(problem)") }
        return name
    }

    static func email(_ raw: String) throws -> String {
        let email = raw.trimmingCharacters(in: .whitespacesAndNewlines).lowercased()
        let parts = email.split(separator: "@", omittingEmptySubsequences: false)
        guard parts.count == 2, !parts[0].isEmpty, parts[1].contains("."), !parts[1].hasPrefix("."),
            !parts[1].hasSuffix("."), email.count <= 254, !email.contains(where: \.isWhitespace)
        else { throw AccountsError.invalidEmail(raw) }
        return email
    }

    static func displayName(_ raw: String, email: String) throws -> String {
        let trimmed = raw.trimmingCharacters(in: .whitespacesAndNewlines)
        if trimmed.isEmpty { return String(email.prefix(while: { $0 != "@" })) }
        return try name(trimmed, param: "display_name")
    }

    /// Turns a unique-constraint failure into the service's ALREADY_EXISTS error.
    static func unique<T>(_ conflict: @autoclosure () -> ServiceError, _ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch is SQLUniqueViolation {
            throw conflict()
        }
    }

    func userMessage(_ record: UserRecord, _ db: any SQLSession) async throws -> Lumen_Accounts_V1_User {
        userMessage(record, groups: try await store.groupIDs(userID: record.id, db))
    }

    func userMessage(_ record: UserRecord, groups: [String]) -> Lumen_Accounts_V1_User {
        .with {
            $0.id = record.id
            $0.organizationID = record.organizationID
            $0.email = record.email
            $0.displayName = record.displayName
            $0.isAdmin = record.isAdmin
            $0.active = record.active
            $0.groupIds = groups
            $0.createdAt = .init(millis: record.createdAt)
        }
    }

    func clientMessage(_ record: ClientRecord, _ db: any SQLSession) async throws -> Lumen_Accounts_V1_Client {
        clientMessage(record, managers: try await store.managerIDs(clientID: record.id, db))
    }

    func clientMessage(_ record: ClientRecord, managers: [String]) -> Lumen_Accounts_V1_Client {
        .with {
            $0.id = record.id
            $0.organizationID = record.organizationID
            $0.name = record.name
            $0.description_p = record.description
            $0.active = record.active
            $0.managerUserIds = managers
            $0.createdAt = .init(millis: record.createdAt)
        }
    }

    func fetchUser(id: String, organizationID: String, _ db: any SQLSession) async throws -> UserRecord {
        guard
            let row = try await db.row(
                "SELECT \(UserRecord.columns) FROM users WHERE id = ? AND organization_id = ?", .text(id), .text(organizationID))
        else { throw AccountsError.userNotFound(id) }
        return try UserRecord(row)
    }

    func fetchUser(email: String, organizationID: String, _ db: any SQLSession) async throws -> UserRecord {
        let email = email.trimmingCharacters(in: .whitespacesAndNewlines).lowercased()
        guard
            let row = try await db.row(
                "SELECT \(UserRecord.columns) FROM users WHERE email = ? AND organization_id = ?", .text(email), .text(organizationID))
        else { throw AccountsError.userNotFound(email) }
        return try UserRecord(row)
    }

    func fetchClient(id: String, organizationID: String, _ db: any SQLSession) async throws -> ClientRecord {
        guard
            let row = try await db.row(
                "SELECT \(ClientRecord.columns) FROM clients WHERE id = ? AND organization_id = ?", .text(id), .text(organizationID))
        else { throw AccountsError.clientNotFound(id) }
        return try ClientRecord(row)
    }
}

extension OrganizationRecord {
    var message: Lumen_Accounts_V1_Organization {
        .with {
            $0.id = id
            $0.name = name
            $0.createdAt = .init(millis: createdAt)
        }
    }
}

extension GroupRecord {
    var message: Lumen_Accounts_V1_Group {
        .with {
            $0.id = id
            $0.organizationID = organizationID
            $0.name = name
            $0.description_p = description
            $0.createdAt = .init(millis: createdAt)
        }
    }
}

extension AccountsService: Lumen_Accounts_V1_AccountsService.SimpleServiceProtocol {
    public func bootstrapOrganization(
        request: Lumen_Accounts_V1_BootstrapOrganizationRequest, context: ServerContext
    ) async throws -> Lumen_Accounts_V1_BootstrapOrganizationResponse {
        try Caller.requireInternal()
        let name = try Self.name(request.organizationName, param: "organization_name")
        let email = try Self.email(request.adminEmail)
        let displayName = try Self.displayName(request.adminDisplayName, email: email)
        let now = clock.nowMillis
        let organization = OrganizationRecord(id: Identifier.make("org"), name: name, createdAt: now)
        let admin = UserRecord(
            id: Identifier.make("usr"), organizationID: organization.id, email: email,
            displayName: displayName, isAdmin: true, active: true, createdAt: now)
        let response = try await store.write { db in
            try await Self.unique(AccountsError.organizationExists(name)) { try await organization.insert(db) }
            try await admin.insert(db)
            let user = try await userMessage(admin, db)
            try await audit(
                "organization.bootstrap", "organization", organization.id, organizationID: organization.id,
                after: ["name": organization.name, "admin_user_id": admin.id, "admin_email": admin.email], in: db)
            return Lumen_Accounts_V1_BootstrapOrganizationResponse.with {
                $0.organization = organization.message
                $0.admin = user
            }
        }
        logger.info("organisation bootstrapped", metadata: ["organization_id": "\(organization.id)"])
        return response
    }

    public func getOrganization(
        request: Lumen_Accounts_V1_GetOrganizationRequest, context: ServerContext
    ) async throws -> Lumen_Accounts_V1_GetOrganizationResponse {
        let organizationID = try Caller.organization(request.organizationID)
        if let organization = organizations[organizationID] {
            return .with { $0.organization = organization }
        }
        guard
            let record = try await store.read({ db in
                try await db.row("SELECT \(OrganizationRecord.columns) FROM organizations WHERE id = ?", .text(organizationID))
                    .map(OrganizationRecord.init)
            })
        else {
            throw AccountsError.organizationNotFound(organizationID)
        }
        organizations.keep(record.message)
        return .with { $0.organization = record.message }
    }

    public func listOrganizations(
        request: Lumen_Accounts_V1_ListOrganizationsRequest, context: ServerContext
    ) async throws -> Lumen_Accounts_V1_ListOrganizationsResponse {
        try Caller.requireOperator("the list of organisations is the deployment's")
        let records = try await store.read { db in
            try await db.rows("SELECT \(OrganizationRecord.columns) FROM organizations ORDER BY created_at, id").map(OrganizationRecord.init)
        }
        return .with { $0.organizations = records.map(\.message) }
    }

    public func createUser(
        request: Lumen_Accounts_V1_CreateUserRequest, context: ServerContext
    ) async throws -> Lumen_Accounts_V1_CreateUserResponse {
        let organizationID = try Caller.organization(request.organizationID)
        try Caller.requireAdmin(to: "create users")
        let email = try Self.email(request.email)
        let passwordHash = request.password.isEmpty ? nil : await passwords.hash(try PasswordRules.check(request.password))
        let record = UserRecord(
            id: Identifier.make("usr"), organizationID: organizationID, email: email,
            displayName: try Self.displayName(request.displayName, email: email),
            isAdmin: request.isAdmin, active: true, createdAt: clock.nowMillis)
        let user = try await store.write { db in
            guard try await store.organizationExists(organizationID, db) else {
                throw AccountsError.organizationNotFound(organizationID)
            }
            try await Self.unique(AccountsError.userExists(email)) { try await record.insert(db) }
            if let passwordHash {
                try await db.execute("UPDATE users SET password_hash = ? WHERE id = ?", .text(passwordHash), .text(record.id))
            }
            try await store.setGroups(userID: record.id, organizationID: organizationID, groupIDs: request.groupIds, db)
            let user = try await userMessage(record, db)
            try await audit("user.create", "user", record.id, organizationID: organizationID, after: AuditedUser(user), in: db)
            publishMembership(user, afterCommit: db)
            return user
        }
        return .with { $0.user = user }
    }

    public func getUser(
        request: Lumen_Accounts_V1_GetUserRequest, context: ServerContext
    ) async throws -> Lumen_Accounts_V1_GetUserResponse {
        let organizationID = try Caller.organization(request.organizationID)
        let (user, managed) = try await store.read { db in
            let record: UserRecord
            switch request.lookup {
            case .userID(let id):
                record = try await fetchUser(id: id, organizationID: organizationID, db)
            case .email(let email):
                record = try await fetchUser(email: email, organizationID: organizationID, db)
            case nil:
                throw ServiceError.invalid("invalid_lookup", "give user_id or email", param: "user_id")
            }
            return (try await userMessage(record, db), try await store.managedClientIDs(userID: record.id, db))
        }
        // A person sees themselves; administrators and managers (who pick managers) see anyone.
        if let person = Caller.current?.person, !person.isAdmin, person.managedClientIDs.isEmpty, person.userID != user.id {
            throw ServiceError(.permissionDenied, "not_permitted", "you may look up only yourself")
        }
        return .with {
            $0.user = user
            $0.managedClientIds = managed
        }
    }

    public func listUsers(
        request: Lumen_Accounts_V1_ListUsersRequest, context: ServerContext
    ) async throws -> Lumen_Accounts_V1_ListUsersResponse {
        let organizationID = try Caller.organization(request.organizationID)
        if let person = Caller.current?.person, !person.isAdmin, person.managedClientIDs.isEmpty {
            throw ServiceError(.permissionDenied, "not_permitted", "only administrators and client managers may search users")
        }
        let page = try Page(request.page, defaultLimit: 50, maxLimit: 100)
        let (users, total) = try await store.read { db in
            var filter = "organization_id = ?"
            var arguments: [SQLValue] = [.text(organizationID)]
            if !request.search.isEmpty {
                // A prefix of the email, of the name or of a word of the name; by comparison,
                // not LIKE, so `%` and `_` in what people type are plain characters.
                let prefix = request.search.lowercased()
                filter += " AND (substr(lower(email), 1, length(?)) = ? OR \(db.dialect.contains("' ' || lower(display_name)", "' ' || ?")))"
                arguments += [.text(prefix), .text(prefix), .text(prefix)]
            }
            let total = try await db.rows("SELECT count(*) FROM users WHERE \(filter)", arguments)[0][0] as Int
            let records = try await db.rows(
                "SELECT \(UserRecord.columns) FROM users WHERE \(filter) ORDER BY email, id LIMIT ? OFFSET ?",
                arguments + [.of(page.limit), .of(page.offset)]
            ).map(UserRecord.init)
            let groups = try await store.groupIDs(userIDs: records.map(\.id), db)
            return (records.map { userMessage($0, groups: groups[$0.id] ?? []) }, total)
        }
        return .with {
            $0.users = users
            $0.pageInfo = page.info(total: total)
        }
    }

    public func updateUser(
        request: Lumen_Accounts_V1_UpdateUserRequest, context: ServerContext
    ) async throws -> Lumen_Accounts_V1_UpdateUserResponse {
        let organizationID = try Self.organization(changing: request)
        let displayName = request.hasDisplayName ? try Self.name(request.displayName, param: "display_name") : nil
        let user = try await store.write { db in
            var record =
                request.userID.isEmpty && !request.email.isEmpty
                ? try await fetchUser(email: request.email, organizationID: organizationID, db)
                : try await fetchUser(id: request.userID, organizationID: organizationID, db)
            let before = AuditedUser(try await userMessage(record, db))
            let wasActiveAdmin = record.isAdmin && record.active
            if let displayName { record.displayName = displayName }
            if request.hasIsAdmin { record.isAdmin = request.isAdmin }
            if request.hasActive { record.active = request.active }
            if wasActiveAdmin && !(record.isAdmin && record.active) {
                try await requireAnotherAdmin(besides: record, deactivating: !record.active, db)
            }
            try await record.update(db)
            // A deactivated user is signed out everywhere at once.
            if !record.active { try await db.execute("DELETE FROM sessions WHERE user_id = ?", .text(record.id)) }
            if request.hasGroups {
                try await store.setGroups(userID: record.id, organizationID: organizationID, groupIDs: request.groups.ids, db)
            }
            let user = try await userMessage(record, db)
            if AuditedUser(user) != before {
                try await audit(
                    "user.update", "user", record.id, organizationID: organizationID, before: before, after: AuditedUser(user), in: db)
            }
            publishMembership(user, afterCommit: db)
            return user
        }
        return .with { $0.user = user }
    }

    /// The organisation whose user `request` changes, once the caller may: its administrators
    /// change anything; the deployment's operator only restores — names the organisation and
    /// reactivates a user or makes them an administrator — the way back for an organisation
    /// nobody can administer any more.
    static func organization(changing request: Lumen_Accounts_V1_UpdateUserRequest) throws -> String {
        guard case .operator = try Caller.require() else {
            let organizationID = try Caller.organization(request.organizationID)
            try Caller.requireAdmin(to: "change users")
            return organizationID
        }
        let restores =
            (request.hasActive || request.hasIsAdmin) && (!request.hasActive || request.active)
            && (!request.hasIsAdmin || request.isAdmin) && !request.hasDisplayName && !request.hasGroups
        guard restores else {
            throw ServiceError(
                .permissionDenied, "operator_restores_only",
                "an operator token may only reactivate a user or make them an administrator; the organisation's administrators change the rest")
        }
        guard !request.organizationID.isEmpty else {
            throw ServiceError.invalid(
                "organization_required", "an operator token acts for no organisation: name it (organization_id)", param: "organization_id")
        }
        return request.organizationID
    }

    /// An organisation always keeps an active administrator, and nobody deactivates themselves:
    /// FAILED_PRECONDITION `cannot_deactivate_self` / `last_admin` (409 over REST). The other
    /// administrators' rows are locked until the transaction ends, so two administrators
    /// demoting each other at once cannot leave none.
    func requireAnotherAdmin(besides record: UserRecord, deactivating: Bool, _ db: any SQLSession) async throws {
        if deactivating, case .person(let person)? = Caller.current, person.userID == record.id {
            throw ServiceError(
                .failedPrecondition, "cannot_deactivate_self",
                "you cannot deactivate yourself; another administrator can", param: "active")
        }
        let others = try await db.rows(
            """
            SELECT id FROM users WHERE organization_id = ? AND is_admin = TRUE AND active = TRUE AND id != ?\(db.dialect.forUpdate)
            """, [.text(record.organizationID), .text(record.id)])
        guard !others.isEmpty else {
            throw ServiceError(
                .failedPrecondition, "last_admin",
                "\(record.email) is the organisation's last active administrator: make someone else an administrator first",
                param: deactivating ? "active" : "is_admin")
        }
    }

    /// Tells the membership watchers (the gateways) a user's groups once the transaction of `db`
    /// commits, before the next write begins, so events go out in commit order and a watcher
    /// never applies an older membership after a newer one.
    func publishMembership(_ user: Lumen_Accounts_V1_User, afterCommit db: any SQLSession) {
        let event = Lumen_Accounts_V1_MembershipEvent.with {
            $0.type = .upsert
            $0.organizationID = user.organizationID
            $0.userID = user.id
            $0.groupIds = user.groupIds
            $0.inactive = !user.active
        }
        db.afterCommit { [credentialChanges] in
            credentialChanges.record()
            memberships.publish(event)
        }
    }

    /// Tells the watchers whether a client is active, once the transaction of `db` commits.
    func publishMembership(_ client: Lumen_Accounts_V1_Client, afterCommit db: any SQLSession) {
        let event = Lumen_Accounts_V1_MembershipEvent.with {
            $0.type = .upsert
            $0.organizationID = client.organizationID
            $0.clientID = client.id
            $0.inactive = !client.active
        }
        db.afterCommit { memberships.publish(event) }
    }

    public func watchMemberships(
        request: Lumen_Accounts_V1_WatchMembershipsRequest,
        response: RPCWriter<Lumen_Accounts_V1_MembershipEvent>,
        context: ServerContext
    ) async throws {
        try Caller.requireInternal()
        try await memberships.serve(
            to: response, snapshot: { try await store.read { try await store.memberships($0) } },
            synced: .with { $0.type = .synced })
    }

    public func createGroup(
        request: Lumen_Accounts_V1_CreateGroupRequest, context: ServerContext
    ) async throws -> Lumen_Accounts_V1_CreateGroupResponse {
        let organizationID = try Caller.organization(request.organizationID)
        try Caller.requireAdmin(to: "create groups")
        let name = try Self.name(request.name, param: "name")
        let record = GroupRecord(
            id: Identifier.make("grp"), organizationID: organizationID, name: name,
            description: request.description_p, createdAt: clock.nowMillis)
        try await store.write { db in
            guard try await store.organizationExists(organizationID, db) else {
                throw AccountsError.organizationNotFound(organizationID)
            }
            try await Self.unique(AccountsError.groupExists(name)) { try await record.insert(db) }
            try await audit(
                "group.create", "group", record.id, organizationID: organizationID,
                after: AuditedName(name: record.name, description: record.description), in: db)
        }
        return .with { $0.group = record.message }
    }

    public func listGroups(
        request: Lumen_Accounts_V1_ListGroupsRequest, context: ServerContext
    ) async throws -> Lumen_Accounts_V1_ListGroupsResponse {
        let organizationID = try Caller.organization(request.organizationID)
        let records = try await store.read { db in
            try await db.rows(
                "SELECT \(GroupRecord.columns) FROM groups WHERE organization_id = ? ORDER BY lower(name), id", .text(organizationID)
            ).map(GroupRecord.init)
        }
        return .with { $0.groups = records.map(\.message) }
    }

    public func createClient(
        request: Lumen_Accounts_V1_CreateClientRequest, context: ServerContext
    ) async throws -> Lumen_Accounts_V1_CreateClientResponse {
        let organizationID = try Caller.organization(request.organizationID)
        try Caller.requireAdmin(to: "create clients")
        let name = try Self.name(request.name, param: "name")
        let record = ClientRecord(
            id: Identifier.make("cli"), organizationID: organizationID, name: name,
            description: request.description_p, active: true, createdAt: clock.nowMillis)
        let client = try await store.write { db in
            guard try await store.organizationExists(organizationID, db) else {
                throw AccountsError.organizationNotFound(organizationID)
            }
            try await Self.unique(AccountsError.clientExists(name)) { try await record.insert(db) }
            for userID in Set(request.managerUserIds).sorted() {
                _ = try await fetchUser(id: userID, organizationID: organizationID, db)
                try await db.execute("INSERT INTO client_managers (client_id, user_id) VALUES (?, ?)", .text(record.id), .text(userID))
            }
            let client = try await clientMessage(record, db)
            try await audit("client.create", "client", record.id, organizationID: organizationID, after: AuditedClient(client), in: db)
            publishMembership(client, afterCommit: db)
            return client
        }
        return .with { $0.client = client }
    }

    public func getClient(
        request: Lumen_Accounts_V1_GetClientRequest, context: ServerContext
    ) async throws -> Lumen_Accounts_V1_GetClientResponse {
        let organizationID = try Caller.organization(request.organizationID)
        let client = try await store.read { db in
            try await clientMessage(try await fetchClient(id: request.clientID, organizationID: organizationID, db), db)
        }
        try Caller.requireActing(for: .client(client.id), to: "see a client")
        return .with { $0.client = client }
    }

    public func listClients(
        request: Lumen_Accounts_V1_ListClientsRequest, context: ServerContext
    ) async throws -> Lumen_Accounts_V1_ListClientsResponse {
        let organizationID = try Caller.organization(request.organizationID)
        // A member sees the clients they manage; administrators see any user's, or all.
        var managedBy = request.managedByUserID
        if let person = Caller.current?.person, !person.isAdmin {
            guard managedBy.isEmpty || managedBy == person.userID else {
                throw ServiceError(.permissionDenied, "not_permitted", "you may list only the clients you manage")
            }
            managedBy = person.userID
        }
        let clients = try await store.read { [managedBy] db in
            var filter = "organization_id = ?"
            var arguments: [SQLValue] = [.text(organizationID)]
            if !request.includeInactive { filter += " AND active = TRUE" }
            if !managedBy.isEmpty {
                filter += " AND id IN (SELECT client_id FROM client_managers WHERE user_id = ?)"
                arguments.append(.text(managedBy))
            }
            let records = try await db.rows(
                "SELECT \(ClientRecord.columns) FROM clients WHERE \(filter) ORDER BY lower(name), id", arguments
            ).map(ClientRecord.init)
            let managers = try await store.managerIDs(clientIDs: records.map(\.id), db)
            return records.map { clientMessage($0, managers: managers[$0.id] ?? []) }
        }
        return .with { $0.clients = clients }
    }

    public func updateClient(
        request: Lumen_Accounts_V1_UpdateClientRequest, context: ServerContext
    ) async throws -> Lumen_Accounts_V1_UpdateClientResponse {
        let organizationID = try Caller.organization(request.organizationID)
        let name = request.hasName ? try Self.name(request.name, param: "name") : nil
        let client = try await store.write { db in
            var record = try await fetchClient(id: request.clientID, organizationID: organizationID, db)
            // Managers rename and describe their client; activating it is an administrator's.
            if request.hasActive { try Caller.requireAdmin(to: "activate or deactivate clients") }
            try Caller.requireActing(for: .client(record.id), to: "change a client")
            let before = AuditedClient(try await clientMessage(record, db))
            if let name { record.name = name }
            if request.hasDescription_p { record.description = request.description_p }
            if request.hasActive { record.active = request.active }
            try await Self.unique(AccountsError.clientExists(record.name)) { try await record.update(db) }
            let client = try await clientMessage(record, db)
            if AuditedClient(client) != before {
                try await audit(
                    "client.update", "client", record.id, organizationID: organizationID, before: before, after: AuditedClient(client),
                    in: db)
            }
            if request.hasActive { publishMembership(client, afterCommit: db) }
            return client
        }
        return .with { $0.client = client }
    }

    public func addClientManager(
        request: Lumen_Accounts_V1_AddClientManagerRequest, context: ServerContext
    ) async throws -> Lumen_Accounts_V1_AddClientManagerResponse {
        let organizationID = try Caller.organization(request.organizationID)
        let client = try await store.write { db in
            let record = try await fetchClient(id: request.clientID, organizationID: organizationID, db)
            try Caller.requireAdmin(to: "add managers")
            _ = try await fetchUser(id: request.userID, organizationID: organizationID, db)
            let before = AuditedClient(try await clientMessage(record, db))
            try await db.execute(
                "INSERT INTO client_managers (client_id, user_id) VALUES (?, ?) ON CONFLICT DO NOTHING", .text(record.id),
                .text(request.userID))
            let client = try await clientMessage(record, db)
            if AuditedClient(client) != before {
                try await audit(
                    "client.add_manager", "client", record.id, organizationID: organizationID, before: before,
                    after: AuditedClient(client), in: db)
            }
            return client
        }
        return .with { $0.client = client }
    }

    public func removeClientManager(
        request: Lumen_Accounts_V1_RemoveClientManagerRequest, context: ServerContext
    ) async throws -> Lumen_Accounts_V1_RemoveClientManagerResponse {
        let organizationID = try Caller.organization(request.organizationID)
        let client = try await store.write { db in
            let record = try await fetchClient(id: request.clientID, organizationID: organizationID, db)
            try Caller.requireAdmin(to: "remove managers")
            let before = AuditedClient(try await clientMessage(record, db))
            try await db.execute("DELETE FROM client_managers WHERE client_id = ? AND user_id = ?", .text(record.id), .text(request.userID))
            let client = try await clientMessage(record, db)
            if AuditedClient(client) != before {
                try await audit(
                    "client.remove_manager", "client", record.id, organizationID: organizationID, before: before,
                    after: AuditedClient(client), in: db)
            }
            return client
        }
        return .with { $0.client = client }
    }
}

extension AccountsService: CredentialChangeSource {
    public func stillAdmits(_ key: Lumen_Keys_V1_Key) -> Bool? { nil }
}
