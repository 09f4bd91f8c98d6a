import LumenAPI

/// Offset pagination as every list call applies it (`lumen.common.v1.PageRequest`).
public struct Page: Sendable, Equatable {
    /// 1-based page number.
    public var number: Int
    /// Page size.
    public var limit: Int

    public var offset: Int { (number - 1) * limit }

    /// Page 0 means 1 and limit 0 means `defaultLimit`; a limit outside 1…`maxLimit` is
    /// INVALID_ARGUMENT (`invalid_limit`, param `limit`), a negative page `invalid_page`.
    public init(_ request: Lumen_Common_V1_PageRequest, defaultLimit: Int, maxLimit: Int) throws {
        guard request.page >= 0 else {
            throw ServiceError.invalid("invalid_page", "page must be at least 1", param: "page")
        }
        let limit = request.limit == 0 ? defaultLimit : Int(request.limit)
        guard (1...maxLimit).contains(limit) else {
            throw ServiceError.invalid("invalid_limit", "limit must be between 1 and \(maxLimit)", param: "limit")
        }
        self.number = max(1, Int(request.page))
        self.limit = limit
    }

    /// What the response says about this page, given the number of matching items.
    public func info(total: Int) -> Lumen_Common_V1_PageInfo {
        .with {
            $0.page = Int32(number)
            $0.limit = Int32(limit)
            $0.total = Int64(total)
            $0.hasMore_p = number * limit < total
        }
    }
}
