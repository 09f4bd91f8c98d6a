import GRDB
import LumenAPI
import RPCSupport

/// A validated `UsageFilter` as a query over `usage_lines`.
struct UsageQuery: Sendable {
    let request: QueryInterfaceRequest<UsageLineRecord>
    let organizationID: String
    let keyID: String
    /// The filter's time bounds as a half-open range of `created_at` milliseconds.
    let range: Range<Int64>
    /// The filter's model, vendor, scene and channel conditions as SQL (` AND …`) and arguments.
    let dimensionsSQL: (String, StatementArguments)

    /// Later than any time Lumen stores (year 9999), the end of an open range.
    static let endOfTime: Int64 = 253_402_300_800_000

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
        self.organizationID = organizationID
        self.keyID = filter.keyID
        let start = filter.hasStartTime ? max(0, filter.startTime.millis) : 0
        let end = filter.hasEndTime ? min(Self.endOfTime, filter.endTime.millis + 1) : Self.endOfTime
        self.range = start..<max(start, end)
        var sql = ""
        var arguments = StatementArguments()
        if !filter.logicalModel.isEmpty {
            sql += " AND logical_model = ?"
            arguments += [filter.logicalModel]
        }
        if !filter.modelVendor.isEmpty {
            sql += " AND model_vendor = ?"
            arguments += [filter.modelVendor]
        }
        if filter.scene != .unspecified {
            sql += " AND scene = ?"
            arguments += [filter.scene.rawValue]
        }
        if filter.accessChannel != .unspecified {
            sql += " AND access_channel = ?"
            arguments += [filter.accessChannel.rawValue]
        }
        self.dimensionsSQL = (sql, arguments)
    }
}
