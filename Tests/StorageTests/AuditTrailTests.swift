import Foundation
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
        AuditCheckpoint.migration("v3: the audit log's checkpoint"),
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
            #expect(try await AuditTrail.verify(in: store) == .intact(count: 3, head: records[2].hash, prunedThrough: 0))
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
                #expect(try await AuditTrail.verify(in: store) == .broken(sequence: sequence, reason: reason, checked: sequence - 1), "\(tamper)")
            }
        }
    }

    @Test("Pruning keeps the newest entry and a signed checkpoint: the chain verifies from it with the deployment's key only", arguments: TestStore.available)
    func pruning(store kind: TestStore) async throws {
        let signer = AuditSigner(key: .init())
        try await Self.withStore(kind) { store in
            for number in 1...6 {
                _ = try await store.write { session in try await AuditTrail.append(Self.entry(number), in: session) }
            }
            let records = try await store.read { session in try await AuditTrail.records(in: session) }
            // Entries made before the 5th (at_ms base + 1…4) go, behind a checkpoint of the 4th.
            let pruned = try await store.write { session in
                try await AuditTrail.prune(before: 1_765_000_000_005, signer: signer, now: 1_766_000_000_000, in: session)
            }
            #expect(pruned == 4)
            let kept = try await store.read { session in try await AuditTrail.records(in: session) }
            #expect(kept.map(\.sequence) == [5, 6])
            #expect(try await AuditTrail.verify(in: store, signer: signer) == .intact(count: 2, head: records[5].hash, prunedThrough: 4))
            // Without the key, or with another, the checkpoint cannot vouch for what was pruned.
            #expect(try await AuditTrail.verify(in: store) == .broken(
                sequence: 5, reason: "entries up to 4 were pruned; their checkpoint is checked with the deployment's audit signing key, which was not given",
                checked: 0))
            let stranger = AuditSigner(key: .init())
            #expect(try await AuditTrail.verify(in: store, signer: stranger) == .broken(
                sequence: 5, reason: "the checkpoint of the entries pruned up to 4 is not signed with this deployment's audit signing key",
                checked: 0))
            // Everything is old: the newest stays, the chain goes on from it.
            #expect(try await store.write { session in
                try await AuditTrail.prune(before: 1_800_000_000_000, signer: signer, now: 1_766_000_000_001, in: session)
            } == 1)
            _ = try await store.write { session in try await AuditTrail.append(Self.entry(7), in: session) }
            #expect(try await AuditTrail.verify(in: store, signer: signer) == .intact(
                count: 2, head: AuditTrail.hash(Self.entry(7), after: records[5].hash), prunedThrough: 5))

            // A checkpoint rewritten by someone without the key (to hide entry 6) is found.
            try await store.write { session in
                try await session.execute("DELETE FROM audit_log WHERE sequence = 6")
                try await session.execute("UPDATE audit_checkpoint SET through_sequence = 6, hash = ?", .text(records[5].hash))
            }
            #expect(try await AuditTrail.verify(in: store, signer: signer) == .broken(
                sequence: 7, reason: "the checkpoint of the entries pruned up to 6 is not signed with this deployment's audit signing key",
                checked: 0))
        }
    }

    @Test("The signing key is made once (mode 600), read back, and a file that is not one is refused by name")
    func signingKeyFile() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("lumen-audit-\(UUID()).key").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        #expect(throws: StorageError.self) { try AuditSigner(path: path, create: false) }
        let made = try AuditSigner(path: path, create: true)
        let again = try AuditSigner(path: path, create: true)
        #expect(made.publicKey == again.publicKey && made.publicKey.count == 64)
        let mode = try #require(try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int)
        #expect(mode == 0o600)
        try "not a key".write(toFile: path, atomically: true, encoding: .utf8)
        do {
            _ = try AuditSigner(path: path, create: false)
            Issue.record("a file that is not a key was read")
        } catch let error as StorageError {
            #expect(error.description == "--audit-signing-key: \(path) is not an audit signing key (an Ed25519 private key: 32 bytes in base64)")
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
