import Foundation
import LumenAPI
import RPCSupport
import SharedRules
import Storage

/// Budget alerts: the rules (a pool's thresholds), the webhook endpoints, the alerts recorded
/// and their deliveries — the tables, the statements that write them (through the group
/// commit, like everything the ledger writes) and the rule that decides a crossing.
///
/// - `alert_rules`: a pool's thresholds, in percent of its reference spent.
/// - `alert_state`: per pool with rules, the reference (its limit, or its balance after its
///   latest top-up) and the thresholds crossed now — what `AlertMonitor` remembers.
/// - `alert_endpoints`: where an organisation's alerts are POSTed.
/// - `alert_events`: each crossing, once (`alt_…`, the receivers' idempotency id).
/// - `alert_deliveries`: each alert's delivery to each endpoint, retried until delivered or a
///   day has passed.
enum AlertRules {
    /// At most this many thresholds a pool.
    static let maxThresholds = 10

    /// v13: the alert tables.
    static func migration(integer: String, text: String) -> [String] {
        [
            """
            CREATE TABLE alert_rules (
                organization_id \(text) NOT NULL,
                owner_type \(integer) NOT NULL,
                owner_id \(text) NOT NULL,
                thresholds \(text) NOT NULL,
                updated_at \(integer) NOT NULL,
                PRIMARY KEY (organization_id, owner_type, owner_id)
            )
            """,
            """
            CREATE TABLE alert_state (
                organization_id \(text) NOT NULL,
                owner_type \(integer) NOT NULL,
                owner_id \(text) NOT NULL,
                reference_micros \(integer) NOT NULL,
                crossed \(text) NOT NULL,
                PRIMARY KEY (organization_id, owner_type, owner_id)
            )
            """,
            """
            CREATE TABLE alert_endpoints (
                id \(text) PRIMARY KEY NOT NULL,
                organization_id \(text) NOT NULL,
                url \(text) NOT NULL,
                format \(integer) NOT NULL,
                description \(text) NOT NULL,
                created_at \(integer) NOT NULL
            )
            """,
            "CREATE INDEX alert_endpoints_by_organization ON alert_endpoints(organization_id, created_at)",
            """
            CREATE TABLE alert_events (
                id \(text) PRIMARY KEY NOT NULL,
                organization_id \(text) NOT NULL,
                owner_type \(integer) NOT NULL,
                owner_id \(text) NOT NULL,
                threshold \(integer) NOT NULL,
                balance_micros \(integer) NOT NULL,
                reference_micros \(integer) NOT NULL,
                created_at \(integer) NOT NULL
            )
            """,
            """
            CREATE TABLE alert_deliveries (
                event_id \(text) NOT NULL,
                endpoint_id \(text) NOT NULL,
                organization_id \(text) NOT NULL,
                status \(integer) NOT NULL,
                attempts \(integer) NOT NULL,
                next_attempt_at \(integer) NOT NULL,
                last_status_code \(integer) NOT NULL,
                last_error \(text) NOT NULL,
                delivered_at \(integer),
                created_at \(integer) NOT NULL,
                PRIMARY KEY (event_id, endpoint_id)
            )
            """,
            "CREATE INDEX alert_deliveries_due ON alert_deliveries(next_attempt_at) WHERE status = 1",
            "CREATE INDEX alert_deliveries_by_organization ON alert_deliveries(organization_id, created_at)",
        ]
    }

    /// Thresholds as given: 1–10 distinct whole percents from 1 to 100, ascending.
    static func thresholds(_ given: [Int32]) throws -> [Int] {
        let sorted = Set(given).sorted().map(Int.init)
        guard sorted.count == given.count, sorted.count <= maxThresholds, sorted.allSatisfy({ (1...100).contains($0) }) else {
            throw ServiceError.invalid(
                "invalid_thresholds", "thresholds_percent must be at most \(maxThresholds) distinct whole percents from 1 to 100",
                param: "thresholds_percent")
        }
        return sorted
    }

    static func text(_ percents: [Int]) -> String { percents.map(String.init).joined(separator: ",") }
    static func percents(_ text: String) -> [Int] { text.split(separator: ",").compactMap { Int($0) } }

    // MARK: The rule

    /// A pool's rule and what the monitor remembers of it.
    struct Rule: Sendable, Equatable {
        var thresholds: [Int]
        /// What the thresholds are shares of; 0 until the pool has a limit or a balance.
        var reference: Int64 = 0
        var crossed: Set<Int> = []
    }

