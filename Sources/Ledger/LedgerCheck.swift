import GRDB
import LumenAPI
import Storage

/// The ledger's invariants, checked from the database alone (`lumen admin ledger check`):
/// every pool's `reserved_micros` equals the sum of the open holds (pending usage lines) on
/// its path — the key's own lines for a key pool, its owner's for a user or client pool, the
/// whole organisation's for the organisation pool; and no BALANCE pool is further below zero
/// than the overruns charged on its path (holds bound their requests, so only an upstream past
/// its bound takes a pool below zero). Overruns are listed. Reads one consistent snapshot, so
/// it may run while `lumen serve` writes.
public enum LedgerCheck {
    /// A pool whose reservation disagrees with its open holds.
    public struct Violation: Sendable, Equatable, Encodable {
        public var organizationID: String
        /// The pool's owner as `type:id` (`user:usr_…`, `organization:org_…`).
        public var owner: String
        public var reservedMicros: Int64
        public var openHoldsMicros: Int64
        /// The pool's owner as a message.
        var principal: Lumen_Common_V1_PrincipalRef

        public init(organizationID: String, ownerType: Int, ownerID: String, reservedMicros: Int64, openHoldsMicros: Int64) {
            self.organizationID = organizationID
            self.owner = LedgerCheck.describe(ownerType, ownerID)
            self.reservedMicros = reservedMicros
            self.openHoldsMicros = openHoldsMicros
            self.principal = LedgerStore.principal(type: ownerType, id: ownerID)
        }

        enum CodingKeys: String, CodingKey {
            case organizationID = "organization_id"
            case owner
            case reservedMicros = "reserved_micros"
            case openHoldsMicros = "open_holds_micros"
        }
    }

    /// A usage line whose settlement charged more than its hold.
    public struct Overrun: Sendable, Equatable, Encodable {
        public var requestID: String
        public var organizationID: String
        public var keyID: String
        /// The key's owner as `type:id`.
        public var owner: String
        public var logicalModel: String
        public var costMicros: Int64
        public var overrunMicros: Int64

        enum CodingKeys: String, CodingKey {
            case requestID = "request_id"
            case organizationID = "organization_id"
            case keyID = "key_id"
            case owner
            case logicalModel = "logical_model"
            case costMicros = "cost_micros"
            case overrunMicros = "overrun_micros"
        }
    }

    /// A BALANCE pool below zero, with the overruns on its path that explain it.
    public struct PoolBelowZero: Sendable, Equatable, Encodable {
        public var organizationID: String
        /// The pool's owner as `type:id`.
        public var owner: String
        public var balanceMicros: Int64
        public var overrunMicros: Int64
        /// Further below zero than the overruns charged on its path: a violation.
        public var unexplained: Bool { -balanceMicros > overrunMicros }
        var principal: Lumen_Common_V1_PrincipalRef

        enum CodingKeys: String, CodingKey {
            case organizationID = "organization_id"
            case owner
            case balanceMicros = "balance_micros"
            case overrunMicros = "overrun_micros"
            case unexplained
        }

