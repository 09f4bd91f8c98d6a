import Foundation
import GRDB
import LumenAPI
import RPCSupport
import SharedRules
import Storage

/// The ledger's tables. Nothing outside this module reads them.
///
/// - `pools`: one row per (organisation, principal) that has been configured or has spent;
///   keys are principals too (their spending cap is checked against their row).
/// - `usage_holds`: the open holds, one narrow row each (`OpenHolds`); Σ of a pool's open
///   holds' estimates is its `reserved_micros`.
/// - `usage_lines`: one row per request, written once when its hold is settled (with its
///   final cost) or released (FAILED, costing nothing), in the transaction that deletes the
///   hold. (Until v2 a `holds` table repeated the pending lines; from v2 to v16 a hold was a
///   PENDING line, updated when settled.) Settled lines older than the retention period are
///   deleted; their rollups stay.
/// - `grants`: every manual change of a pool's balance, with who and why.
/// - `usage_rollups`: per key, hour (`span` 3,600,000) or UTC day (86,400,000) of
///   `created_at`, model, vendor, scene and channel, the totals of the settled lines;
///   maintained in the transaction that settles them, so billing never scans raw lines. Each
///   row names its key's owner (v12), so usage over time is answered per organisation, owner
///   or model from the daily rows alone (`UsageSeries`).
/// - `ledger_settings`: `retained_from`, the time before which raw lines were deleted.
/// - `key_totals`: per key, the sums of its settled lines and the latest one's time (what the
///   key has used), maintained with the rollups; retention leaves it whole.
/// - `owner_model_totals`: the same per user or client (the owner of the keys) and model, for
///   the dashboard's profile, model and client pages; `owner_origin_totals` per user or client
///   and origin (the API, the web chat: `usage_lines.origin`).
enum LedgerStore {
    /// A principal as stored (type number and id) in its message form.
    static func principal(type: Int, id: String) -> Lumen_Common_V1_PrincipalRef {
        .with {
            $0.type = .init(rawValue: type) ?? .unspecified
            $0.id = id
        }
    }

    /// v8: what a settlement charged above its hold, and the overrun lines found without a scan;
    /// the backend that answered.
    static let overrunMigration = """
        ALTER TABLE usage_lines ADD COLUMN overrun_micros INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE usage_lines ADD COLUMN backend_id TEXT NOT NULL DEFAULT '';
        CREATE INDEX usage_overruns ON usage_lines(organization_id) WHERE overrun_micros > 0;
        """

