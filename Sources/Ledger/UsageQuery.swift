import GRDB
import LumenAPI
import RPCSupport

/// A validated `UsageFilter` as a query over `usage_lines`.
struct UsageQuery: Sendable {
    let request: QueryInterfaceRequest<UsageLineRecord>

    /// - Throws: INVALID_ARGUMENT naming the field at fault: `key_id` missing, `logical_model`
    ///   or `model_vendor` over 100 characters, `end_time` before `start_time`.
    init(_ filter: Lumen_Ledger_V1_UsageFilter, organizationID: String) throws {
        guard !filter.keyID.isEmpty else {
            throw ServiceError.invalid("key_required", "key_id is required", param: "key_id")
        }
        guard filter.logicalModel.count <= 100 else {
            throw ServiceError.invalid("invalid_logical_model", "logical_model is at most 100 characters", param: "logical_model")
        }
        guard filter.modelVendor.count <= 100 else {
            throw ServiceError.invalid("invalid_model_vendor", "model_vendor is at most 100 characters", param: "model_vendor")
        }
        if filter.hasStartTime, filter.hasEndTime, filter.endTime.millis < filter.startTime.millis {
            throw ServiceError.invalid("invalid_date_range", "end_time must not be before start_time", param: "end_time")
        }
        var query = UsageLineRecord.filter(Column("organization_id") == organizationID && Column("key_id") == filter.keyID)
        if !filter.logicalModel.isEmpty { query = query.filter(Column("logical_model") == filter.logicalModel) }
        if !filter.modelVendor.isEmpty { query = query.filter(Column("model_vendor") == filter.modelVendor) }
        if filter.scene != .unspecified { query = query.filter(Column("scene") == filter.scene.rawValue) }
        if filter.accessChannel != .unspecified {
            query = query.filter(Column("access_channel") == filter.accessChannel.rawValue)
        }
        if filter.hasStartTime { query = query.filter(Column("created_at") >= filter.startTime.millis) }
        if filter.hasEndTime { query = query.filter(Column("created_at") <= filter.endTime.millis) }
        self.request = query
    }
}
