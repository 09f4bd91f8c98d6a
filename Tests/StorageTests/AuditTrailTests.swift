import Logging
import LumenTesting
import Storage
import Testing

/// The audit log's chain, on SQLite and PostgreSQL: entries appended with the change they
/// record, and any entry edited, removed or reordered in the database found by `verify`.
@Suite("Storage: the hash-chained audit log")
struct AuditTrailTests {
    static let migrations = [
        SQLMigration("v1: things", "CREATE TABLE things (id TEXT PRIMARY KEY, name TEXT NOT NULL)"),
        AuditTrail.migration("v2: the audit log"),
    ]

    /// Runs `body` with a fresh store of `kind` holding the audit log.
    static func withStore(_ kind: TestStore, _ body: @Sendable (any SQLStore) async throws -> Void) async throws {
        var logger = Logger(label: "audit-test")
        logger.logLevel = .critical
        switch kind {
        case .sqlite:
            try await body(try await StoreLocation.sqlite(.inMemory).open("audit", migrations: migrations, logger: logger))
        case .postgres:
            try await TestPostgres.withDatabase { [logger] database in
                try await body(try await StoreLocation.postgres(database).open("audit", migrations: migrations, logger: logger))
            }
        }
    }

    static func entry(_ number: Int, action: String = "thing.create") -> AuditEntry {
        AuditEntry(
            at: 1_765_000_000_000 + Int64(number), organizationID: "org_1", actorType: "person", actorID: "usr_\(number)",
            action: action, targetType: "thing", targetID: "t\(number)", after: #"{"name":"thing \#(number)"}"#,
            requestID: "req_\(number)", clientAddress: "127.0.0.1")
    }

    @Test("Entries chain: each carries the hash of the one before; a change and its entry commit together", arguments: TestStore.available)
    func chain(store kind: TestStore) async throws {
        try await Self.withStore(kind) { store in
            for number in 1...3 {
                try await store.write { session in
                    try await session.execute("INSERT INTO things (id, name) VALUES (?, ?)", .text("t\(number)"), .text("thing \(number)"))
                    try await AuditTrail.append(Self.entry(number), in: session)
                }
            }
            // A change that fails leaves no entry.
            struct Refused: Error {}
            await #expect(throws: Refused.self) {
                try await store.write { session in
                    try await AuditTrail.append(Self.entry(4), in: session)
                    throw Refused()
                }
            }
            let records = try await store.read { session in try await AuditTrail.records(in: session) }
            #expect(records.map(\.sequence) == [1, 2, 3])
            #expect(records.map(\.entry) == (1...3).map { Self.entry($0) })
            #expect(records[0].previousHash == AuditTrail.genesis && records[1].previousHash == records[0].hash)
            #expect(records[2].hash == AuditTrail.hash(Self.entry(3), after: records[1].hash))
            #expect(try await AuditTrail.verify(in: store) == .intact(count: 3, head: records[2].hash))
        }
    }

    @Test("An entry edited, removed or whose link is rewritten breaks the chain there", arguments: TestStore.available)
    func tampering(store kind: TestStore) async throws {
        for (tamper, sequence, reason) in [
            ("UPDATE audit_log SET actor_id = 'usr_someone_else' WHERE sequence = 2", Int64(2), "entry 2 was changed after it was written"),
            ("DELETE FROM audit_log WHERE sequence = 2", 2, "entry 2 is missing (the next is 3)"),
            ("UPDATE audit_log SET previous_hash = '\(AuditTrail.genesis)' WHERE sequence = 3", 3, "entry 3 does not follow the entry before it"),
        ] {
            try await Self.withStore(kind) { store in
                for number in 1...4 {
                    _ = try await store.write { session in try await AuditTrail.append(Self.entry(number), in: session) }
                }
                try await store.write { session in try await session.execute(tamper) }
                #expect(try await AuditTrail.verify(in: store) == .broken(sequence: sequence, reason: reason), "\(tamper)")
            }
        }
    }

    @Test("The hash covers every field, each length-prefixed: moving text between fields changes it")
    func hashing() {
        var moved = Self.entry(1)
        moved.targetType = "thin"
        moved.targetID = "gt1"
        #expect(AuditTrail.hash(moved, after: AuditTrail.genesis) != AuditTrail.hash(Self.entry(1), after: AuditTrail.genesis))
        #expect(AuditTrail.hash(Self.entry(1), after: AuditTrail.genesis).count == 64)
    }
}
