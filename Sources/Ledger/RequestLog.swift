import Foundation
import LumenAPI
import RPCSupport
import SharedRules
import Storage

/// The request log (`ListRequests`): every request's line — pending (an open hold), settled,
/// or failed (a released hold, kept with the status and error it ended with) — across the
/// organisation, newest first through `usage_by_organization`, filtered, at most `maxDepth` deep.
struct RequestLog: Sendable {
    /// How deep a page may reach (page × limit), and how far the total counts.
    static let maxDepth = 10_000

    let organizationID: String
    let condition: String
    let arguments: [SQLValue]
    let page: Page

    /// v14: what the caller got, the time to the first byte, a failed line's error, and the index
    /// the organisation's log is read through.
    static func migration(integer: String, text: String) -> [String] {
        [
            "ALTER TABLE usage_lines ADD COLUMN http_status \(integer) NOT NULL DEFAULT 0",
            "ALTER TABLE usage_lines ADD COLUMN ttft_ms \(integer) NOT NULL DEFAULT 0",
            "ALTER TABLE usage_lines ADD COLUMN error_code \(text) NOT NULL DEFAULT ''",
            "CREATE INDEX usage_by_organization ON usage_lines(organization_id, created_at)",
        ]
    }

    /// `owners`: the owners a member may see (nil: anyone of the organisation).
    init(_ request: Lumen_Ledger_V1_ListRequestsRequest, organizationID: String, owners: [Lumen_Common_V1_PrincipalRef]?) throws {
        for (value, name) in [(request.keyID, "key_id"), (request.logicalModel, "logical_model"), (request.backendID, "backend_id")]
        where value.count > 100 {
            throw ServiceError.invalid("invalid_\(name)", "\(name) is at most 100 characters", param: name)
        }
        if request.hasStartTime, request.hasEndTime, request.endTime.millis < request.startTime.millis {
            throw ServiceError.invalid("invalid_date_range", "end_time must not be before start_time", param: "end_time")
        }
        let page = try Page(request.page, defaultLimit: 50, maxLimit: 100)
        guard page.offset + page.limit <= Self.maxDepth else {
            throw ServiceError.invalid(
                "invalid_page", "a page reaches at most \(Self.maxDepth) requests deep; narrow it with the times", param: "page")
        }
        self.organizationID = organizationID
        self.page = page
        var sql = "organization_id = ?"
        var arguments: [SQLValue] = [.text(organizationID)]
        let start = request.hasStartTime ? max(0, request.startTime.millis) : 0
        let end = request.hasEndTime ? min(UsageQuery.endOfTime, request.endTime.millis + 1) : UsageQuery.endOfTime
        sql += " AND created_at >= ? AND created_at < ?"
        arguments += [.integer(start), .integer(end)]
        if !request.keyID.isEmpty {
            sql += " AND key_id = ?"
            arguments.append(.text(request.keyID))
        }
        if request.hasOwner {
            sql += " AND owner_type = ? AND owner_id = ?"
            arguments += [.of(request.owner.type.rawValue), .text(request.owner.id)]
        }
        if let owners {
            sql += " AND (" + owners.map { _ in "(owner_type = ? AND owner_id = ?)" }.joined(separator: " OR ") + ")"
            for owner in owners { arguments += [.of(owner.type.rawValue), .text(owner.id)] }
        }
        if !request.logicalModel.isEmpty {
            sql += " AND logical_model = ?"
            arguments.append(.text(request.logicalModel))
        }
        if !request.backendID.isEmpty {
            sql += " AND backend_id = ?"
            arguments.append(.text(request.backendID))
        }
        if request.status != .unspecified {
            sql += " AND status = ?"
            arguments.append(.of(request.status.rawValue))
        }
        self.condition = sql
        self.arguments = arguments
    }

    /// The page asked for, and how many lines match (counted up to `maxDepth` + 1): the
    /// organisation's lines in the order of `usage_by_organization` merged with its open holds
    /// (as pending lines).
    func fetch(_ db: any SQLSession) async throws -> (lines: [UsageLineRecord], total: Int) {
        let counted: Int64 = try await db.rows(
            """
            SELECT (SELECT COUNT(*) FROM (SELECT 1 FROM usage_lines WHERE \(condition) LIMIT \(Self.maxDepth + 1)) AS counted)
                + (SELECT COUNT(*) FROM \(OpenHolds.asLines) WHERE \(condition))
            """, arguments + arguments)[0][0]
        let total = min(counted, Int64(Self.maxDepth + 1))
        guard page.offset < total else { return ([], Int(total)) }
        let lines = try await db.rows(
            """
            SELECT \(UsageLineRecord.columns) FROM usage_lines WHERE \(condition)
            UNION ALL
            SELECT \(UsageLineRecord.columns) FROM \(OpenHolds.asLines) WHERE \(condition)
            ORDER BY created_at DESC, request_id DESC LIMIT ? OFFSET ?
            """, arguments + arguments + [.of(page.limit), .of(page.offset)]
        ).map(UsageLineRecord.init)
        return (lines, Int(total))
    }
}

extension LedgerService {
    func listRequests(_ request: Lumen_Ledger_V1_ListRequestsRequest) async throws -> Lumen_Ledger_V1_ListRequestsResponse {
        let organizationID = try Caller.organization(request.organizationID)
        var owners: [Lumen_Common_V1_PrincipalRef]?
        if request.hasOwner {
            guard request.owner.type == .user || request.owner.type == .client, !request.owner.id.isEmpty else {
                throw ServiceError.invalid("invalid_owner", "owner must be a user or a client", param: "owner")
            }
            try await requireExists(request.owner, organizationID: organizationID, param: "owner")
            try await requireActing(for: request.owner, organizationID: organizationID, param: "owner", to: "see requests")
        } else if let person = Caller.current?.person, !person.isAdmin {
            // A member's own requests and their clients'.
            owners = [.user(person.userID)] + person.managedClientIDs.sorted().map { .client($0) }
        }
        if !request.keyID.isEmpty {
            try await requireExists(.with { $0.type = .key; $0.id = request.keyID }, organizationID: organizationID, param: "key_id")
            try await requireActing(
                for: .with { $0.type = .key; $0.id = request.keyID }, organizationID: organizationID, param: "key_id", to: "see requests")
        }
        let log = try RequestLog(request, organizationID: organizationID, owners: owners)
        let now = clock.nowMillis
        let (lines, total, captured) = try await read(snapshot: true) { db in
            let (lines, total) = try await log.fetch(db)
            guard !lines.isEmpty else { return (lines, total, Set<String>()) }
            let ids = String(decoding: try JSONEncoder().encode(lines.map(\.requestID)), as: UTF8.self)
            let captured = try await db.rows(
                "SELECT request_id FROM request_captures WHERE request_id IN (\(db.dialect.jsonStrings)) AND expires_at > ?",
                [.text(ids), .integer(now)])
            return (lines, total, Set(try captured.map { try $0[0] as String }))
        }
        return .with {
            $0.lines = lines.map { line in
                var message = line.message
                message.captured = captured.contains(line.requestID)
                return message
            }
            $0.pageInfo = log.page.info(total: total)
        }
    }
}