    /// The schema in both dialects: PostgreSQL's text `COLLATE "C"`, booleans, no `WITHOUT
    /// ROWID`. The backfills of v4–v7 (rollups and totals computed from lines written before
    /// them) are SQLite's alone: every PostgreSQL ledger started at a schema that had them.
    static let migrations: [SQLMigration] = [
        SQLMigration(
            "v1: pools, holds, usage lines",
            sqlite: [
                """
                CREATE TABLE pools (
                    organization_id TEXT NOT NULL,
                    owner_type INTEGER NOT NULL,
                    owner_id TEXT NOT NULL,
                    mode INTEGER NOT NULL DEFAULT 0,
                    balance_micros INTEGER NOT NULL DEFAULT 0,
                    reserved_micros INTEGER NOT NULL DEFAULT 0,
                    limit_micros INTEGER,
                    refill_per_hour_micros INTEGER NOT NULL DEFAULT 0,
                    refilled_at INTEGER NOT NULL,
                    spent_micros INTEGER NOT NULL DEFAULT 0,
                    granted_micros INTEGER NOT NULL DEFAULT 0,
                    PRIMARY KEY (organization_id, owner_type, owner_id)
                ) WITHOUT ROWID;
                CREATE TABLE holds (
                    request_id TEXT PRIMARY KEY NOT NULL,
                    organization_id TEXT NOT NULL,
                    key_id TEXT NOT NULL,
                    owner_type INTEGER NOT NULL,
                    owner_id TEXT NOT NULL,
                    estimate_micros INTEGER NOT NULL,
                    created_at INTEGER NOT NULL,
                    expires_at INTEGER NOT NULL
                );
                CREATE INDEX holds_by_expiry ON holds(expires_at);
                CREATE TABLE usage_lines (
                    request_id TEXT PRIMARY KEY NOT NULL,
                    billing_transaction_id TEXT,
                    created_at INTEGER NOT NULL,
                    settled_at INTEGER,
                    organization_id TEXT NOT NULL,
                    key_id TEXT NOT NULL,
                    owner_type INTEGER NOT NULL,
                    owner_id TEXT NOT NULL,
                    logical_model TEXT NOT NULL,
                    model_vendor TEXT NOT NULL,
                    scene INTEGER NOT NULL,
                    access_channel INTEGER NOT NULL,
                    input_tokens INTEGER NOT NULL DEFAULT 0,
                    cached_input_tokens INTEGER NOT NULL DEFAULT 0,
                    output_tokens INTEGER NOT NULL DEFAULT 0,
                    cost_micros INTEGER NOT NULL,
                    latency_ms INTEGER NOT NULL DEFAULT 0,
                    status INTEGER NOT NULL,
                    estimated INTEGER NOT NULL DEFAULT 0
                );
                CREATE INDEX usage_by_key ON usage_lines(organization_id, key_id, created_at);

                """
            ],
            postgres: [
                #"""
                CREATE TABLE pools (
                    organization_id TEXT COLLATE "C" NOT NULL,
                    owner_type BIGINT NOT NULL,
                    owner_id TEXT COLLATE "C" NOT NULL,
                    mode BIGINT NOT NULL DEFAULT 0,
                    balance_micros BIGINT NOT NULL DEFAULT 0,
                    reserved_micros BIGINT NOT NULL DEFAULT 0,
                    limit_micros BIGINT,
                    refill_per_hour_micros BIGINT NOT NULL DEFAULT 0,
                    refilled_at BIGINT NOT NULL,
                    spent_micros BIGINT NOT NULL DEFAULT 0,
                    granted_micros BIGINT NOT NULL DEFAULT 0,
                    PRIMARY KEY (organization_id, owner_type, owner_id)
                )
                """#,
                #"""
                CREATE TABLE usage_lines (
                    request_id TEXT COLLATE "C" PRIMARY KEY NOT NULL,
                    billing_transaction_id TEXT COLLATE "C",
                    created_at BIGINT NOT NULL,
                    settled_at BIGINT,
                    organization_id TEXT COLLATE "C" NOT NULL,
                    key_id TEXT COLLATE "C" NOT NULL,
                    owner_type BIGINT NOT NULL,
                    owner_id TEXT COLLATE "C" NOT NULL,
                    logical_model TEXT COLLATE "C" NOT NULL,
                    model_vendor TEXT COLLATE "C" NOT NULL,
                    scene BIGINT NOT NULL,
                    access_channel BIGINT NOT NULL,
                    input_tokens BIGINT NOT NULL DEFAULT 0,
                    cached_input_tokens BIGINT NOT NULL DEFAULT 0,
                    output_tokens BIGINT NOT NULL DEFAULT 0,
                    cost_micros BIGINT NOT NULL,
                    latency_ms BIGINT NOT NULL DEFAULT 0,
                    status BIGINT NOT NULL,
                    estimated BOOLEAN NOT NULL DEFAULT FALSE
                )
                """#,
            ]
        ),
        SQLMigration(
            "v2: holds are the pending usage lines",
            sqlite: [
                """
                CREATE INDEX usage_pending ON usage_lines(created_at) WHERE status = 1;
                DROP TABLE holds;

                """
            ],
            postgres: []
        ),
        SQLMigration(
            "v3: lines settled by the reconciler are flagged",
            sqlite: [
                "ALTER TABLE usage_lines ADD COLUMN expired INTEGER NOT NULL DEFAULT 0"
            ],
            postgres: ["ALTER TABLE usage_lines ADD COLUMN expired BOOLEAN NOT NULL DEFAULT FALSE"]
        ),
        SQLMigration(
            "v4: grants, usage rollups, usage pages in index order",
            sqlite: [
                """
                CREATE TABLE grants (
                    id TEXT PRIMARY KEY NOT NULL,
                    organization_id TEXT NOT NULL,
                    owner_type INTEGER NOT NULL,
                    owner_id TEXT NOT NULL,
                    amount_micros INTEGER NOT NULL,
                    reason TEXT NOT NULL,
                    granted_by_user_id TEXT NOT NULL DEFAULT '',
                    idempotency_key TEXT,
                    created_at INTEGER NOT NULL
                );
                CREATE UNIQUE INDEX grants_by_idempotency_key ON grants(organization_id, idempotency_key)
                    WHERE idempotency_key IS NOT NULL;
                CREATE INDEX grants_by_owner ON grants(organization_id, owner_type, owner_id, created_at);
                CREATE INDEX grants_by_organization ON grants(organization_id, created_at);
                CREATE TABLE usage_rollups (
                    organization_id TEXT NOT NULL,
                    key_id TEXT NOT NULL,
                    span INTEGER NOT NULL,
                    bucket INTEGER NOT NULL,
                    logical_model TEXT NOT NULL,
                    model_vendor TEXT NOT NULL,
                    scene INTEGER NOT NULL,
                    access_channel INTEGER NOT NULL,
                    requests INTEGER NOT NULL,
                    input_tokens INTEGER NOT NULL,
                    cached_input_tokens INTEGER NOT NULL,
                    output_tokens INTEGER NOT NULL,
                    cost_micros INTEGER NOT NULL,
                    PRIMARY KEY (organization_id, key_id, span, bucket, logical_model, model_vendor, scene, access_channel)
                ) WITHOUT ROWID;
                CREATE TABLE ledger_settings (
                    name TEXT PRIMARY KEY NOT NULL,
                    value INTEGER NOT NULL
                );
                DROP INDEX usage_by_key;
                CREATE INDEX usage_by_key ON usage_lines(organization_id, key_id, created_at, request_id);

                """,
            ]
                // What was settled before: its hour and day rollups.
                + [Rollups.hour, Rollups.day].map { span in
                    """
                    INSERT INTO usage_rollups
                    SELECT organization_id, key_id, \(span), created_at - created_at % \(span), logical_model, model_vendor, scene,
                        access_channel, COUNT(*), SUM(input_tokens), SUM(cached_input_tokens), SUM(output_tokens), SUM(cost_micros)
                    FROM usage_lines WHERE status = 2
                    GROUP BY 1, 2, 3, 4, 5, 6, 7, 8
                    """
                },
            postgres: [
                #"""
                CREATE TABLE grants (
                    id TEXT COLLATE "C" PRIMARY KEY NOT NULL,
                    organization_id TEXT COLLATE "C" NOT NULL,
                    owner_type BIGINT NOT NULL,
                    owner_id TEXT COLLATE "C" NOT NULL,
                    amount_micros BIGINT NOT NULL,
                    reason TEXT COLLATE "C" NOT NULL,
                    granted_by_user_id TEXT COLLATE "C" NOT NULL DEFAULT '',
                    idempotency_key TEXT COLLATE "C",
                    created_at BIGINT NOT NULL
                )
                """#,
                """
                CREATE UNIQUE INDEX grants_by_idempotency_key ON grants(organization_id, idempotency_key)
                    WHERE idempotency_key IS NOT NULL
                """,
                "CREATE INDEX grants_by_owner ON grants(organization_id, owner_type, owner_id, created_at)",
                "CREATE INDEX grants_by_organization ON grants(organization_id, created_at)",
                #"""
                CREATE TABLE usage_rollups (
                    organization_id TEXT COLLATE "C" NOT NULL,
                    key_id TEXT COLLATE "C" NOT NULL,
                    span BIGINT NOT NULL,
                    bucket BIGINT NOT NULL,
                    logical_model TEXT COLLATE "C" NOT NULL,
                    model_vendor TEXT COLLATE "C" NOT NULL,
                    scene BIGINT NOT NULL,
                    access_channel BIGINT NOT NULL,
                    requests BIGINT NOT NULL,
                    input_tokens BIGINT NOT NULL,
                    cached_input_tokens BIGINT NOT NULL,
                    output_tokens BIGINT NOT NULL,
                    cost_micros BIGINT NOT NULL,
                    PRIMARY KEY (organization_id, key_id, span, bucket, logical_model, model_vendor, scene, access_channel)
                )
                """#,
                #"""
                CREATE TABLE ledger_settings (
                    name TEXT COLLATE "C" PRIMARY KEY NOT NULL,
                    value BIGINT NOT NULL
                )
                """#,
                "CREATE INDEX usage_by_key ON usage_lines(organization_id, key_id, created_at, request_id)",
            ]
        ),
        SQLMigration(
            "v5: key totals",
            sqlite: [
                """
                CREATE TABLE key_totals (
                    organization_id TEXT NOT NULL,
                    key_id TEXT NOT NULL,
                    requests INTEGER NOT NULL,
                    input_tokens INTEGER NOT NULL,
                    cached_input_tokens INTEGER NOT NULL,
                    output_tokens INTEGER NOT NULL,
                    cost_micros INTEGER NOT NULL,
                    last_used_at INTEGER,
                    PRIMARY KEY (organization_id, key_id)
                ) WITHOUT ROWID;
                INSERT INTO key_totals
                SELECT organization_id, key_id, SUM(requests), SUM(input_tokens), SUM(cached_input_tokens),
                    SUM(output_tokens), SUM(cost_micros), NULL
                FROM usage_rollups WHERE span = \(Rollups.day)
                GROUP BY organization_id, key_id;
                UPDATE key_totals SET last_used_at = coalesce(
                    (SELECT max(created_at) FROM usage_lines AS line
                     WHERE line.organization_id = key_totals.organization_id AND line.key_id = key_totals.key_id
                         AND line.status = 2),
                    (SELECT max(bucket) FROM usage_rollups AS rollup
                     WHERE rollup.organization_id = key_totals.organization_id AND rollup.key_id = key_totals.key_id
                         AND rollup.span = \(Rollups.hour)));

                """
            ],
            postgres: [
                #"""
                CREATE TABLE key_totals (
                    organization_id TEXT COLLATE "C" NOT NULL,
                    key_id TEXT COLLATE "C" NOT NULL,
                    requests BIGINT NOT NULL,
                    input_tokens BIGINT NOT NULL,
                    cached_input_tokens BIGINT NOT NULL,
                    output_tokens BIGINT NOT NULL,
                    cost_micros BIGINT NOT NULL,
                    last_used_at BIGINT,
                    PRIMARY KEY (organization_id, key_id)
                )
                """#
            ]
        ),
        SQLMigration(
            "v6: owner totals by model",
            sqlite: [
                OwnerTotals.migration
            ],
            postgres: [
                #"""
                CREATE TABLE owner_model_totals (
                    organization_id TEXT COLLATE "C" NOT NULL,
                    owner_type BIGINT NOT NULL,
                    owner_id TEXT COLLATE "C" NOT NULL,
                    logical_model TEXT COLLATE "C" NOT NULL,
                    requests BIGINT NOT NULL,
                    input_tokens BIGINT NOT NULL,
                    cached_input_tokens BIGINT NOT NULL,
                    output_tokens BIGINT NOT NULL,
                    cost_micros BIGINT NOT NULL,
                    last_used_at BIGINT NOT NULL,
                    PRIMARY KEY (organization_id, owner_type, owner_id, logical_model)
                )
                """#
            ]
        ),
        SQLMigration(
            "v7: where requests came from",
            sqlite: [
                OwnerTotals.originMigration
            ],
            postgres: [
                "ALTER TABLE usage_lines ADD COLUMN origin BIGINT NOT NULL DEFAULT 1",
                #"""
                CREATE TABLE owner_origin_totals (
                    organization_id TEXT COLLATE "C" NOT NULL,
                    owner_type BIGINT NOT NULL,
                    owner_id TEXT COLLATE "C" NOT NULL,
                    origin BIGINT NOT NULL,
                    requests BIGINT NOT NULL,
                    input_tokens BIGINT NOT NULL,
                    cached_input_tokens BIGINT NOT NULL,
                    output_tokens BIGINT NOT NULL,
                    cost_micros BIGINT NOT NULL,
                    last_used_at BIGINT NOT NULL,
                    PRIMARY KEY (organization_id, owner_type, owner_id, origin)
                )
                """#,
            ]
        ),
        SQLMigration(
            "v8: overruns",
            sqlite: [
                LedgerStore.overrunMigration
            ],
            postgres: [
                "ALTER TABLE usage_lines ADD COLUMN overrun_micros BIGINT NOT NULL DEFAULT 0",
                #"ALTER TABLE usage_lines ADD COLUMN backend_id TEXT COLLATE "C" NOT NULL DEFAULT ''"#,
                "CREATE INDEX usage_overruns ON usage_lines(organization_id) WHERE overrun_micros > 0",
            ]
        ),
        SQLMigration("v9: cache writes", sqlite: cacheWriteMigration("INTEGER"), postgres: cacheWriteMigration("BIGINT")),
        AuditTrail.migration("v10: the audit log"),
        AuditCheckpoint.migration("v11: the audit log's checkpoint"),
        SQLMigration(
            "v12: rollups by owner and by day",
            sqlite: UsageSeries.migration(integer: "INTEGER", text: "TEXT"),
            postgres: UsageSeries.migration(integer: "BIGINT", text: #"TEXT COLLATE "C""#)),
        SQLMigration(
            "v13: budget alerts",
            sqlite: AlertRules.migration(integer: "INTEGER", text: "TEXT"),
            postgres: AlertRules.migration(integer: "BIGINT", text: #"TEXT COLLATE "C""#)),
        SQLMigration(
            "v14: the request log",
            sqlite: RequestLog.migration(integer: "INTEGER", text: "TEXT"),
            postgres: RequestLog.migration(integer: "BIGINT", text: #"TEXT COLLATE "C""#)),
        SQLMigration(
            "v15: captured prompts and answers",
            sqlite: CaptureRules.migration(integer: "INTEGER", text: "TEXT", bool: "INTEGER"),
            postgres: CaptureRules.migration(integer: "BIGINT", text: #"TEXT COLLATE "C""#, bool: "BOOLEAN")),
        SQLMigration(
            "v16: open holds in a table of their own", sqlite: OpenHolds.migration(sqlite: true),
            postgres: OpenHolds.migration(sqlite: false)),
    ]

    /// v9: input tokens written to the provider's prompt cache, beside the cached ones, in every
    /// table that sums tokens (0 for what was recorded before: such writes were counted as input).
    static func cacheWriteMigration(_ type: String) -> [String] {
        ["usage_lines", "usage_rollups", "key_totals", "owner_model_totals", "owner_origin_totals"].map { table in
            "ALTER TABLE \(table) ADD COLUMN cache_write_tokens \(type) NOT NULL DEFAULT 0"
        }
    }

    static var migrator: DatabaseMigrator { migrations.sqliteMigrator }
}

/// A row of `pools`.
struct PoolRecord: Codable, Sendable, Equatable, FetchableRecord, PersistableRecord {
    static let databaseTableName = "pools"

    var organizationID: String
    var ownerType: Int
    var ownerID: String
    var mode: Int
    var balanceMicros: Int64
    var reservedMicros: Int64
    var limitMicros: Int64?
    var refillPerHourMicros: Int64
    var refilledAt: Int64
    var spentMicros: Int64
    var grantedMicros: Int64

    enum CodingKeys: String, CodingKey {
        case organizationID = "organization_id"
        case ownerType = "owner_type"
        case ownerID = "owner_id"
        case mode
        case balanceMicros = "balance_micros"
        case reservedMicros = "reserved_micros"
        case limitMicros = "limit_micros"
        case refillPerHourMicros = "refill_per_hour_micros"
        case refilledAt = "refilled_at"
        case spentMicros = "spent_micros"
        case grantedMicros = "granted_micros"
    }

    init(organizationID: String, ownerType: Int, ownerID: String, now: Int64) {
        self.organizationID = organizationID
        self.ownerType = ownerType
        self.ownerID = ownerID
        self.mode = Lumen_Ledger_V1_PoolMode.unspecified.rawValue
        self.balanceMicros = 0
        self.reservedMicros = 0
        self.limitMicros = nil
        self.refillPerHourMicros = 0
        self.refilledAt = now
        self.spentMicros = 0
        self.grantedMicros = 0
    }

    var poolMode: Lumen_Ledger_V1_PoolMode { .init(rawValue: mode) ?? .unspecified }

    static let columns = """
        organization_id, owner_type, owner_id, mode, balance_micros, reserved_micros, limit_micros, refill_per_hour_micros,
        refilled_at, spent_micros, granted_micros
        """

    /// A row read with `columns`.
    init(_ row: SQLRow) throws {
        self.organizationID = try row[0]
        self.ownerType = try row[1]
        self.ownerID = try row[2]
        self.mode = try row[3]
        self.balanceMicros = try row[4]
        self.reservedMicros = try row[5]
        self.limitMicros = try row[6]
        self.refillPerHourMicros = try row[7]
        self.refilledAt = try row[8]
        self.spentMicros = try row[9]
        self.grantedMicros = try row[10]
    }

    /// Applies the hourly refills due by `now`: each whole hour since the last refill adds
    /// the rate, never lifting the balance above the ceiling (a balance already above it,
    /// after a grant, stays).
    mutating func refill(now: Int64) {
        guard poolMode == .balance, refillPerHourMicros > 0, now > refilledAt else { return }
        let hours = (now - refilledAt) / PoolRecord.hourMillis
        guard hours > 0 else { return }
        refilledAt += hours * PoolRecord.hourMillis
        let ceiling = limitMicros ?? Int64.max
        guard balanceMicros < ceiling else { return }
        let (added, overflow) = refillPerHourMicros.multipliedReportingOverflow(by: hours)
        let (sum, overflow2) = balanceMicros.addingReportingOverflow(overflow ? Int64.max : added)
        balanceMicros = min(ceiling, overflow || overflow2 ? Int64.max : sum)
    }

    /// When the next refill happens, if one is due at all.
    var nextRefillAt: Int64? {
        guard poolMode == .balance, refillPerHourMicros > 0 else { return nil }
        return refilledAt + PoolRecord.hourMillis
    }

    static let hourMillis: Int64 = 3_600_000
}

/// A row of `grants`.
struct GrantRow: Codable, Sendable, Equatable, FetchableRecord, PersistableRecord {
    static let databaseTableName = "grants"

    var id: String
    var organizationID: String
    var ownerType: Int
    var ownerID: String
    var amountMicros: Int64
    var reason: String
    var grantedByUserID: String
    var idempotencyKey: String?
    var createdAt: Int64

    enum CodingKeys: String, CodingKey {
        case id
        case organizationID = "organization_id"
        case ownerType = "owner_type"
        case ownerID = "owner_id"
        case amountMicros = "amount_micros"
        case reason
        case grantedByUserID = "granted_by_user_id"
        case idempotencyKey = "idempotency_key"
        case createdAt = "created_at"
    }

    static let columns = "id, organization_id, owner_type, owner_id, amount_micros, reason, granted_by_user_id, idempotency_key, created_at"

    var message: Lumen_Ledger_V1_GrantRecord {
        .with {
            $0.id = id
            $0.owner = LedgerStore.principal(type: ownerType, id: ownerID)
            $0.amountMicros = amountMicros
            $0.reason = reason
            $0.grantedByUserID = grantedByUserID
            $0.createdAt = .init(millis: createdAt)
        }
    }
}

/// A row of `usage_lines`.
struct UsageLineRecord: Codable, Sendable, Equatable, FetchableRecord, PersistableRecord {
    static let databaseTableName = "usage_lines"

    var requestID: String
    var billingTransactionID: String?
    var createdAt: Int64
    var settledAt: Int64?
    var organizationID: String
    var keyID: String
    var ownerType: Int
    var ownerID: String
    var logicalModel: String
    var modelVendor: String
    var scene: Int
    var accessChannel: Int
    var inputTokens: Int64
    var cachedInputTokens: Int64
    var outputTokens: Int64
    var costMicros: Int64
    var latencyMs: Int64
    var status: Int
    var estimated: Bool
    var expired: Bool
    var origin: Int
    /// What the settlement charged above the hold (`UsageLine.overrun_micros`).
    var overrunMicros: Int64 = 0
    /// The backend that answered (`UsageLine.backend_id`).
    var backendID: String = ""
    /// Input tokens written to the provider's cache (`UsageLine.cache_write_tokens`).
    var cacheWriteTokens: Int64 = 0
    /// The HTTP status the caller got, the time to the answer's first byte, and a failed line's
    /// error (`UsageLine.http_status`, `ttft_ms`, `error_code`; v14).
    var httpStatus: Int = 0
    var ttftMs: Int64 = 0
    var errorCode: String = ""

    enum CodingKeys: String, CodingKey {
        case requestID = "request_id"
        case billingTransactionID = "billing_transaction_id"
        case createdAt = "created_at"
        case settledAt = "settled_at"
        case organizationID = "organization_id"
        case keyID = "key_id"
        case ownerType = "owner_type"
        case ownerID = "owner_id"
        case logicalModel = "logical_model"
        case modelVendor = "model_vendor"
        case scene
        case accessChannel = "access_channel"
        case inputTokens = "input_tokens"
        case cachedInputTokens = "cached_input_tokens"
        case outputTokens = "output_tokens"
        case costMicros = "cost_micros"
        case latencyMs = "latency_ms"
        case status
        case estimated
        case expired
        case origin
        case overrunMicros = "overrun_micros"
        case backendID = "backend_id"
        case cacheWriteTokens = "cache_write_tokens"
        case httpStatus = "http_status"
        case ttftMs = "ttft_ms"
        case errorCode = "error_code"
    }

    static let columns = """
        request_id, billing_transaction_id, created_at, settled_at, organization_id, key_id, owner_type, owner_id,
        logical_model, model_vendor, scene, access_channel, input_tokens, cached_input_tokens, output_tokens, cost_micros,
        latency_ms, status, estimated, expired, origin, overrun_micros, backend_id, cache_write_tokens, http_status, ttft_ms,
        error_code
        """

    var message: Lumen_Ledger_V1_UsageLine {
        .with {
            $0.requestID = requestID
            $0.billingTransactionID = billingTransactionID ?? ""
            $0.createdAt = .init(millis: createdAt)
            $0.organizationID = organizationID
            $0.keyID = keyID
            $0.owner = LedgerStore.principal(type: ownerType, id: ownerID)
            $0.logicalModel = logicalModel
            $0.modelVendor = modelVendor
            $0.scene = .init(rawValue: scene) ?? .unspecified
            $0.accessChannel = .init(rawValue: accessChannel) ?? .unspecified
            $0.inputTokens = inputTokens
            $0.cachedInputTokens = cachedInputTokens
            $0.cacheWriteTokens = cacheWriteTokens
            $0.outputTokens = outputTokens
            $0.costMicros = costMicros
            $0.latencyMs = latencyMs
            $0.status = .init(rawValue: status) ?? .unspecified
            $0.estimated = estimated
            $0.expired = expired
            $0.origin = .init(rawValue: origin) ?? .api
            $0.overrunMicros = overrunMicros
            $0.backendID = backendID
            $0.httpStatus = Int32(httpStatus)
            $0.ttftMs = ttftMs
            $0.errorCode = errorCode
        }
    }
}

extension GrantRow {
    /// A row read with `columns`.
    init(_ row: SQLRow) throws {
        self.init(
            id: try row[0],
            organizationID: try row[1],
            ownerType: try row[2],
            ownerID: try row[3],
            amountMicros: try row[4],
            reason: try row[5],
            grantedByUserID: try row[6],
            idempotencyKey: try row[7],
            createdAt: try row[8]
        )
    }
}

extension UsageLineRecord {
    /// A row read with `columns`.
    init(_ row: SQLRow) throws {
        self.init(
            requestID: try row[0],
            billingTransactionID: try row[1],
            createdAt: try row[2],
            settledAt: try row[3],
            organizationID: try row[4],
            keyID: try row[5],
            ownerType: try row[6],
            ownerID: try row[7],
            logicalModel: try row[8],
            modelVendor: try row[9],
            scene: try row[10],
            accessChannel: try row[11],
            inputTokens: try row[12],
            cachedInputTokens: try row[13],
            outputTokens: try row[14],
            costMicros: try row[15],
            latencyMs: try row[16],
            status: try row[17],
            estimated: try row[18],
            expired: try row[19],
            origin: try row[20],
            overrunMicros: try row[21],
            backendID: try row[22],
            cacheWriteTokens: try row[23],
            httpStatus: try row[24],
            ttftMs: try row[25],
            errorCode: try row[26]
        )
    }
}
