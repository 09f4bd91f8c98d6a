import LumenAPI
import RPCSupport
import SharedRules
import Storage

/// What every service's audit log shares above its storage (`Storage.AuditTrail`): an entry
/// naming the current caller and where the call came from, who may read which entries, and the
/// entries and checks as the API shows them.
public enum ServiceAudit {
    /// An entry of the current caller (`Caller.current`: `internal` outside a call) from where
    /// the call came (`CallOrigin.current`), made at `at`: what the service's store completes
    /// with the target's values before and after and records with the change. `actor` names
    /// another actor where the caller acts for someone it has just identified (a sign-in).
    public static func entry(
        _ action: String, _ targetType: String, _ targetID: String, organizationID: String = "",
        actor: (type: String, id: String)? = nil, at: Int64
    ) -> AuditEntry {
        let origin = CallOrigin.current
        let caller = Caller.current ?? .internal
        // Lumen's own caller on behalf of a command on the machine: the account that ran it.
        let actor = actor ?? (caller == .internal && !origin.localUser.isEmpty ? (type: "cli", id: origin.localUser) : caller.auditActor)
        return AuditEntry(
            at: at, organizationID: organizationID, actorType: actor.type, actorID: actor.id, action: action,
            targetType: targetType, targetID: targetID, requestID: origin.requestID, clientAddress: origin.clientAddress)
    }

    /// A page of a service's audit log for the current caller: all of it for operators and
    /// Lumen's own processes, an organisation's entries for its administrators (a management
    /// token, a person who is an administrator); PERMISSION_DENIED for others. Oldest first after
    /// a sequence, or newest first by offset with the total (`newest_first`), filtered.
    public static func list(
        _ request: Lumen_Common_V1_ListAuditLogRequest, from log: some AuditLogged
    ) async throws -> Lumen_Common_V1_ListAuditLogResponse {
        let organizationID: String?
        switch try Caller.require() {
        case .internal, .operator: organizationID = nil
        case .management(let organization, _, _): organizationID = organization
        case .person(let person) where person.isAdmin: organizationID = person.organizationID
        case .person:
            throw ServiceError(.permissionDenied, "admin_only", "the audit log is for the organisation's administrators")
        }
        let limit = request.limit == 0 ? 100 : Int(request.limit)
        guard (1...1_000).contains(limit) else {
            throw ServiceError(.invalidArgument, "invalid_limit", "limit is 1–1000", param: "limit")
        }
        var filter = try self.filter(request)
        filter.organizationID = organizationID
        guard request.newestFirst else {
            let records = try await log.auditRecords(after: request.afterSequence, limit: limit + 1, matching: filter)
            return .with {
                $0.entries = records.prefix(limit).map(\.message)
                $0.hasMore_p = records.count > limit
            }
        }
        guard (0...100_000).contains(request.offset) else {
            throw ServiceError(.invalidArgument, "invalid_offset", "offset is 0–100000", param: "offset")
        }
        let (records, total) = try await log.newestAuditRecords(matching: filter, offset: Int(request.offset), limit: limit)
        return .with {
            $0.entries = records.map(\.message)
            $0.total = total
            $0.hasMore_p = Int64(request.offset) + Int64(records.count) < total
        }
    }

    /// The filters of `request` (without the organisation), checked.
    static func filter(_ request: Lumen_Common_V1_ListAuditLogRequest) throws -> AuditFilter {
        func given(_ value: String, _ param: String) throws -> String? {
            guard value.utf8.count <= 320 else {
                throw ServiceError(.invalidArgument, "invalid_filter", "\(param) is at most 320 characters", param: param)
            }
            return value.isEmpty ? nil : value
        }
        let filter = AuditFilter(
            actorType: try given(request.actorType, "actor_type"), actorID: try given(request.actorID, "actor_id"),
            action: try given(request.action, "action"), targetType: try given(request.targetType, "target_type"),
            targetID: try given(request.targetID, "target_id"), from: request.hasStartTime ? request.startTime.millis : nil,
            to: request.hasEndTime ? request.endTime.millis : nil)
        if let from = filter.from, let to = filter.to, to < from {
            throw ServiceError(.invalidArgument, "invalid_filter", "end_time is before start_time", param: "end_time")
        }
        return filter
    }

    /// A service's whole chain checked (`verify`), for operators and Lumen's own processes only.
    public static func verify(_ log: some AuditLogged, signer: AuditSigner?) async throws -> Lumen_Common_V1_VerifyAuditLogResponse {
        try Caller.requireOperator("the audit log's integrity is the deployment's to check")
        switch try await log.verifyAudit(signer: signer) {
        case .intact(let count, let head, let prunedThrough):
            return .with {
                $0.intact = true
                $0.entries = count
                $0.headHash = head
                $0.prunedThrough = prunedThrough
            }
        case .broken(let sequence, let reason, let checked):
            return .with {
                $0.entries = checked
                $0.brokenSequence = sequence
                $0.reason = reason
            }
        }
    }
}

extension AuditRecord {
    /// The entry as the API shows it.
    public var message: Lumen_Common_V1_AuditEntry {
        .with {
            $0.sequence = sequence
            $0.time = .init(millis: entry.at)
            $0.organizationID = entry.organizationID
            $0.actorType = entry.actorType
            $0.actorID = entry.actorID
            $0.action = entry.action
            $0.targetType = entry.targetType
            $0.targetID = entry.targetID
            $0.beforeJson = entry.before
            $0.afterJson = entry.after
            $0.requestID = entry.requestID
            $0.clientAddress = entry.clientAddress
            $0.previousHash = previousHash
            $0.hash = hash
        }
    }
}
