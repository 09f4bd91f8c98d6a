import Audit
import Foundation
import GRPCCore
import LumenAPI
import RPCSupport
import SharedRules
import Storage

/// Budget alerts' RPCs: the administrators' rules and webhooks, and what was sent (`AlertRules`).
extension LedgerService {
    /// At most this many webhook endpoints an organisation.
    static let maxAlertEndpoints = 10

    func setPoolAlerts(_ request: Lumen_Ledger_V1_SetPoolAlertsRequest) async throws -> Lumen_Ledger_V1_SetPoolAlertsResponse {
        let organizationID = try Caller.organization(request.organizationID)
        let key = try PoolAdministration.poolKey(organizationID: organizationID, owner: request.owner)
        try await requireExists(request.owner, organizationID: organizationID, param: "owner")
        try Caller.requireAdmin(to: "set budget alerts")
        let thresholds = try AlertRules.thresholds(request.thresholdsPercent)
        let before = try await read { db in
            try await db.rows(
                "SELECT thresholds FROM alert_rules WHERE organization_id = ? AND owner_type = ? AND owner_id = ?", AlertRules.key(key)
            ).first.map { AlertRules.percents(try $0[0]) } ?? []
        }
        if before != thresholds {
            let now = clock.nowMillis
            var audit = ServiceAudit.entry("pool.alerts", "pool", key.ownerID, organizationID: organizationID, at: now)
            audit.before = AuditTrail.json(["thresholds_percent": before])
            audit.after = AuditTrail.json(["thresholds_percent": thresholds])
            let writes: [AlertRules.Write] =
                thresholds.isEmpty
                ? [.init(statement: AlertRules.deleteRule, rows: [AlertRules.key(key)]),
                   .init(statement: AlertRules.deleteState, rows: [AlertRules.key(key)])]
                : [.init(statement: AlertRules.setRule, rows: [AlertRules.key(key) + [.text(AlertRules.text(thresholds)), .integer(now)]])]
            _ = try await meter(.write(writes, audit: audit))
            alerts.ruleChanged(key, thresholds: thresholds)
            // Evaluated now, so that the answer says what is crossed (and a pool already past a
            // threshold alerts at once); the monitor would otherwise do it next.
            do {
                try await alerts.process(self)
            } catch {
                logger.error("budget alerts: evaluation failed; retried with the next change", metadata: ["error": "\(error)"])
            }
            logger.notice(
                "budget alerts set", metadata: ["organization_id": "\(organizationID)", "owner": "\(LedgerCheck.describe(key.ownerType, key.ownerID))",
                    "thresholds_percent": "\(AlertRules.text(thresholds))"])
        }
        return .with { $0.alerts = poolAlerts(key, thresholds: thresholds) }
    }

    func getPoolAlerts(_ request: Lumen_Ledger_V1_GetPoolAlertsRequest) async throws -> Lumen_Ledger_V1_GetPoolAlertsResponse {
        let organizationID = try Caller.organization(request.organizationID)
        let key = try PoolAdministration.poolKey(organizationID: organizationID, owner: request.owner)
        try await requireExists(request.owner, organizationID: organizationID, param: "owner")
        try await requireActing(for: request.owner, organizationID: organizationID, param: "owner", to: "see pools")
        let stored = try await read { db in
            try await db.rows(
                """
                SELECT rule.thresholds, coalesce(state.reference_micros, 0), coalesce(state.crossed, '')
                FROM alert_rules AS rule LEFT JOIN alert_state AS state
                    ON state.organization_id = rule.organization_id AND state.owner_type = rule.owner_type AND state.owner_id = rule.owner_id
                WHERE rule.organization_id = ? AND rule.owner_type = ? AND rule.owner_id = ?
                """, AlertRules.key(key)
            ).first.map { row in
                AlertRules.Rule(thresholds: AlertRules.percents(try row[0]), reference: try row[1], crossed: Set(AlertRules.percents(try row[2])))
            }
        }
        return .with { $0.alerts = poolAlerts(key, thresholds: stored?.thresholds ?? [], stored: stored) }
    }

    /// A pool's alerts as answered: what the monitor holds now, else what was stored.
    func poolAlerts(_ key: Book.PoolKey, thresholds: [Int], stored: AlertRules.Rule? = nil) -> Lumen_Ledger_V1_PoolAlerts {
        let held = alerts.rule(key) ?? stored
        return .with {
            $0.owner = LedgerStore.principal(type: key.ownerType, id: key.ownerID)
            $0.thresholdsPercent = thresholds.map(Int32.init)
            $0.crossedPercent = (held?.crossed ?? []).filter(thresholds.contains).sorted().map(Int32.init)
            $0.referenceMicros = held?.reference ?? 0
        }
    }

    func createAlertEndpoint(_ request: Lumen_Ledger_V1_CreateAlertEndpointRequest) async throws -> Lumen_Ledger_V1_CreateAlertEndpointResponse {
        let organizationID = try Caller.organization(request.organizationID)
        try Caller.requireAdmin(to: "add alert webhooks")
        try alertSettings.validate(request.url)
        guard request.description_p.count <= 200 else {
            throw ServiceError.invalid("invalid_description", "description is at most 200 characters", param: "description")
        }
        guard [.unspecified, .json, .slack].contains(request.format) else {
            throw ServiceError.invalid("invalid_format", "format must be JSON or SLACK", param: "format")
        }
        let count: Int64 = try await read { db in
            try await db.rows("SELECT COUNT(*) FROM alert_endpoints WHERE organization_id = ?", [.text(organizationID)])[0][0]
        }
        guard count < Self.maxAlertEndpoints else {
            throw ServiceError(
                .failedPrecondition, "too_many_endpoints", "an organisation has at most \(Self.maxAlertEndpoints) alert webhooks; delete one first")
        }
        let now = clock.nowMillis
        let endpoint = AlertEndpointRecord(
            id: Identifier.make("whk"), organizationID: organizationID, url: request.url,
            format: request.format == .slack ? .slack : .json, description: request.description_p, createdAt: now)
        var audit = ServiceAudit.entry("alert_endpoint.create", "alert_endpoint", endpoint.id, organizationID: organizationID, at: now)
        audit.after = AuditTrail.json(["url": endpoint.url, "format": endpoint.format == .slack ? "slack" : "json", "description": endpoint.description])
        _ = try await meter(.write([.init(statement: AlertRules.insertEndpoint, rows: [endpoint.row])], audit: audit))
        logger.notice("alert webhook added", metadata: ["organization_id": "\(organizationID)", "endpoint_id": "\(endpoint.id)"])
        return .with {
            $0.endpoint = endpoint.message
            $0.secret = alertSettings.secret(for: endpoint.id)
        }
    }

