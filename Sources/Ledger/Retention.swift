import GRDB
import Storage

/// Deleting raw usage lines past the retention period. Their rollups stay, so billing and
/// balances keep every figure; `/usage` lists (and counts) lines from `retained_from` on.
enum Retention {
    /// Lines deleted per transaction.
    static let chunk = 5_000

    /// The time before which settled lines may have been deleted (0: none ever were).
    static func retainedFrom(_ db: any SQLSession) async throws -> Int64 {
        try await db.value(Int64.self, "SELECT value FROM ledger_settings WHERE name = 'retained_from'") ?? 0
    }

    /// Deletes up to `limit` settled lines created before `cutoff` (the start of a UTC day)
    /// and records the cutoff; how many were deleted. Pending lines are never deleted (the
    /// reconciler settles them first).
    static func prune(_ db: Database, before cutoff: Int64, limit: Int) throws -> Int {
        try db.execute(
            sql: """
                INSERT INTO ledger_settings (name, value) VALUES ('retained_from', ?)
                ON CONFLICT (name) DO UPDATE SET value = max(value, excluded.value)
                """, arguments: [cutoff])
        // The keys with lines that old, from the daily rollups (far fewer rows than lines).
        let keys = try Row.fetchAll(
            db, sql: "SELECT DISTINCT organization_id, key_id FROM usage_rollups WHERE span = ? AND bucket < ?",
            arguments: [Rollups.day, cutoff])
        var deleted = 0
        for key in keys where deleted < limit {
            try db.execute(
                sql: """
                    DELETE FROM usage_lines WHERE rowid IN (
                        SELECT rowid FROM usage_lines
                        WHERE organization_id = ? AND key_id = ? AND created_at < ? AND status IN (2, 3) LIMIT ?)
                    """, arguments: [key[0] as String, key[1] as String, cutoff, limit - deleted])
            deleted += db.changesCount
        }
        return deleted
    }
}
