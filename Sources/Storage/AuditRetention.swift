import Crypto
import Foundation
import GRDB

/// The deployment's key for the audit logs' checkpoints: an Ed25519 private key, kept in a file
/// of its own (the raw 32 bytes in base64, one line, readable by its owner only). A checkpoint
/// it signed says which entries were pruned past retention and the hash of the last of them, so
/// the chain still verifies from there; one written by someone without the key (a database
/// administrator removing entries) does not.
public struct AuditSigner: Sendable {
    let key: Curve25519.Signing.PrivateKey

    public init(key: Curve25519.Signing.PrivateKey) {
        self.key = key
    }

    /// The key in `path`; a new one written there (mode 600) when `create` and there is none.
    public init(path: String, create: Bool) throws {
        if let text = try? String(contentsOfFile: path, encoding: .utf8) {
            guard let raw = Data(base64Encoded: text.trimmingCharacters(in: .whitespacesAndNewlines)),
                let key = try? Curve25519.Signing.PrivateKey(rawRepresentation: raw)
            else {
                throw StorageError.auditSigningKey("\(path) is not an audit signing key (an Ed25519 private key: 32 bytes in base64)")
            }
            self.key = key
            return
        }
        guard create else { throw StorageError.auditSigningKey("no audit signing key at \(path)") }
        let key = Curve25519.Signing.PrivateKey()
        let directory = (path as NSString).deletingLastPathComponent
        if !directory.isEmpty {
            try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        }
        let made = FileManager.default.createFile(
            atPath: path, contents: Data((key.rawRepresentation.base64EncodedString() + "\n").utf8),
            attributes: [.posixPermissions: 0o600])
        guard made else { throw StorageError.auditSigningKey("cannot write the audit signing key to \(path)") }
        self.key = key
    }

    /// The public key, in hex: what a checkpoint names as its signer.
    public var publicKey: String { Hex.string(key.publicKey.rawRepresentation) }

    /// What a checkpoint's signature covers.
    static func message(through: Int64, hash: String, at: Int64) -> Data {
        Data("lumen audit checkpoint\n\(through)\n\(hash)\n\(at)".utf8)
    }

    func sign(through: Int64, hash: String, at: Int64) throws -> AuditCheckpoint {
        let signature = try key.signature(for: Self.message(through: through, hash: hash, at: at))
        return AuditCheckpoint(
            throughSequence: through, hash: hash, at: at, publicKey: publicKey, signature: Hex.string(signature))
    }

    /// Whether `checkpoint` was signed with this key.
    func signed(_ checkpoint: AuditCheckpoint) -> Bool {
        guard checkpoint.publicKey == publicKey, let signature = Hex.bytes(checkpoint.signature) else { return false }
        return key.publicKey.isValidSignature(
            signature, for: Self.message(through: checkpoint.throughSequence, hash: checkpoint.hash, at: checkpoint.at))
    }
}

/// Bytes as lower-case hex, and back.
public enum Hex {
    public static func string(_ bytes: some Sequence<UInt8>) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(128)
        for byte in bytes {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0x0F)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    static func bytes(_ hex: String) -> Data? {
        let digits = Array(hex.utf8)
        guard digits.count % 2 == 0 else { return nil }
        var data = Data(capacity: digits.count / 2)
        for index in stride(from: 0, to: digits.count, by: 2) {
            guard let byte = UInt8(String(decoding: digits[index..<index + 2], as: UTF8.self), radix: 16) else { return nil }
            data.append(byte)
        }
        return data
    }
}

/// The record of a service's pruned audit entries: the last one pruned and its hash, when,
/// signed with the deployment's `AuditSigner`. One row (`audit_checkpoint`), replaced at each
/// pruning.
public struct AuditCheckpoint: Sendable, Equatable {
    public var throughSequence: Int64
    public var hash: String
    public var at: Int64
    public var publicKey: String
    public var signature: String

