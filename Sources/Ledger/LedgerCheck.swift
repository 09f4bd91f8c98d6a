import GRDB
import LumenAPI
import Storage

/// The ledger's invariant, checked from the database alone (`lumen admin ledger check`):
/// every pool's `reserved_micros` equals the sum of the open holds (pending usage lines) on
/// its path — the key's own lines for a key pool, its owner's for a user or client pool, the
/// whole organisation's for the organisation pool. Reads one consistent snapshot, so it may
/// run while `lumen serve` writes.
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

    public struct Report: Sendable, Encodable {
        public var pools: Int
        public var openHolds: Int
        public var violations: [Violation]
        public var ok: Bool { violations.isEmpty }

        enum CodingKeys: String, CodingKey {
            case pools
            case openHolds = "open_holds"
            case violations
            case ok
        }

        public func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(pools, forKey: .pools)
            try container.encode(openHolds, forKey: .openHolds)
            try container.encode(violations, forKey: .violations)
            try container.encode(ok, forKey: .ok)
        }
    }

    /// Opens the ledger database at `location` and checks it.
    public static func run(location: ServiceDatabase.Location) async throws -> Report {
        let writer = try ServiceDatabase.open(name: "ledger", at: location, migrator: LedgerStore.migrator)
        return try await SQLiteStore(reading: writer).snapshot(check)
    }

    /// Checks the ledger on `db`, a snapshot (one committed state).
    static func check(_ db: any SQLSession) async throws -> Report {
        let (key, organization) = (Lumen_Common_V1_PrincipalType.key.rawValue, Lumen_Common_V1_PrincipalType.organization.rawValue)
        // Expected reservation per (organisation, owner type, owner id), from the open holds.
        // `status = 1` (pending) is written out so that the partial index of open holds applies.
        let rows = try await db.rows(
            """
            SELECT organization_id, CAST(? AS BIGINT) AS owner_type, key_id AS owner_id, CAST(SUM(cost_micros) AS BIGINT) AS held
                FROM usage_lines WHERE status = 1 AND key_id != '' GROUP BY organization_id, key_id
            UNION ALL
            SELECT organization_id, owner_type, owner_id, CAST(SUM(cost_micros) AS BIGINT)
                FROM usage_lines WHERE status = 1 AND owner_type != ? GROUP BY organization_id, owner_type, owner_id
            UNION ALL
            SELECT organization_id, CAST(? AS BIGINT), organization_id, CAST(SUM(cost_micros) AS BIGINT)
                FROM usage_lines WHERE status = 1 GROUP BY organization_id
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
        let open = try await db.value(Int.self, "SELECT COUNT(*) FROM usage_lines WHERE status = 1") ?? 0
        return Report(
            pools: pools.count, openHolds: open,
            violations: violations.sorted { ($0.organizationID, $0.owner) < ($1.organizationID, $1.owner) })
    }

    static func describe(_ type: Int, _ id: String) -> String {
        LedgerStore.principal(type: type, id: id).publicName
    }
}
