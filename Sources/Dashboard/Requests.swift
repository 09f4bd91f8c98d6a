import Foundation
import Gateway
import Hummingbird
import WireFormats

/// Reading `/api` request bodies: a JSON object (an empty body is `{}`), at most 16 KiB, each
/// field checked by its name through the shared `RequestRules`, unknown fields refused (400
/// `unknown_parameter`) so that a typo never goes unnoticed.
enum Body {
    static let maxBytes = 16 * 1024

    static func object(_ request: Request) async throws -> [String: JSONValue] {
        let buffer = try await request.body.collect(upTo: maxBytes)
        return try JSONValue.object(from: buffer.readableBytesView)
    }

    static func refuseUnknown(_ body: [String: JSONValue], allowed: Set<String>) throws {
        try RequestRules.refuseUnknown(body, allowed: allowed)
    }

    /// A required, non-empty string field.
    static func text(_ body: [String: JSONValue], _ name: String) throws -> String {
        guard let value = try optionalText(body, name), !value.isEmpty else {
            throw APIError.invalid("invalid_\(name)", "\(name) is required (a string)", param: name)
        }
        return value
    }

    /// A string field, or nil when absent or null.
    static func optionalText(_ body: [String: JSONValue], _ name: String) throws -> String? {
        try RequestRules.text(body[name], field: name)
    }

    /// A boolean field, or nil when absent or null.
    static func optionalBool(_ body: [String: JSONValue], _ name: String) throws -> Bool? {
        try RequestRules.bool(body[name], field: name)
    }

    /// A decimal number field (exact: read from the JSON text), or nil when absent or null.
    static func optionalDecimal(_ body: [String: JSONValue], _ name: String) throws -> Decimal? {
        try RequestRules.decimal(body[name], field: name)
    }
}

/// A list's query: `sort`, `order` (`asc`, `desc`), `query` (the name contains it, any case)
/// and `show_deleted` / `show_disabled`; anything else is 400 `unknown_parameter`.
struct ListQuery {
    var sort: String
    var descending: Bool
    /// What the name must contain (any case), as given.
    var text: String?
    var showDeleted = false
    var showDisabled = false
    /// The page asked for (`page`, from 1), where the list is paged (`pageable`).
    var page = 1

    init(sort: String, descending: Bool = false, text: String? = nil, showDeleted: Bool = false, page: Int = 1) {
        self.sort = sort
        self.descending = descending
        self.text = text
        self.showDeleted = showDeleted
        self.page = page
    }

    /// `pageable`: a page of the dashboard, which also takes `page` and lets other parameters
    /// be (a link may carry more); `/api` refuses what it does not know.
    init(_ request: Request, sorts: [String], defaultSort: String, flags: Set<String> = ["show_deleted"], pageable: Bool = false) throws {
        let known = Set(["sort", "order", "query"]).union(flags).union(pageable ? ["page"] : [])
        let values = try RequestRules.query(request.uri.queryParameters, known: known, lenient: pageable)
        sort = try RequestRules.choice(values, "sort", among: sorts, otherwise: defaultSort)
        descending = try RequestRules.choice(values, "order", among: ["asc", "desc"], otherwise: "asc") == "desc"
        text = values["query"].flatMap { $0.isEmpty ? nil : $0 }
        showDeleted = flags.contains("show_deleted") ? try RequestRules.flag(values, "show_deleted") : false
        showDisabled = flags.contains("show_disabled") ? try RequestRules.flag(values, "show_disabled") : false
        page = try RequestRules.page(values) ?? 1
    }

    /// Whether `name` contains the query (always, without one).
    func matches(_ name: String) -> Bool {
        guard let text else { return true }
        return name.lowercased().contains(text.lowercased())
    }

    /// `items` in the asked order; ties keep the order they came in.
    func sorted<T>(_ items: [T], by key: (T, String) -> SortValue) throws -> [T] {
        let ordered = items.enumerated().sorted { a, b in
            let (x, y) = (key(a.element, sort), key(b.element, sort))
            if x == y { return a.offset < b.offset }
            return descending ? y < x : x < y
        }
        return ordered.map(\.element)
    }
}

/// What a column sorts by.
enum SortValue: Equatable, Comparable {
    case number(Int64)
    case text(String)

    static func < (a: SortValue, b: SortValue) -> Bool {
        switch (a, b) {
        case (.number(let x), .number(let y)): x < y
        case (.text(let x), .text(let y)): x < y
        case (.number, .text): true
        case (.text, .number): false
        }
    }
}

/// `{"object": "list", "data": […]}`.
struct ListOf<Item: Encodable & Sendable>: Encodable, Sendable {
    var object = "list"
    var data: [Item]

    init(data: [Item]) { self.data = data }
}
