import Storage
import LumenAPI

/// What each user and client has used of each model — the sums of the settled lines of the
/// keys it owns and the latest one's time — in `owner_model_totals`, added to in the
/// transaction that settles the lines (`Book.flush`), like `key_totals`, so that a profile or
/// a client page never scans lines.
enum OwnerTotals {
    /// A row of `owner_model_totals`: an owner's totals of one model.
    struct Key: Hashable {
        var organizationID: String
        var ownerType: Int
        var ownerID: String
        var logicalModel: String
    }

    /// A row of `owner_origin_totals`: an owner's totals of one origin (the API, the web chat).
    struct OriginKey: Hashable {
        var organizationID: String
        var ownerType: Int
        var ownerID: String
        var origin: Int
    }

    /// The owner's totals by origin, the API first.
    static func origins(_ db: any SQLSession, organizationID: String, owner: Lumen_Common_V1_PrincipalRef) async throws
        -> [Lumen_Ledger_V1_OriginTotals]
    {
        try await db.rows(
            """
            SELECT origin, \(Totals.columns)
            FROM owner_origin_totals WHERE organization_id = ? AND owner_type = ? AND owner_id = ? ORDER BY origin
            """, [.text(organizationID), .of(owner.type.rawValue), .text(owner.id)]
        ).map { row in
            var totals = Lumen_Ledger_V1_OriginTotals()
            totals.origin = .init(rawValue: try row[0]) ?? .api
            try totals.read(row, from: 1)
            return totals
        }
    }

    /// Lines record their origin; what was settled before came from the API.
    static let originMigration = """
        ALTER TABLE usage_lines ADD COLUMN origin INTEGER NOT NULL DEFAULT 1;
        CREATE TABLE owner_origin_totals (
            organization_id TEXT NOT NULL,
            owner_type INTEGER NOT NULL,
            owner_id TEXT NOT NULL,
            origin INTEGER NOT NULL,
            requests INTEGER NOT NULL,
            input_tokens INTEGER NOT NULL,
            cached_input_tokens INTEGER NOT NULL,
            output_tokens INTEGER NOT NULL,
            cost_micros INTEGER NOT NULL,
            last_used_at INTEGER NOT NULL,
            PRIMARY KEY (organization_id, owner_type, owner_id, origin)
        ) WITHOUT ROWID;
        INSERT INTO owner_origin_totals
            SELECT organization_id, owner_type, owner_id, 1, SUM(requests), SUM(input_tokens), SUM(cached_input_tokens),
                SUM(output_tokens), SUM(cost_micros), max(last_used_at)
            FROM owner_model_totals GROUP BY organization_id, owner_type, owner_id;
        """

    /// The owner's totals by model, most requests first (ties: most tokens, then by name).
    static func fetch(_ db: any SQLSession, organizationID: String, owner: Lumen_Common_V1_PrincipalRef) async throws
        -> [Lumen_Ledger_V1_ModelTotals]
    {
        try await db.rows(
            """
            SELECT logical_model, \(Totals.columns)
            FROM owner_model_totals WHERE organization_id = ? AND owner_type = ? AND owner_id = ?
            ORDER BY requests DESC, input_tokens + cached_input_tokens + cache_write_tokens + output_tokens DESC, logical_model
            """, [.text(organizationID), .of(owner.type.rawValue), .text(owner.id)]
        ).map { row in
            var totals = Lumen_Ledger_V1_ModelTotals()
            totals.logicalModel = try row[0]
            try totals.read(row, from: 1)
            return totals
        }
    }

    /// The migration that creates the table and fills it from what the ledger has: the day
    /// rollups (complete), each key's owner read from its lines (a key with no line left after
    /// retention is not counted), the latest time from the lines or else the start of the last day.
    static let migration = """
        CREATE TABLE owner_model_totals (
            organization_id TEXT NOT NULL,
            owner_type INTEGER NOT NULL,
            owner_id TEXT NOT NULL,
            logical_model TEXT NOT NULL,
            requests INTEGER NOT NULL,
            input_tokens INTEGER NOT NULL,
            cached_input_tokens INTEGER NOT NULL,
            output_tokens INTEGER NOT NULL,
            cost_micros INTEGER NOT NULL,
            last_used_at INTEGER NOT NULL,
            PRIMARY KEY (organization_id, owner_type, owner_id, logical_model)
        ) WITHOUT ROWID;
        CREATE TEMP TABLE key_owners AS
            SELECT organization_id, key_id, min(owner_type) AS owner_type, min(owner_id) AS owner_id
            FROM usage_lines GROUP BY organization_id, key_id;
        INSERT INTO owner_model_totals
            SELECT rollup.organization_id, owners.owner_type, owners.owner_id, rollup.logical_model, SUM(rollup.requests),
                SUM(rollup.input_tokens), SUM(rollup.cached_input_tokens), SUM(rollup.output_tokens), SUM(rollup.cost_micros),
                coalesce(
                    (SELECT max(line.created_at) FROM usage_lines AS line
                     WHERE line.organization_id = rollup.organization_id AND line.owner_type = owners.owner_type
                         AND line.owner_id = owners.owner_id AND line.logical_model = rollup.logical_model AND line.status = 2),
                    max(rollup.bucket))
            FROM usage_rollups AS rollup
            JOIN key_owners AS owners ON owners.organization_id = rollup.organization_id AND owners.key_id = rollup.key_id
            WHERE rollup.span = 86400000 AND owners.owner_type IN (2, 3)
            GROUP BY rollup.organization_id, owners.owner_type, owners.owner_id, rollup.logical_model;
        DROP TABLE key_owners;
        """
}