    /// What a pool's new state does to its rule: the rule as it stands after, and the highest
    /// threshold newly crossed (one alert for a jump across several).
    static func evaluate(_ rule: Rule, _ pool: PoolRecord) -> (rule: Rule, crossed: Int?) {
        var rule = rule
        guard pool.poolMode == .balance else {
            rule.crossed = []
            return (rule, nil)
        }
        // The limit when the pool has one; else the balance after its latest top-up.
        if let limit = pool.limitMicros {
            rule.reference = limit
        } else if pool.balanceMicros > rule.reference {
            rule.reference = pool.balanceMicros
        }
        guard rule.reference > 0 else { return (rule, nil) }
        var newly: Int?
        for threshold in rule.thresholds {
            // Crossed when `threshold`% of the reference is spent: the balance at or below the rest.
            let rest = rule.reference - rule.reference / 100 * Int64(threshold) - rule.reference % 100 * Int64(threshold) / 100
            if pool.balanceMicros <= rest {
                if rule.crossed.insert(threshold).inserted { newly = threshold }
            } else {
                rule.crossed.remove(threshold)
            }
        }
        rule.crossed.formIntersection(rule.thresholds)
        return (rule, newly)
    }

    // MARK: Statements

    static let ruleKey: [BulkStatement.Column] = [.text("organization_id"), .bigint("owner_type"), .text("owner_id")]

    static let setRule = BulkStatement.insert(
        into: "alert_rules", ruleKey + [.text("thresholds"), .bigint("updated_at")], onConflict: ruleKey.map(\.name),
        merge: ["thresholds": .replace, "updated_at": .replace])
    static let deleteRule = BulkStatement.delete(from: "alert_rules", key: ruleKey)
    static let setState = BulkStatement.insert(
        into: "alert_state", ruleKey + [.bigint("reference_micros"), .text("crossed")], onConflict: ruleKey.map(\.name),
        merge: ["reference_micros": .replace, "crossed": .replace])
    static let deleteState = BulkStatement.delete(from: "alert_state", key: ruleKey)
    static let insertEndpoint = BulkStatement.insert(
        into: "alert_endpoints",
        [.text("id"), .text("organization_id"), .text("url"), .bigint("format"), .text("description"), .bigint("created_at")])
    static let deleteEndpoint = BulkStatement.delete(from: "alert_endpoints", key: [.text("id")])
    static let deleteDeliveries = BulkStatement.delete(from: "alert_deliveries", key: [.text("endpoint_id")])
    static let insertEvent = BulkStatement.insert(
        into: "alert_events",
        [
            .text("id"), .text("organization_id"), .bigint("owner_type"), .text("owner_id"), .bigint("threshold"),
            .bigint("balance_micros"), .bigint("reference_micros"), .bigint("created_at"),
        ])
    static let insertDelivery = BulkStatement.insert(
        into: "alert_deliveries",
        [
            .text("event_id"), .text("endpoint_id"), .text("organization_id"), .bigint("status"), .bigint("attempts"),
            .bigint("next_attempt_at"), .bigint("last_status_code"), .text("last_error"), .bigint("created_at"),
        ])
    static let recordAttempt = BulkStatement.update(
        "alert_deliveries", key: [.text("event_id"), .text("endpoint_id")],
        set: [.bigint("status"), .bigint("attempts"), .bigint("next_attempt_at"), .bigint("last_status_code"), .text("last_error"), .bigint("delivered_at")])

    static func key(_ pool: Book.PoolKey) -> [SQLValue] { [.text(pool.organizationID), .of(pool.ownerType), .text(pool.ownerID)] }

    /// The rows a write names, with the statement that writes them.
    struct Write: Sendable {
        var statement: BulkStatement
        var rows: [[SQLValue]]
    }
}

/// A webhook endpoint as stored.
struct AlertEndpointRecord: Sendable {
    var id: String
    var organizationID: String
    var url: String
    var format: Lumen_Ledger_V1_AlertFormat
    var description: String
    var createdAt: Int64

    static let columns = "id, organization_id, url, format, description, created_at"

    init(id: String, organizationID: String, url: String, format: Lumen_Ledger_V1_AlertFormat, description: String, createdAt: Int64) {
        (self.id, self.organizationID, self.url, self.format, self.description, self.createdAt) =
            (id, organizationID, url, format, description, createdAt)
    }

    init(_ row: SQLRow) throws {
        id = try row[0]
        organizationID = try row[1]
        url = try row[2]
        format = Lumen_Ledger_V1_AlertFormat(rawValue: try row[3]) ?? .json
        description = try row[4]
        createdAt = try row[5]
    }

    var row: [SQLValue] { [.text(id), .text(organizationID), .text(url), .of(format.rawValue), .text(description), .integer(createdAt)] }

    var message: Lumen_Ledger_V1_AlertEndpoint {
        .with {
            $0.id = id
            $0.url = url
            $0.format = format
            $0.description_p = description
            $0.createdAt = .init(millis: createdAt)
        }
    }
}
