import LumenAPI

/// One page of a list as the management API and `/api` answer it:
/// `{"object": "list", "data", "page", "limit", "total", "has_more"}`.
public struct ListPage<Item: Encodable & Sendable>: Encodable, Sendable {
    var object = "list"
    var data: [Item]
    var page: Int
    var limit: Int
    var total: Int64
    var hasMore: Bool

    public init(_ data: [Item], _ info: Lumen_Common_V1_PageInfo) {
        self.data = data
        page = Int(info.page)
        limit = Int(info.limit)
        total = info.total
        hasMore = info.hasMore_p
    }

    enum CodingKeys: String, CodingKey {
        case object, data, page, limit, total
        case hasMore = "has_more"
    }
}