        public func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(organizationID, forKey: .organizationID)
            try container.encode(owner, forKey: .owner)
            try container.encode(balanceMicros, forKey: .balanceMicros)
            try container.encode(overrunMicros, forKey: .overrunMicros)
            try container.encode(unexplained, forKey: .unexplained)
        }
    }

    public struct Report: Sendable, Encodable {
        public var pools: Int
        public var openHolds: Int
        public var violations: [Violation]
        /// Every overrun line kept, newest first, at most `overrunsListed`.
        public var overruns: [Overrun] = []
        /// All overrun lines kept, and what they charged above their holds.
        public var overrunLines: Int = 0
        public var overrunMicros: Int64 = 0
        public var poolsBelowZero: [PoolBelowZero] = []
        public var ok: Bool { violations.isEmpty && !poolsBelowZero.contains(where: \.unexplained) }

        enum CodingKeys: String, CodingKey {
            case pools
            case openHolds = "open_holds"
            case violations
            case overrunLines = "overrun_lines"
            case overrunMicros = "overrun_micros"
            case overruns
            case poolsBelowZero = "pools_below_zero"
            case ok
        }

        public func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(pools, forKey: .pools)
            try container.encode(openHolds, forKey: .openHolds)
            try container.encode(violations, forKey: .violations)
            try container.encode(overrunLines, forKey: .overrunLines)
            try container.encode(overrunMicros, forKey: .overrunMicros)
            try container.encode(overruns, forKey: .overruns)
            try container.encode(poolsBelowZero, forKey: .poolsBelowZero)
            try container.encode(ok, forKey: .ok)
        }
    }

    /// Overrun lines listed in a report at most (all are counted).
    static let overrunsListed = 1_000

    /// Opens the ledger database at `location` and checks it.
    public static func run(location: ServiceDatabase.Location) async throws -> Report {
        let writer = try ServiceDatabase.open(name: "ledger", at: location, migrator: LedgerStore.migrator)
        return try await SQLiteStore(reading: writer).snapshot(check)
    }

    /// Checks the ledger on `db`, a snapshot (one committed state).
    static func check(_ db: any SQLSession) async throws -> Report {
        let (key, organization) = (Lumen_Common_V1_PrincipalType.key.rawValue, Lumen_Common_V1_PrincipalType.organization.rawValue)
        // Expected reservation per (organisation, owner type, owner id), from the open holds.
        let rows = try await db.rows(
            """
            SELECT organization_id, CAST(? AS BIGINT) AS owner_type, key_id AS owner_id, CAST(SUM(estimate_micros) AS BIGINT) AS held
                FROM usage_holds WHERE key_id != '' GROUP BY organization_id, key_id
            UNION ALL
            SELECT organization_id, owner_type, owner_id, CAST(SUM(estimate_micros) AS BIGINT)
                FROM usage_holds WHERE owner_type != ? GROUP BY organization_id, owner_type, owner_id
            UNION ALL
            SELECT organization_id, CAST(? AS BIGINT), organization_id, CAST(SUM(estimate_micros) AS BIGINT)
                FROM usage_holds GROUP BY organization_id
            """, [.of(key), .of(organization), .of(organization)])
        var expected: [String: (String, Int, String, Int64)] = [:]
        for row in rows {
            let (org, type, id, held): (String, Int, String, Int64) = (try row[0], try row[1], try row[2], try row[3])
            expected[org + "\u{0}\(type)\u{0}" + id] = (org, type, id, held)
        }
        var violations: [Violation] = []
        let pools = try await db.rows("SELECT \(PoolRecord.columns) FROM pools").map(PoolRecord.init)
        for pool in pools {
            let id = pool.organizationID + "\u{0}\(pool.ownerType)\u{0}" + pool.ownerID
            let held = expected.removeValue(forKey: id)?.3 ?? 0
            if held != pool.reservedMicros {
                violations.append(Violation(
                    organizationID: pool.organizationID, ownerType: pool.ownerType, ownerID: pool.ownerID,
                    reservedMicros: pool.reservedMicros, openHoldsMicros: held))
            }
        }
        // Holds on a path whose pool has no row at all (a reservation never recorded).
        for (org, type, id, held) in expected.values where held != 0 {
            violations.append(Violation(organizationID: org, ownerType: type, ownerID: id, reservedMicros: 0, openHoldsMicros: held))
        }
        let open = try await db.value(Int.self, "SELECT COUNT(*) FROM usage_holds") ?? 0
        var report = Report(
            pools: pools.count, openHolds: open,
            violations: violations.sorted { ($0.organizationID, $0.owner) < ($1.organizationID, $1.owner) })
        try await overruns(db, pools: pools, into: &report)
        return report
    }

    /// The overrun lines (found by the partial index `usage_overruns`) and the pools below zero.
    static func overruns(_ db: any SQLSession, pools: [PoolRecord], into report: inout Report) async throws {
        let rows = try await db.rows(
            """
            SELECT request_id, organization_id, key_id, owner_type, owner_id, logical_model, cost_micros, overrun_micros, created_at
                FROM usage_lines WHERE overrun_micros > 0
            """)
        // What overruns charged above their holds on each pool's path.
        var onPath: [String: Int64] = [:]
        var lines: [(Overrun, Int64)] = []
        let (keyType, organizationType) = (Lumen_Common_V1_PrincipalType.key.rawValue, Lumen_Common_V1_PrincipalType.organization.rawValue)
        for row in rows {
            let (requestID, org, keyID, ownerType, ownerID): (String, String, String, Int, String) =
                (try row[0], try row[1], try row[2], try row[3], try row[4])
            let (model, cost, overrun, created): (String, Int64, Int64, Int64) = (try row[5], try row[6], try row[7], try row[8])
            report.overrunLines += 1
            report.overrunMicros += overrun
            if !keyID.isEmpty { onPath[org + "\u{0}\(keyType)\u{0}" + keyID, default: 0] += overrun }
            if ownerType != organizationType { onPath[org + "\u{0}\(ownerType)\u{0}" + ownerID, default: 0] += overrun }
            onPath[org + "\u{0}\(organizationType)\u{0}" + org, default: 0] += overrun
            lines.append((
                Overrun(
                    requestID: requestID, organizationID: org, keyID: keyID, owner: describe(ownerType, ownerID),
                    logicalModel: model, costMicros: cost, overrunMicros: overrun), created))
        }
        report.overruns = lines.sorted { ($0.1, $0.0.requestID) > ($1.1, $1.0.requestID) }.prefix(overrunsListed).map(\.0)
        report.poolsBelowZero = pools.filter { $0.poolMode == .balance && $0.balanceMicros < 0 }.map { pool in
            PoolBelowZero(
                organizationID: pool.organizationID, owner: describe(pool.ownerType, pool.ownerID), balanceMicros: pool.balanceMicros,
                overrunMicros: onPath[pool.organizationID + "\u{0}\(pool.ownerType)\u{0}" + pool.ownerID] ?? 0,
                principal: LedgerStore.principal(type: pool.ownerType, id: pool.ownerID))
        }.sorted { ($0.organizationID, $0.owner) < ($1.organizationID, $1.owner) }
    }

    static func describe(_ type: Int, _ id: String) -> String {
        LedgerStore.principal(type: type, id: id).publicName
    }
}