    /// The table, as a step of a service's migrations.
    public static func migration(_ name: String) -> SQLMigration {
        SQLMigration(
            name,
            sqlite: [
                """
                CREATE TABLE audit_checkpoint (
                    id INTEGER PRIMARY KEY CHECK (id = 1), through_sequence INTEGER NOT NULL, hash TEXT NOT NULL,
                    at_ms INTEGER NOT NULL, public_key TEXT NOT NULL, signature TEXT NOT NULL
                )
                """
            ],
            postgres: [
                """
                CREATE TABLE audit_checkpoint (
                    id BIGINT PRIMARY KEY CHECK (id = 1), through_sequence BIGINT NOT NULL, hash TEXT NOT NULL,
                    at_ms BIGINT NOT NULL, public_key TEXT NOT NULL, signature TEXT NOT NULL
                )
                """
            ])
    }

    static let select = "SELECT through_sequence, hash, at_ms, public_key, signature FROM audit_checkpoint WHERE id = 1"
    static let upsert = """
        INSERT INTO audit_checkpoint (id, through_sequence, hash, at_ms, public_key, signature) VALUES (1, ?, ?, ?, ?, ?)
        ON CONFLICT (id) DO UPDATE SET through_sequence = excluded.through_sequence, hash = excluded.hash,
            at_ms = excluded.at_ms, public_key = excluded.public_key, signature = excluded.signature
        """
    /// The last entry older than the cutoff, never the newest (the chain continues from it).
    static let lastBefore = """
        SELECT sequence, hash FROM audit_log
        WHERE at_ms < ? AND sequence < (SELECT max(sequence) FROM audit_log) ORDER BY sequence DESC LIMIT 1
        """
    static let delete = "DELETE FROM audit_log WHERE sequence <= ?"

    var values: [SQLValue] { [.integer(throughSequence), .text(hash), .integer(at), .text(publicKey), .text(signature)] }

    init(throughSequence: Int64, hash: String, at: Int64, publicKey: String, signature: String) {
        self.throughSequence = throughSequence
        self.hash = hash
        self.at = at
        self.publicKey = publicKey
        self.signature = signature
    }

    init(_ row: SQLRow) throws {
        self.init(throughSequence: try row[0], hash: try row[1], at: try row[2], publicKey: try row[3], signature: try row[4])
    }

    static func read(in session: any SQLSession) async throws -> AuditCheckpoint? {
        try await session.row(select).map(AuditCheckpoint.init)
    }
}

extension AuditTrail {
    /// The time before which entries go when `retentionDays` are kept (nil: kept forever).
    public static func cutoff(retentionDays: Int, now: Int64) -> Int64? {
        retentionDays > 0 ? now - Int64(retentionDays) * 86_400_000 : nil
    }

    /// Prunes the entries made before `cutoff` (never the newest), in `session`'s transaction:
    /// the checkpoint of the last one pruned, signed, replaces the one before; how many went.
    @discardableResult
    public static func prune(before cutoff: Int64, signer: AuditSigner, now: Int64, in session: any SQLSession) async throws -> Int64 {
        guard let last = try await session.row(AuditCheckpoint.lastBefore, .integer(cutoff)) else { return 0 }
        let checkpoint = try signer.sign(through: try last[0], hash: try last[1], at: now)
        let previous = try await AuditCheckpoint.read(in: session)?.throughSequence ?? 0
        try await session.execute(AuditCheckpoint.upsert, checkpoint.values)
        try await session.execute(AuditCheckpoint.delete, .integer(checkpoint.throughSequence))
        return checkpoint.throughSequence - previous
    }

    /// `prune` on the writer of a group commit on SQLite (`db`, inside its transaction).
    @discardableResult
    public static func prune(before cutoff: Int64, signer: AuditSigner, now: Int64, in db: Database) throws -> Int64 {
        guard let last = try Row.fetchOne(db, sql: AuditCheckpoint.lastBefore, arguments: [cutoff]) else { return 0 }
        let checkpoint = try signer.sign(through: last[0], hash: last[1], at: now)
        let previous = try Int64.fetchOne(db, sql: "SELECT through_sequence FROM audit_checkpoint WHERE id = 1") ?? 0
        try db.execute(sql: AuditCheckpoint.upsert, arguments: StatementArguments(values: checkpoint.values))
        try db.execute(sql: AuditCheckpoint.delete, arguments: [checkpoint.throughSequence])
        return checkpoint.throughSequence - previous
    }
}
