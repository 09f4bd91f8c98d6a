import Foundation
import Logging
import LumenAPI
import Storage
import Synchronization

/// The accounts service's tables, in one SQLite file or the `accounts` schema of a PostgreSQL
/// database, read and written through the same statements (`SQLStore`). Nothing outside this
/// module reads them.
///
/// - `organizations`, `users` (with `password_hash`, bcrypt, NULL until one is set), `groups`,
///   `user_groups`, `clients`, `client_managers`. Names of organisations, groups and clients
///   are unique without regard to ASCII case.
/// - `invites`: one-time invitations to set a password, by the SHA-256 of their secret.
/// - `sessions`: the dashboard's sessions, by the SHA-256 of their id, with the facade's opaque
///   data; deleted when they expire (at the next read or write) or their user is deactivated.
/// - `conversations`, `conversation_messages` (v3): where the web chats were kept before they
///   had a service of their own; emptied at start by the hand-over to `ConversationsService`
///   (`ConversationsHandOver.swift`), read and written by nothing else, to be dropped once no
///   deployment can still hold rows there.
struct AccountsStore: Sendable {
    let sql: any SQLStore

    init(location: ServiceDatabase.Location) throws {
        self.sql = try SQLiteStore(name: "accounts", at: location, migrations: Self.migrations)
    }

    /// Opens (and migrates) the tables at `location`: a SQLite file or the `accounts` schema of a
    /// PostgreSQL database.
    init(_ location: StoreLocation, logger: Logger) async throws {
        self.sql = try await location.open("accounts", migrations: Self.migrations, logger: logger)
    }

    func read<Result: Sendable>(_ body: @escaping @Sendable (any SQLSession) async throws -> Result) async throws -> Result {
        try await sql.read(body)
    }

    func write<Result: Sendable>(_ body: @escaping @Sendable (any SQLSession) async throws -> Result) async throws -> Result {
        try await sql.write(body)
    }

