import LumenAPI
import Storage

/// The open holds' table, `usage_holds` (v16): one narrow row a hold, inserted when it is placed
/// and deleted in the statement that writes its request's usage line, settled or failed — a
/// request's line is written once, never updated (until v16 a hold was a PENDING line, settled
/// by an UPDATE that rewrote the row and its index entries). Its primary key is its only index:
/// the table holds the requests in flight, a few thousand at most.
///
/// Readers that list requests (the request log, a key's usage page) show an open hold as a
/// PENDING line: `asLines`, merged with `usage_lines` in their order.
enum OpenHolds {
    /// v16: the table, the open holds moved into it from the pending lines (and on SQLite the
    /// index that found those, `usage_pending`, dropped).
    static func migration(sqlite: Bool) -> [String] {
        let (integer, text) = sqlite ? ("INTEGER", "TEXT") : ("BIGINT", #"TEXT COLLATE "C""#)
        return [
            """
            CREATE TABLE usage_holds (
                request_id \(text) PRIMARY KEY NOT NULL,
                created_at \(integer) NOT NULL,
                organization_id \(text) NOT NULL,
                key_id \(text) NOT NULL,
                owner_type \(integer) NOT NULL,
                owner_id \(text) NOT NULL,
                logical_model \(text) NOT NULL,
                model_vendor \(text) NOT NULL,
                scene \(integer) NOT NULL,
                access_channel \(integer) NOT NULL,
                estimate_micros \(integer) NOT NULL,
                origin \(integer) NOT NULL
            )\(sqlite ? " WITHOUT ROWID" : "")
            """,
            """
            INSERT INTO usage_holds (\(columns))
            SELECT \(columns.replacingOccurrences(of: "estimate_micros", with: "cost_micros")) FROM usage_lines WHERE status = 1
            """,
            "DELETE FROM usage_lines WHERE status = 1",
        ] + (sqlite ? ["DROP INDEX usage_pending"] : [])
    }

    static let columns = """
        request_id, created_at, organization_id, key_id, owner_type, owner_id, logical_model, model_vendor, scene,
        access_channel, estimate_micros, origin
        """

    static let insert = BulkStatement.insert(
        into: "usage_holds",
        [
            .text("request_id"), .bigint("created_at"), .text("organization_id"), .text("key_id"), .bigint("owner_type"),
            .text("owner_id"), .text("logical_model"), .text("model_vendor"), .bigint("scene"), .bigint("access_channel"),
            .bigint("estimate_micros"), .bigint("origin"),
        ])

    static func insert(_ requestID: String, _ hold: Book.Hold) -> [SQLValue] {
        [
            .text(requestID), .integer(hold.createdAt), .text(hold.organizationID), .text(hold.keyID), .of(hold.owner.type.rawValue),
            .text(hold.owner.id), .text(hold.logicalModel), .text(hold.modelVendor), .of(hold.scene.rawValue),
            .of(hold.accessChannel.rawValue), .integer(hold.estimateMicros), .of(hold.origin.rawValue),
        ]
    }

    static let delete = BulkStatement.delete(from: "usage_holds", key: [.text("request_id")])

    /// Every open hold, read with `columns`.
    static let all = "SELECT \(columns) FROM usage_holds"

    /// A row read with `columns`, by request id.
    static func hold(_ row: SQLRow) throws -> (String, Book.Hold) {
        let owner = LedgerStore.principal(type: try row[4], id: try row[5])
        return (
            try row[0],
            Book.Hold(
                organizationID: try row[2], keyID: try row[3], owner: owner, logicalModel: try row[6], modelVendor: try row[7],
                scene: .init(rawValue: try row[8]) ?? .unspecified, accessChannel: .init(rawValue: try row[9]) ?? .unspecified,
                estimateMicros: try row[10], createdAt: try row[1], origin: .init(rawValue: try row[11]) ?? .api)
        )
    }

    /// The open holds as PENDING usage lines (`UsageLineRecord.columns`, the estimate as their
    /// cost), a table to select from: `SELECT … FROM \(asLines) WHERE …`.
    static let asLines = """
        (SELECT request_id, CAST(NULL AS TEXT) AS billing_transaction_id, created_at, CAST(NULL AS BIGINT) AS settled_at,
            organization_id, key_id, owner_type, owner_id, logical_model, model_vendor, scene, access_channel,
            0 AS input_tokens, 0 AS cached_input_tokens, 0 AS output_tokens, estimate_micros AS cost_micros, 0 AS latency_ms, \(Lumen_Ledger_V1_UsageStatus.pending.rawValue) AS status,
            FALSE AS estimated, FALSE AS expired, origin, 0 AS overrun_micros, '' AS backend_id, 0 AS cache_write_tokens,
            0 AS http_status, 0 AS ttft_ms, '' AS error_code
        FROM usage_holds) AS held
        """
}
