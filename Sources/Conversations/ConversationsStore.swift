import Logging
import Storage

/// The conversations service's tables, in one SQLite file (`conversations.sqlite`) or the
/// `conversations` schema of a PostgreSQL database, read and written through the same
/// statements (`SQLStore`). Nothing outside this module reads them.
///
/// - `conversations`: one row a conversation, its owner, title, model and message count.
/// - `conversation_messages`: its messages in order (`seq` from 0).
struct ConversationsStore: Sendable {
    let sql: any SQLStore

    /// Opens (and migrates) the tables at `location`.
    init(_ location: StoreLocation, logger: Logger) async throws {
        self.sql = try await location.open("conversations", migrations: Self.migrations, logger: logger)
    }

    init(location: ServiceDatabase.Location) throws {
        self.sql = try SQLiteStore(name: "conversations", at: location, migrations: Self.migrations)
    }

    /// The schema in both dialects: PostgreSQL's text `COLLATE "C"` (byte-wise, as SQLite compares).
    static let migrations: [SQLMigration] = [
        SQLMigration(
            "v1: web-chat conversations",
            sqlite: [
                """
                CREATE TABLE conversations (
                    id TEXT PRIMARY KEY NOT NULL,
                    organization_id TEXT NOT NULL,
                    user_id TEXT NOT NULL,
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
                    user_id TEXT COLLATE "C" NOT NULL,
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
    ]
}