    /// The schema in both dialects: PostgreSQL's text `COLLATE "C"` (byte-wise, as SQLite
    /// compares), booleans, `BYTEA`; SQLite's `NOCASE` unique names as unique indexes on
    /// `lower(name)` there (ASCII case, as NOCASE folds it).
    static let migrations: [SQLMigration] = [
        SQLMigration(
            "v1: organisations, users, groups, clients",
            sqlite: [
                """
                CREATE TABLE organizations (
                    id TEXT PRIMARY KEY NOT NULL,
                    name TEXT NOT NULL UNIQUE COLLATE NOCASE,
                    created_at INTEGER NOT NULL
                );
                CREATE TABLE users (
                    id TEXT PRIMARY KEY NOT NULL,
                    organization_id TEXT NOT NULL REFERENCES organizations(id),
                    email TEXT NOT NULL,
                    display_name TEXT NOT NULL,
                    is_admin INTEGER NOT NULL DEFAULT 0,
                    active INTEGER NOT NULL DEFAULT 1,
                    created_at INTEGER NOT NULL,
                    UNIQUE (organization_id, email)
                );
                CREATE TABLE groups (
                    id TEXT PRIMARY KEY NOT NULL,
                    organization_id TEXT NOT NULL REFERENCES organizations(id),
                    name TEXT NOT NULL COLLATE NOCASE,
                    description TEXT NOT NULL DEFAULT '',
                    created_at INTEGER NOT NULL,
                    UNIQUE (organization_id, name)
                );
                CREATE TABLE user_groups (
                    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
                    group_id TEXT NOT NULL REFERENCES groups(id) ON DELETE CASCADE,
                    PRIMARY KEY (user_id, group_id)
                );
                CREATE TABLE clients (
                    id TEXT PRIMARY KEY NOT NULL,
                    organization_id TEXT NOT NULL REFERENCES organizations(id),
                    name TEXT NOT NULL COLLATE NOCASE,
                    description TEXT NOT NULL DEFAULT '',
                    active INTEGER NOT NULL DEFAULT 1,
                    created_at INTEGER NOT NULL,
                    UNIQUE (organization_id, name)
                );
                CREATE TABLE client_managers (
                    client_id TEXT NOT NULL REFERENCES clients(id) ON DELETE CASCADE,
                    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
                    PRIMARY KEY (client_id, user_id)
                );

                """
            ],
            postgres: [
                #"""
                CREATE TABLE organizations (
                    id TEXT COLLATE "C" PRIMARY KEY NOT NULL,
                    name TEXT COLLATE "C" NOT NULL,
                    created_at BIGINT NOT NULL
                )
                """#,
                "CREATE UNIQUE INDEX organizations_by_name ON organizations (lower(name))",
                #"""
                CREATE TABLE users (
                    id TEXT COLLATE "C" PRIMARY KEY NOT NULL,
                    organization_id TEXT COLLATE "C" NOT NULL REFERENCES organizations(id),
                    email TEXT COLLATE "C" NOT NULL,
                    display_name TEXT COLLATE "C" NOT NULL,
                    is_admin BOOLEAN NOT NULL DEFAULT FALSE,
                    active BOOLEAN NOT NULL DEFAULT TRUE,
                    created_at BIGINT NOT NULL,
                    UNIQUE (organization_id, email)
                )
                """#,
                #"""
                CREATE TABLE groups (
                    id TEXT COLLATE "C" PRIMARY KEY NOT NULL,
                    organization_id TEXT COLLATE "C" NOT NULL REFERENCES organizations(id),
                    name TEXT COLLATE "C" NOT NULL,
                    description TEXT COLLATE "C" NOT NULL DEFAULT '',
                    created_at BIGINT NOT NULL
                )
                """#,
                "CREATE UNIQUE INDEX groups_by_name ON groups (organization_id, lower(name))",
                #"""
                CREATE TABLE user_groups (
                    user_id TEXT COLLATE "C" NOT NULL REFERENCES users(id) ON DELETE CASCADE,
                    group_id TEXT COLLATE "C" NOT NULL REFERENCES groups(id) ON DELETE CASCADE,
                    PRIMARY KEY (user_id, group_id)
                )
                """#,
                #"""
                CREATE TABLE clients (
                    id TEXT COLLATE "C" PRIMARY KEY NOT NULL,
                    organization_id TEXT COLLATE "C" NOT NULL REFERENCES organizations(id),
                    name TEXT COLLATE "C" NOT NULL,
                    description TEXT COLLATE "C" NOT NULL DEFAULT '',
                    active BOOLEAN NOT NULL DEFAULT TRUE,
                    created_at BIGINT NOT NULL
                )
                """#,
                "CREATE UNIQUE INDEX clients_by_name ON clients (organization_id, lower(name))",
                #"""
                CREATE TABLE client_managers (
                    client_id TEXT COLLATE "C" NOT NULL REFERENCES clients(id) ON DELETE CASCADE,
                    user_id TEXT COLLATE "C" NOT NULL REFERENCES users(id) ON DELETE CASCADE,
                    PRIMARY KEY (client_id, user_id)
                )
                """#,
            ]),
        SQLMigration(
            "v2: passwords, invitations, dashboard sessions",
            sqlite: [
                """
                ALTER TABLE users ADD COLUMN password_hash TEXT;
                CREATE TABLE invites (
                    token_sha256 BLOB PRIMARY KEY NOT NULL,
                    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
                    expires_at INTEGER NOT NULL,
                    used_at INTEGER
                );
                CREATE TABLE sessions (
                    id_sha256 BLOB PRIMARY KEY NOT NULL,
                    user_id TEXT NOT NULL DEFAULT '',
                    data BLOB NOT NULL,
                    expires_at INTEGER NOT NULL
                );
                CREATE INDEX sessions_by_user ON sessions(user_id);
                CREATE INDEX sessions_by_expiry ON sessions(expires_at);

                """
            ],
            postgres: [
                "ALTER TABLE users ADD COLUMN password_hash TEXT COLLATE \"C\"",
                #"""
                CREATE TABLE invites (
                    token_sha256 BYTEA PRIMARY KEY NOT NULL,
                    user_id TEXT COLLATE "C" NOT NULL REFERENCES users(id) ON DELETE CASCADE,
                    expires_at BIGINT NOT NULL,
                    used_at BIGINT
                )
                """#,
                #"""
                CREATE TABLE sessions (
                    id_sha256 BYTEA PRIMARY KEY NOT NULL,
                    user_id TEXT COLLATE "C" NOT NULL DEFAULT '',
                    data BYTEA NOT NULL,
                    expires_at BIGINT NOT NULL
                )
                """#,
                "CREATE INDEX sessions_by_user ON sessions(user_id)",
                "CREATE INDEX sessions_by_expiry ON sessions(expires_at)",
            ]),
        SQLMigration(
            "v3: web-chat conversations",
            sqlite: [
                """
                CREATE TABLE conversations (
                    id TEXT PRIMARY KEY NOT NULL,
                    organization_id TEXT NOT NULL,
                    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
                    title TEXT NOT NULL,
                    model TEXT NOT NULL,
                    message_count INTEGER NOT NULL DEFAULT 0,
                    created_at INTEGER NOT NULL,
                    updated_at INTEGER NOT NULL
                );
                CREATE INDEX conversations_by_user ON conversations(organization_id, user_id, updated_at DESC, id);
                CREATE TABLE conversation_messages (
                    conversation_id TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
                    seq INTEGER NOT NULL,
                    role TEXT NOT NULL,
                    content TEXT NOT NULL,
                    model TEXT NOT NULL,
                    request_id TEXT NOT NULL,
                    created_at INTEGER NOT NULL,
                    PRIMARY KEY (conversation_id, seq)
                ) WITHOUT ROWID;

                """
            ],
            postgres: [
                #"""
                CREATE TABLE conversations (
                    id TEXT COLLATE "C" PRIMARY KEY NOT NULL,
                    organization_id TEXT COLLATE "C" NOT NULL,
                    user_id TEXT COLLATE "C" NOT NULL REFERENCES users(id) ON DELETE CASCADE,
                    title TEXT COLLATE "C" NOT NULL,
                    model TEXT COLLATE "C" NOT NULL,
                    message_count BIGINT NOT NULL DEFAULT 0,
                    created_at BIGINT NOT NULL,
                    updated_at BIGINT NOT NULL
                )
                """#,
                "CREATE INDEX conversations_by_user ON conversations(organization_id, user_id, updated_at DESC, id)",
                #"""
                CREATE TABLE conversation_messages (
                    conversation_id TEXT COLLATE "C" NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
                    seq BIGINT NOT NULL,
                    role TEXT COLLATE "C" NOT NULL,
                    content TEXT COLLATE "C" NOT NULL,
                    model TEXT COLLATE "C" NOT NULL,
                    request_id TEXT COLLATE "C" NOT NULL,
                    created_at BIGINT NOT NULL,
                    PRIMARY KEY (conversation_id, seq)
                )
                """#,
            ]),
        AuditTrail.migration("v4: the audit log"),
        AuditCheckpoint.migration("v5: the audit log's checkpoint"),
        AccountsService.ssoMigration,
    ]
}

struct OrganizationRecord: Sendable {
    var id: String
    var name: String
    var createdAt: Int64

    static let columns = "id, name, created_at"

    init(id: String, name: String, createdAt: Int64) {
        self.id = id
        self.name = name
        self.createdAt = createdAt
    }

    init(_ row: SQLRow) throws {
        self.init(id: try row[0], name: try row[1], createdAt: try row[2])
    }

    func insert(_ db: any SQLSession) async throws {
        try await db.execute("INSERT INTO organizations (\(Self.columns)) VALUES (?, ?, ?)", .text(id), .text(name), .integer(createdAt))
    }
}

struct UserRecord: Sendable {
    var id: String
    var organizationID: String
    var email: String
    var displayName: String
    var isAdmin: Bool
    var active: Bool
    var createdAt: Int64

    static let columns = "id, organization_id, email, display_name, is_admin, active, created_at"

    init(id: String, organizationID: String, email: String, displayName: String, isAdmin: Bool, active: Bool, createdAt: Int64) {
        self.id = id
        self.organizationID = organizationID
        self.email = email
        self.displayName = displayName
        self.isAdmin = isAdmin
        self.active = active
        self.createdAt = createdAt
    }

    init(_ row: SQLRow) throws {
        self.init(
            id: try row[0], organizationID: try row[1], email: try row[2], displayName: try row[3], isAdmin: try row[4],
            active: try row[5], createdAt: try row[6])
    }

    func insert(_ db: any SQLSession) async throws {
        try await db.execute(
            "INSERT INTO users (\(Self.columns)) VALUES (?, ?, ?, ?, ?, ?, ?)", .text(id), .text(organizationID), .text(email),
            .text(displayName), .bool(isAdmin), .bool(active), .integer(createdAt))
    }

    func update(_ db: any SQLSession) async throws {
        try await db.execute(
            "UPDATE users SET display_name = ?, is_admin = ?, active = ? WHERE id = ?", .text(displayName), .bool(isAdmin),
            .bool(active), .text(id))
    }
}

struct GroupRecord: Sendable {
    var id: String
    var organizationID: String
    var name: String
    var description: String
    var createdAt: Int64

    static let columns = "id, organization_id, name, description, created_at"

    init(id: String, organizationID: String, name: String, description: String, createdAt: Int64) {
        self.id = id
        self.organizationID = organizationID
        self.name = name
        self.description = description
        self.createdAt = createdAt
    }

    init(_ row: SQLRow) throws {
        self.init(id: try row[0], organizationID: try row[1], name: try row[2], description: try row[3], createdAt: try row[4])
    }

    func insert(_ db: any SQLSession) async throws {
        try await db.execute(
            "INSERT INTO groups (\(Self.columns)) VALUES (?, ?, ?, ?, ?)", .text(id), .text(organizationID), .text(name),
            .text(description), .integer(createdAt))
    }
}

struct ClientRecord: Sendable {
    var id: String
    var organizationID: String
    var name: String
    var description: String
    var active: Bool
    var createdAt: Int64

    static let columns = "id, organization_id, name, description, active, created_at"

    init(id: String, organizationID: String, name: String, description: String, active: Bool, createdAt: Int64) {
        self.id = id
        self.organizationID = organizationID
        self.name = name
        self.description = description
        self.active = active
        self.createdAt = createdAt
    }

    init(_ row: SQLRow) throws {
        self.init(
            id: try row[0], organizationID: try row[1], name: try row[2], description: try row[3], active: try row[4],
            createdAt: try row[5])
    }

    func insert(_ db: any SQLSession) async throws {
        try await db.execute(
            "INSERT INTO clients (\(Self.columns)) VALUES (?, ?, ?, ?, ?, ?)", .text(id), .text(organizationID), .text(name),
            .text(description), .bool(active), .integer(createdAt))
    }

    func update(_ db: any SQLSession) async throws {
        try await db.execute(
            "UPDATE clients SET name = ?, description = ?, active = ? WHERE id = ?", .text(name), .text(description),
            .bool(active), .text(id))
    }
}

extension AccountsStore {
    func groupIDs(userID: String, _ db: any SQLSession) async throws -> [String] {
        try await db.column(String.self, "SELECT group_id FROM user_groups WHERE user_id = ? ORDER BY group_id", .text(userID))
    }

    /// The groups of each of `userIDs` (one query for a page of users).
    func groupIDs(userIDs: [String], _ db: any SQLSession) async throws -> [String: [String]] {
        try await Self.lists(of: userIDs, "SELECT user_id, group_id FROM user_groups WHERE user_id IN", db)
    }

    /// `select`'s second column listed by its first, for the rows whose first is one of `ids`
    /// (`select` ends with `IN`; one query, not one per id).
    private static func lists(of ids: [String], _ select: String, _ db: any SQLSession) async throws -> [String: [String]] {
        guard !ids.isEmpty else { return [:] }
        var lists: [String: [String]] = [:]
        for row in try await db.rows("\(select) (\(sqlPlaceholders(ids.count))) ORDER BY 1, 2", ids.map { .text($0) }) {
            lists[try row[0], default: []].append(try row[1])
        }
        return lists
    }

    func managerIDs(clientID: String, _ db: any SQLSession) async throws -> [String] {
        try await db.column(String.self, "SELECT user_id FROM client_managers WHERE client_id = ? ORDER BY user_id", .text(clientID))
    }

    /// The managers of each of `clientIDs` (one query for a list of clients).
    func managerIDs(clientIDs: [String], _ db: any SQLSession) async throws -> [String: [String]] {
        try await Self.lists(of: clientIDs, "SELECT client_id, user_id FROM client_managers WHERE client_id IN", db)
    }

    /// The clients a user manages, by id.
    func managedClientIDs(userID: String, _ db: any SQLSession) async throws -> [String] {
        try await db.column(String.self, "SELECT client_id FROM client_managers WHERE user_id = ? ORDER BY client_id", .text(userID))
    }

    func organizationExists(_ id: String, _ db: any SQLSession) async throws -> Bool {
        try await db.row("SELECT 1 FROM organizations WHERE id = ?", .text(id)) != nil
    }

    func setGroups(userID: String, organizationID: String, groupIDs: [String], _ db: any SQLSession) async throws {
        let unique = Array(Set(groupIDs)).sorted()
        let known =
            unique.isEmpty
            ? []
            : Set(
                try await db.rows(
                    "SELECT id FROM groups WHERE organization_id = ? AND id IN (\(sqlPlaceholders(unique.count)))",
                    [.text(organizationID)] + unique.map { .text($0) }
                ).map { try $0[0] as String })
        if let missing = unique.first(where: { !known.contains($0) }) {
            throw AccountsError.groupNotFound(missing)
        }
        try await db.execute("DELETE FROM user_groups WHERE user_id = ?", .text(userID))
        for groupID in unique {
            try await db.execute("INSERT INTO user_groups (user_id, group_id) VALUES (?, ?)", .text(userID), .text(groupID))
        }
    }

    /// Every user's groups and activity, then every client's activity, as membership events.
    func memberships(_ db: any SQLSession) async throws -> [Lumen_Accounts_V1_MembershipEvent] {
        let rows = try await db.rows(
            """
            SELECT users.id, users.organization_id, users.active, user_groups.group_id FROM users
            LEFT JOIN user_groups ON user_groups.user_id = users.id
            ORDER BY users.id, user_groups.group_id
            """)
        var events: [Lumen_Accounts_V1_MembershipEvent] = []
        for row in rows {
            let userID: String = try row[0]
            if events.last?.userID != userID {
                let organizationID: String = try row[1]
                let active: Bool = try row[2]
                events.append(.with {
                    $0.type = .upsert
                    $0.userID = userID
                    $0.organizationID = organizationID
                    $0.inactive = !active
                })
            }
            if let groupID: String = try row[3] { events[events.count - 1].groupIds.append(groupID) }
        }
        for row in try await db.rows("SELECT id, organization_id, active FROM clients ORDER BY id") {
            let (id, organizationID, active): (String, String, Bool) = (try row[0], try row[1], try row[2])
            events.append(.with {
                $0.type = .upsert
                $0.clientID = id
                $0.organizationID = organizationID
                $0.inactive = !active
            })
        }
        return events
    }
}

/// The organisations read so far, by id. An organisation is written once, when it is
/// bootstrapped, and never changed or deleted: a kept one is never stale. They are few (one per
/// organisation of the deployment), so nothing is evicted.
final class Organizations: Sendable {
    private let kept = Mutex<[String: Lumen_Accounts_V1_Organization]>([:])

    subscript(id: String) -> Lumen_Accounts_V1_Organization? {
        kept.withLock { $0[id] }
    }

    func keep(_ organization: Lumen_Accounts_V1_Organization) {
        kept.withLock { $0[organization.id] = organization }
    }
}
