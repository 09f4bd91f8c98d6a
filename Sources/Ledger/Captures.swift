import Audit
import Foundation
import LumenAPI
import RPCSupport
import SharedRules
import Storage
import Synchronization

/// Capturing prompts and answers: off by default; an administrator turns it on for the
/// organisation, a client or a key (the most specific setting applies). The reserve says
/// whether to capture (from the settings held here, in memory), the gateway sends what it
/// captured with the settlement, and the settlement writes it in `request_captures` with the
/// day it is to be deleted; the reconciler deletes what expired. Nothing captured is ever logged.
///
/// - `capture_rules`: a setting per organisation, client or key.
/// - `request_captures`: a request's prompt and answer until `expires_at`.
final class CaptureRules: Sendable {
    static let maxBytes: ClosedRange<Int64> = 1_024...1_048_576
    static let retentionDays: ClosedRange<Int32> = 1...90

    private struct State {
        var rules: [Book.PoolKey: Lumen_Ledger_V1_CaptureRule] = [:]
        var loaded = false
    }

    private let state = Mutex(State())
    /// Whether any setting is on, and whether they were read: a reserve asks nothing else (and
    /// takes no lock) while nothing is captured.
    private let anyEnabled = Atomic<Bool>(false)
    private let loaded = Atomic<Bool>(false)

    /// v15: the capture tables.
    static func migration(integer: String, text: String, bool: String) -> [String] {
        [
            """
            CREATE TABLE capture_rules (
                organization_id \(text) NOT NULL,
                owner_type \(integer) NOT NULL,
                owner_id \(text) NOT NULL,
                enabled \(bool) NOT NULL,
                retention_days \(integer) NOT NULL,
                max_bytes \(integer) NOT NULL,
                updated_at \(integer) NOT NULL,
                PRIMARY KEY (organization_id, owner_type, owner_id)
            )
            """,
            """
            CREATE TABLE request_captures (
                request_id \(text) PRIMARY KEY NOT NULL,
                organization_id \(text) NOT NULL,
                created_at \(integer) NOT NULL,
                expires_at \(integer) NOT NULL,
                prompt \(text) NOT NULL,
                answer \(text) NOT NULL,
                truncated \(bool) NOT NULL
            )
            """,
            "CREATE INDEX request_captures_by_expiry ON request_captures(expires_at)",
        ]
    }

    static let ruleKey: [BulkStatement.Column] = [.text("organization_id"), .bigint("owner_type"), .text("owner_id")]
    static let setRule = BulkStatement.insert(
        into: "capture_rules",
        ruleKey + [.boolean("enabled"), .bigint("retention_days"), .bigint("max_bytes"), .bigint("updated_at")],
        onConflict: ruleKey.map(\.name),
        merge: ["enabled": .replace, "retention_days": .replace, "max_bytes": .replace, "updated_at": .replace])
    static let insertCapture = BulkStatement.insert(
        into: "request_captures",
        [
            .text("request_id"), .text("organization_id"), .bigint("created_at"), .bigint("expires_at"), .text("prompt"),
            .text("answer"), .boolean("truncated"),
        ], onConflict: ["request_id"], merge: ["prompt": .replace, "answer": .replace, "truncated": .replace])
    static let deleteExpired = BulkStatement.deleteUpTo(from: "request_captures", column: .bigint("expires_at"))

    /// The settings as stored, read once.
    func load(_ ledger: LedgerService) async throws {
        guard !state.withLock({ $0.loaded }) else { return }
        let rows = try await ledger.read { db in
            try await db.rows(
                "SELECT organization_id, owner_type, owner_id, enabled, retention_days, max_bytes FROM capture_rules", [])
        }
        var rules: [Book.PoolKey: Lumen_Ledger_V1_CaptureRule] = [:]
        for row in rows {
            let key = Book.PoolKey(organizationID: try row[0], ownerType: try row[1], ownerID: try row[2])
            rules[key] = .with {
                $0.owner = LedgerStore.principal(type: key.ownerType, id: key.ownerID)
                $0.enabled = (try? row[3] as Bool) ?? false
                $0.retentionDays = Int32((try? row[4] as Int64) ?? 1)
                $0.maxBytes = (try? row[5] as Int64) ?? Self.maxBytes.lowerBound
            }
        }
        state.withLock { state in
            guard !state.loaded else { return }
            state.rules.merge(rules) { current, _ in current }
            state.loaded = true
            anyEnabled.store(state.rules.values.contains(where: \.enabled), ordering: .relaxed)
            loaded.store(true, ordering: .releasing)
        }
    }

    /// How a request of `keyID` (owned by `owner`) in `organizationID` is captured, if it is.
    func settings(_ ledger: LedgerService, organizationID: String, owner: Lumen_Common_V1_PrincipalRef, keyID: String) async throws
        -> Lumen_Ledger_V1_CaptureSettings?
    {
        if loaded.load(ordering: .acquiring) {
            guard anyEnabled.load(ordering: .relaxed) else { return nil }
        } else {
            try await load(ledger)
        }
        return state.withLock { state in
            var candidates = [Book.PoolKey(organizationID: organizationID, ownerType: Lumen_Common_V1_PrincipalType.key.rawValue, ownerID: keyID)]
            if owner.type == .client { candidates.append(Book.PoolKey(organizationID: organizationID, owner: owner)) }
            candidates.append(Book.PoolKey(organizationID: organizationID, ownerType: Lumen_Common_V1_PrincipalType.organization.rawValue, ownerID: organizationID))
            var found: Lumen_Ledger_V1_CaptureRule?
            for candidate in candidates where found == nil { found = state.rules[candidate] }
            guard let rule = found, rule.enabled else { return nil }
            return .with {
                $0.maxBytes = rule.maxBytes
                $0.retentionDays = rule.retentionDays
            }
        }
    }

