import Foundation
import GRDB
import LumenAPI
import Storage
import Synchronization

/// The accounts service's tables. Nothing outside this module reads them.
///
/// - `organizations`, `users` (with `password_hash`, bcrypt, NULL until one is set), `groups`,
///   `user_groups`, `clients`, `client_managers`.
/// - `invites`: one-time invitations to set a password, by the SHA-256 of their secret.
/// - `sessions`: the dashboard's sessions, by the SHA-256 of their id, with the facade's opaque
///   data; deleted when they expire (at the next read or write) or their user is deactivated.
struct AccountsStore: Sendable {
    let writer: any DatabaseWriter

    init(location: ServiceDatabase.Location) throws {
        self.writer = try ServiceDatabase.open(name: "accounts", at: location, migrator: Self.migrator)
    }

    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1: organisations, users, groups, clients") { db in
            try db.execute(
                sql: """
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
                    """)
        }
        migrator.registerMigration("v2: passwords, invitations, dashboard sessions") { db in
            try db.execute(
                sql: """
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
                    """)
        }
        migrator.registerMigration("v3: web-chat conversations") { db in
            try db.execute(
                sql: """
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
                    """)
        }
        return migrator
    }
}

struct OrganizationRecord: Codable, Sendable, FetchableRecord, PersistableRecord {
    static let databaseTableName = "organizations"
    var id: String
    var name: String
    var createdAt: Int64

    enum CodingKeys: String, CodingKey {
        case id, name
        case createdAt = "created_at"
    }
}

struct UserRecord: Codable, Sendable, FetchableRecord, PersistableRecord {
    static let databaseTableName = "users"
    var id: String
    var organizationID: String
    var email: String
    var displayName: String
    var isAdmin: Bool
    var active: Bool
    var createdAt: Int64

    enum CodingKeys: String, CodingKey {
        case id, email, active
        case organizationID = "organization_id"
        case displayName = "display_name"
        case isAdmin = "is_admin"
        case createdAt = "created_at"
    }
}

struct GroupRecord: Codable, Sendable, FetchableRecord, PersistableRecord {
    static let databaseTableName = "groups"
    var id: String
    var organizationID: String
    var name: String
    var description: String
    var createdAt: Int64

    enum CodingKeys: String, CodingKey {
        case id, name, description
        case organizationID = "organization_id"
        case createdAt = "created_at"
    }
}

struct ClientRecord: Codable, Sendable, FetchableRecord, PersistableRecord {
    static let databaseTableName = "clients"
    var id: String
    var organizationID: String
    var name: String
    var description: String
    var active: Bool
    var createdAt: Int64

    enum CodingKeys: String, CodingKey {
        case id, name, description, active
        case organizationID = "organization_id"
        case createdAt = "created_at"
    }
}

extension AccountsStore {
    func groupIDs(userID: String, _ db: Database) throws -> [String] {
        try String.fetchAll(
            db, sql: "SELECT group_id FROM user_groups WHERE user_id = ? ORDER BY group_id", arguments: [userID])
    }

    func managerIDs(clientID: String, _ db: Database) throws -> [String] {
        try String.fetchAll(
            db, sql: "SELECT user_id FROM client_managers WHERE client_id = ? ORDER BY user_id", arguments: [clientID])
    }

    /// The clients a user manages, by id.
    func managedClientIDs(userID: String, _ db: Database) throws -> [String] {
        try String.fetchAll(
            db, sql: "SELECT client_id FROM client_managers WHERE user_id = ? ORDER BY client_id", arguments: [userID])
    }

    func setGroups(userID: String, organizationID: String, groupIDs: [String], _ db: Database) throws {
        let unique = Array(Set(groupIDs)).sorted()
        let known = try String.fetchAll(
            db, GroupRecord.select(Column("id")).filter(unique.contains(Column("id")) && Column("organization_id") == organizationID))
        if let missing = unique.first(where: { !known.contains($0) }) {
            throw AccountsError.groupNotFound(missing)
        }
        try db.execute(sql: "DELETE FROM user_groups WHERE user_id = ?", arguments: [userID])
        for groupID in unique {
            try db.execute(sql: "INSERT INTO user_groups (user_id, group_id) VALUES (?, ?)", arguments: [userID, groupID])
        }
    }

    /// Every user's groups and activity, then every client's activity, as membership events.
    func memberships(_ db: Database) throws -> [Lumen_Accounts_V1_MembershipEvent] {
        let rows = try Row.fetchAll(
            db,
            sql: """
                SELECT users.id, users.organization_id, users.active, user_groups.group_id FROM users
                LEFT JOIN user_groups ON user_groups.user_id = users.id
                ORDER BY users.id, user_groups.group_id
                """)
        var events: [Lumen_Accounts_V1_MembershipEvent] = []
        for row in rows {
            let userID: String = row[0]
            if events.last?.userID != userID {
                events.append(.with {
                    $0.type = .upsert
                    $0.userID = userID
                    $0.organizationID = row[1]
                    $0.inactive = !(row[2] as Bool)
                })
            }
            if let groupID: String = row[3] { events[events.count - 1].groupIds.append(groupID) }
        }
        for row in try Row.fetchAll(db, sql: "SELECT id, organization_id, active FROM clients ORDER BY id") {
            events.append(.with {
                $0.type = .upsert
                $0.clientID = row[0]
                $0.organizationID = row[1]
                $0.inactive = !(row[2] as Bool)
            })
        }
        return events
    }
}

/// The organisations read so far, by id. An organisation is written once, when it is
/// bootstrapped, and never changed or deleted, and only the process that runs the accounts
/// service writes its database (`DataDirectoryLock`): a kept one is never stale. They are few
/// (one per organisation of the deployment), so nothing is evicted.
final class Organizations: Sendable {
    private let kept = Mutex<[String: Lumen_Accounts_V1_Organization]>([:])

    subscript(id: String) -> Lumen_Accounts_V1_Organization? {
        kept.withLock { $0[id] }
    }

    func keep(_ organization: Lumen_Accounts_V1_Organization) {
        kept.withLock { $0[organization.id] = organization }
    }
}
