import Storage
import LumenAPI
import RPCSupport
import SharedRules

/// A validated `UsageFilter`: its key, its time range and its other conditions as SQL, shared
/// by the usage page, the usage total and billing.
struct UsageQuery: Sendable {
    let organizationID: String
    let keyID: String
    /// The filter's time bounds as a half-open range of `created_at` milliseconds.
    let range: Range<Int64>
    /// The filter's model, vendor, scene and channel conditions as SQL (` AND …`) and arguments.
    let dimensionsSQL: (String, [SQLValue])

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
        self.organizationID = organizationID
        self.keyID = filter.keyID
        let start = filter.hasStartTime ? max(0, filter.startTime.millis) : 0
        let end = filter.hasEndTime ? min(Self.endOfTime, filter.endTime.millis + 1) : Self.endOfTime
        self.range = start..<max(start, end)
        var sql = ""
        var arguments: [SQLValue] = []
        if !filter.logicalModel.isEmpty {
            sql += " AND logical_model = ?"
            arguments.append(.text(filter.logicalModel))
        }
        if !filter.modelVendor.isEmpty {
            sql += " AND model_vendor = ?"
            arguments.append(.text(filter.modelVendor))
        }
        if filter.scene != .unspecified {
            sql += " AND scene = ?"
            arguments.append(.of(filter.scene.rawValue))
        }
        if filter.accessChannel != .unspecified {
            sql += " AND access_channel = ?"
            arguments.append(.of(filter.accessChannel.rawValue))
        }
        self.dimensionsSQL = (sql, arguments)
    }

    /// A page of the lines created within `range`, newest first: the key's lines in the order
    /// of the `usage_by_key` index merged with its open holds (as pending lines).
    func page(_ db: any SQLSession, range: Range<Int64>, limit: Int, offset: Int) async throws -> [UsageLineRecord] {
        let (dimensions, dimensionArguments) = dimensionsSQL
        let arguments: [SQLValue] =
            [.text(organizationID), .text(keyID), .integer(range.lowerBound), .integer(range.upperBound)] + dimensionArguments
        return try await db.rows(
            """
            SELECT \(UsageLineRecord.columns) FROM usage_lines
            WHERE organization_id = ? AND key_id = ? AND created_at >= ? AND created_at < ? AND status <> 3\(dimensions)
            UNION ALL
            SELECT \(UsageLineRecord.columns) FROM \(OpenHolds.asLines)
            WHERE organization_id = ? AND key_id = ? AND created_at >= ? AND created_at < ?\(dimensions)
            ORDER BY created_at DESC, request_id DESC LIMIT ? OFFSET ?
            """,
            arguments + arguments + [.of(limit), .of(offset)]
        ).map(UsageLineRecord.init)
    }
}