    func set(_ key: Book.PoolKey, _ rule: Lumen_Ledger_V1_CaptureRule) {
        state.withLock { state in
            state.rules[key] = rule
            anyEnabled.store(state.rules.values.contains(where: \.enabled), ordering: .relaxed)
        }
    }

    func rules(of organizationID: String) -> [Lumen_Ledger_V1_CaptureRule] {
        state.withLock { state in
            state.rules.filter { $0.key.organizationID == organizationID }
                .sorted { ($0.key.ownerType, $0.key.ownerID) < ($1.key.ownerType, $1.key.ownerID) }.map(\.value)
        }
    }
}

extension LedgerService {
    func setCapture(_ request: Lumen_Ledger_V1_SetCaptureRequest) async throws -> Lumen_Ledger_V1_SetCaptureResponse {
        let organizationID = try Caller.organization(request.organizationID)
        var rule = request.rule
        guard [.organization, .client, .key].contains(rule.owner.type) else {
            throw ServiceError.invalid("invalid_owner", "capture is set for the organisation, a client or a key", param: "owner")
        }
        let key = try PoolAdministration.poolKey(organizationID: organizationID, owner: rule.owner)
        rule.owner = LedgerStore.principal(type: key.ownerType, id: key.ownerID)
        try await requireExists(rule.owner, organizationID: organizationID, param: "owner")
        try Caller.requireAdmin(to: "set capture")
        guard CaptureRules.retentionDays.contains(rule.retentionDays) else {
            throw ServiceError.invalid("invalid_retention_days", "retention_days must be from 1 to 90", param: "retention_days")
        }
        guard CaptureRules.maxBytes.contains(rule.maxBytes) else {
            throw ServiceError.invalid("invalid_max_bytes", "max_bytes must be from 1,024 to 1,048,576", param: "max_bytes")
        }
        try await captures.load(self)
        let before = captures.rules(of: organizationID).first { $0.owner == rule.owner }
        if before != rule {
            let now = clock.nowMillis
            var audit = ServiceAudit.entry("capture.set", rule.owner.type.publicName, key.ownerID, organizationID: organizationID, at: now)
            func json(_ rule: Lumen_Ledger_V1_CaptureRule?) -> String {
                guard let rule else { return "" }
                return AuditTrail.json(CaptureAudit(enabled: rule.enabled, retention_days: rule.retentionDays, max_bytes: rule.maxBytes))
            }
            audit.before = json(before)
            audit.after = json(rule)
            let row: [SQLValue] = [
                .text(key.organizationID), .of(key.ownerType), .text(key.ownerID), .bool(rule.enabled), .of(Int(rule.retentionDays)),
                .integer(rule.maxBytes), .integer(now),
            ]
            _ = try await meter(.write([.init(statement: CaptureRules.setRule, rows: [row])], audit: audit))
            captures.set(key, rule)
            logger.notice(
                "capture set", metadata: ["organization_id": "\(organizationID)", "owner": "\(LedgerCheck.describe(key.ownerType, key.ownerID))",
                    "enabled": "\(rule.enabled)", "retention_days": "\(rule.retentionDays)"])
        }
        return .with { $0.rule = rule }
    }

    func listCaptures(_ request: Lumen_Ledger_V1_ListCapturesRequest) async throws -> Lumen_Ledger_V1_ListCapturesResponse {
        let organizationID = try Caller.organization(request.organizationID)
        try Caller.requireAdmin(to: "see capture settings")
        try await captures.load(self)
        return .with { $0.rules = captures.rules(of: organizationID) }
    }

    func getRequestCapture(_ request: Lumen_Ledger_V1_GetRequestCaptureRequest) async throws -> Lumen_Ledger_V1_GetRequestCaptureResponse {
        let organizationID = try Caller.organization(request.organizationID)
        let notFound = ServiceError(.notFound, "capture_not_found", "request \(request.requestID) has no captured prompt and answer", param: "request_id")
        let requestID = request.requestID
        let found = try await read(snapshot: true) { db in
            try await db.rows(
                """
                SELECT line.owner_type, line.owner_id, capture.prompt, capture.answer, capture.truncated, capture.expires_at
                FROM request_captures AS capture JOIN usage_lines AS line ON line.request_id = capture.request_id
                WHERE capture.request_id = ? AND capture.organization_id = ? AND capture.expires_at > ?
                """, [.text(requestID), .text(organizationID), .integer(clock.nowMillis)]
            ).first
        }
        guard let found else { throw notFound }
        let owner = LedgerStore.principal(type: try found[0], id: try found[1])
        // Whoever may see the request: administrators; a member for themselves and their clients.
        do {
            try await requireActing(for: owner, organizationID: organizationID, param: "request_id", to: "see requests")
        } catch let refusal as ServiceError where refusal.status == .permissionDenied {
            throw notFound
        }
        return .with {
            $0.capture = .with {
                $0.prompt = (try? found[2] as String) ?? ""
                $0.answer = (try? found[3] as String) ?? ""
                $0.truncated = (try? found[4] as Bool) ?? false
                $0.expiresAt = .init(millis: (try? found[5] as Int64) ?? 0)
            }
        }
    }

    /// Deletes the captures whose time is up; called by the reconciler.
    func pruneCaptures() async throws {
        _ = try await meter(.write([.init(statement: CaptureRules.deleteExpired, rows: [[.integer(clock.nowMillis)]])], audit: nil))
    }
}

/// A capture setting as its audit entries show it.
private struct CaptureAudit: Encodable {
    var enabled: Bool
    var retention_days: Int32
    var max_bytes: Int64
}
