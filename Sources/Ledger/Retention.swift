import GRDB
import LumenAPI
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

    /// Deletes up to `limit` lines — settled, and FAILED (released) — created before `cutoff`
    /// (the start of a UTC day) and records the cutoff; how many were deleted. Open holds are
    /// not lines (`usage_holds`): the reconciler settles them first.
    static func prune(_ db: Database, before cutoff: Int64, limit: Int) throws -> Int {
        try db.execute(
            sql: """
                INSERT INTO ledger_settings (name, value) VALUES ('retained_from', ?)
                ON CONFLICT (name) DO UPDATE SET value = max(value, excluded.value)
                """, arguments: [cutoff])
        var deleted = 0
        let organizationIDs = try String.fetchAll(
            db, sql: organizations, arguments: [Lumen_Common_V1_PrincipalType.organization.rawValue, Rollups.day, cutoff])
        for organizationID in organizationIDs where deleted < limit {
            try db.execute(
                sql: """
                    DELETE FROM usage_lines WHERE rowid IN (
                        SELECT rowid FROM usage_lines WHERE organization_id = ? AND created_at < ? LIMIT ?)
                    """, arguments: [organizationID, cutoff, limit - deleted])
            deleted += db.changesCount
        }
        return deleted
    }

    /// The organisations that may have lines before a cutoff: every one that has metered has its
    /// pool's row (a hold writes it), and lines loaded in bulk have their daily rollups. Each is
    /// then pruned through `usage_by_organization`, its keys' lines and its failed ones alike (a
    /// key whose requests all failed has no rollup).
    static let organizations = """
        SELECT organization_id FROM pools WHERE owner_type = ?
        UNION SELECT organization_id FROM usage_rollups WHERE span = ? AND bucket < ?
        """

    /// Its arguments, on PostgreSQL.
    static func arguments(_ cutoff: Int64) -> [SQLValue] {
        [.of(Lumen_Common_V1_PrincipalType.organization.rawValue), .integer(Rollups.day), .integer(cutoff)]
    }
}