    func alertEndpoints(_ organizationID: String) async throws -> [AlertEndpointRecord] {
        try await read { db in
            try await db.rows(
                "SELECT \(AlertEndpointRecord.columns) FROM alert_endpoints WHERE organization_id = ? ORDER BY created_at, id",
                [.text(organizationID)]
            ).map(AlertEndpointRecord.init)
        }
    }

    func listAlertEndpoints(_ request: Lumen_Ledger_V1_ListAlertEndpointsRequest) async throws -> Lumen_Ledger_V1_ListAlertEndpointsResponse {
        let organizationID = try Caller.organization(request.organizationID)
        try Caller.requireAdmin(to: "see alert webhooks")
        let endpoints = try await alertEndpoints(organizationID)
        return .with { $0.endpoints = endpoints.map(\.message) }
    }

    func deleteAlertEndpoint(_ request: Lumen_Ledger_V1_DeleteAlertEndpointRequest) async throws -> Lumen_Ledger_V1_DeleteAlertEndpointResponse {
        let organizationID = try Caller.organization(request.organizationID)
        try Caller.requireAdmin(to: "delete alert webhooks")
        guard let endpoint = try await alertEndpoints(organizationID).first(where: { $0.id == request.endpointID }) else {
            throw ServiceError(.notFound, "endpoint_not_found", "no alert webhook \(request.endpointID)", param: "endpoint_id")
        }
        var audit = ServiceAudit.entry("alert_endpoint.delete", "alert_endpoint", endpoint.id, organizationID: organizationID, at: clock.nowMillis)
        audit.before = AuditTrail.json(["url": endpoint.url, "format": endpoint.format == .slack ? "slack" : "json", "description": endpoint.description])
        _ = try await meter(
            .write(
                [.init(statement: AlertRules.deleteEndpoint, rows: [[.text(endpoint.id)]]),
                 .init(statement: AlertRules.deleteDeliveries, rows: [[.text(endpoint.id)]])], audit: audit))
        logger.notice("alert webhook deleted", metadata: ["organization_id": "\(organizationID)", "endpoint_id": "\(endpoint.id)"])
        return .init()
    }

    func listAlertDeliveries(_ request: Lumen_Ledger_V1_ListAlertDeliveriesRequest) async throws -> Lumen_Ledger_V1_ListAlertDeliveriesResponse {
        let organizationID = try Caller.organization(request.organizationID)
        try Caller.requireAdmin(to: "see alert deliveries")
        let page = try Page(request.page, defaultLimit: 50, maxLimit: 100)
        var condition = "delivery.organization_id = ?"
        var arguments: [SQLValue] = [.text(organizationID)]
        if request.status != .unspecified {
            condition += " AND delivery.status = ?"
            arguments.append(.of(request.status.rawValue))
        }
        let (rows, total) = try await read(snapshot: true) { [condition, arguments] db in
            let total: Int64 = try await db.rows("SELECT COUNT(*) FROM alert_deliveries AS delivery WHERE \(condition)", arguments)[0][0]
            let rows = try await db.rows(
                """
                SELECT delivery.event_id, delivery.endpoint_id, event.owner_type, event.owner_id, event.threshold, event.balance_micros,
                    event.reference_micros, event.created_at, delivery.status, delivery.attempts, delivery.next_attempt_at,
                    delivery.last_status_code, delivery.last_error, delivery.delivered_at
                FROM alert_deliveries AS delivery JOIN alert_events AS event ON event.id = delivery.event_id
                WHERE \(condition)
                ORDER BY delivery.created_at DESC, delivery.event_id DESC, delivery.endpoint_id LIMIT ? OFFSET ?
                """, arguments + [.of(page.limit), .of(page.offset)])
            return (rows, Int(total))
        }
        let deliveries = try rows.map { row in
            var delivery = Lumen_Ledger_V1_AlertDelivery()
            delivery.alertID = try row[0]
            delivery.endpointID = try row[1]
            delivery.owner = LedgerStore.principal(type: try row[2], id: try row[3])
            delivery.thresholdPercent = Int32(try row[4] as Int64)
            delivery.balanceMicros = try row[5]
            delivery.referenceMicros = try row[6]
            delivery.createdAt = .init(millis: try row[7])
            delivery.status = .init(rawValue: try row[8]) ?? .unspecified
            delivery.attempts = Int32(try row[9] as Int64)
            if delivery.status == .pending { delivery.nextAttemptAt = .init(millis: try row[10]) }
            delivery.lastStatusCode = Int32(try row[11] as Int64)
            delivery.lastError = try row[12]
            if let delivered: Int64 = try row[13] { delivery.deliveredAt = .init(millis: delivered) }
            return delivery
        }
        return .with {
            $0.deliveries = deliveries
            $0.pageInfo = page.info(total: total)
        }
    }
}
