import Foundation
import Hummingbird
import LumenAPI
import SharedRules
import WireFormats

/// The rules of a request's inputs, one set for the management API and the dashboard's `/api`:
/// a query string's parameters (each known and given once, pages and limits, switches) and a
/// JSON body's fields (unknown ones refused, each of its type), every refusal a 400 naming the
/// parameter or field at fault. What the values mean is the services' to judge.
public enum RequestRules {
    // MARK: Query strings

    /// The query's parameters by name, each given once (400 `duplicate_parameter`) and known
    /// (400 `unknown_parameter`) — unless `lenient`: a dashboard page, whose links may carry
    /// more, lets the others be.
    public static func query(_ parameters: Parameters, known: Set<String>, lenient: Bool = false) throws(APIError) -> [String: String] {
        var values: [String: String] = [:]
        for (name, value) in parameters {
            let name = String(name)
            guard known.contains(name) else {
                if lenient { continue }
                throw APIError.invalid(
                    "unknown_parameter", "unknown query parameter \(name); known: \(known.sorted().joined(separator: ", "))", param: name)
            }
            guard values[name] == nil else {
                throw APIError.invalid("duplicate_parameter", "\(name) is given more than once", param: name)
            }
            values[name] = String(value)
        }
        return values
    }

    /// Every parameter's name and value must percent-decode to UTF-8 text: decoded otherwise,
    /// bad bytes would silently become U+FFFD and filter for something nobody asked for.
    public static func checkEncoding(_ query: String?) throws(APIError) {
        guard let query else { return }
        for pair in query.split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let name = String(parts[0]).removingPercentEncoding
            guard name != nil, parts.count < 2 || String(parts[1]).removingPercentEncoding != nil else {
                let param = name ?? String(parts[0])
                throw APIError.invalid("invalid_encoding", "the query parameter \(param) is not UTF-8 text", param: param)
            }
        }
    }

    /// `page`, from 1 (400 `invalid_page`); nil when not given.
    public static func page(_ values: [String: String], max: Int = 1_000_000) throws(APIError) -> Int? {
        guard let text = values["page"] else { return nil }
        guard let page = Int(text), (1...max).contains(page) else {
            throw APIError.invalid("invalid_page", "page must be a whole number, at least 1", param: "page")
        }
        return page
    }

    /// `limit`, from 1 to `max` (400 `invalid_limit`); nil when not given.
    public static func limit(_ values: [String: String], max: Int) throws(APIError) -> Int? {
        guard let text = values["limit"] else { return nil }
        guard let limit = Int(text), (1...max).contains(limit) else {
            throw APIError.invalid("invalid_limit", "limit must be a whole number from 1 to \(max)", param: "limit")
        }
        return limit
    }

    /// A whole-number parameter within `range` (400 `code` otherwise); nil when not given.
    public static func number(_ values: [String: String], _ name: String, in range: ClosedRange<Int32>, code: String) throws(APIError) -> Int32? {
        guard let text = values[name] else { return nil }
        guard let number = Int32(text), range.contains(number) else {
            throw APIError.invalid(code, "\(name) must be a whole number from \(range.lowerBound) to \(range.upperBound)", param: name)
        }
        return number
    }

    /// `userId` or `clientId`: whose usage or requests (400 `invalid_owner` for both); nil for neither.
    public static func owner(_ values: [String: String]) throws(APIError) -> Lumen_Common_V1_PrincipalRef? {
        switch (values["userId"], values["clientId"]) {
        case (let user?, nil): return .user(user)
        case (nil, let client?): return .client(client)
        case (nil, nil): return nil
        case (_?, _?): throw APIError.invalid("invalid_owner", "give userId or clientId, not both", param: "clientId")
        }
    }

    /// `page` and `limit` as the services take them (unset: the service's defaults).
    public static func pageRequest(_ values: [String: String], maxLimit: Int) throws(APIError) -> Lumen_Common_V1_PageRequest {
        var request = Lumen_Common_V1_PageRequest()
        if let page = try page(values, max: Int(Int32.max)) { request.page = Int32(page) }
        if let limit = try limit(values, max: maxLimit) { request.limit = Int32(limit) }
        return request
    }

    /// `startDate` and `endDate` in milliseconds, each YYYY-MM-DD or an RFC 3339 date-time with a
    /// zone, both included (a bare end day up to its last millisecond); 400 `invalid_start_date`,
    /// `invalid_end_date`, or `invalid_date_range` for an end before the start.
    public static func dateRange(_ values: [String: String]) throws(APIError) -> (start: Int64?, end: Int64?) {
        var start: Int64?
        var end: Int64?
        if let text = values["startDate"] {
            guard let millis = RFC3339.parseMillis(text) ?? RFC3339.parseDateMillis(text) else {
                throw APIError.invalid(
                    "invalid_start_date", "startDate must be YYYY-MM-DD or an RFC 3339 date-time with a time zone",
                    param: "startDate")
            }
            start = millis
        }
        if let text = values["endDate"] {
            // A bare day is inclusive: up to its last millisecond.
            guard let millis = RFC3339.parseMillis(text) ?? RFC3339.parseDateMillis(text).map({ $0 + 86_400_000 - 1 }) else {
                throw APIError.invalid(
                    "invalid_end_date", "endDate must be YYYY-MM-DD or an RFC 3339 date-time with a time zone", param: "endDate")
            }
            end = millis
        }
        if let start, let end, end < start {
            throw APIError.invalid("invalid_date_range", "startDate must be earlier than or equal to endDate", param: "endDate")
        }
        return (start, end)
    }

    /// A switch: `true`/`1` or `false`/`0` (400 `invalid_<name>`); false when not given.
    public static func flag(_ values: [String: String], _ name: String) throws(APIError) -> Bool {
        switch values[name] {
        case nil, "false", "0": return false
        case "true", "1": return true
        default: throw APIError.invalid("invalid_\(name)", "\(name) is true or false", param: name)
        }
    }

    /// One of `choices` (400 `invalid_<name>`), `otherwise` when not given.
    public static func choice(_ values: [String: String], _ name: String, among choices: [String], otherwise: String) throws(APIError) -> String {
        let value = values[name] ?? otherwise
        guard choices.contains(value) else {
            throw APIError.invalid("invalid_\(name)", "\(name) is one of \(choices.joined(separator: ", "))", param: name)
        }
        return value
    }

    // MARK: JSON bodies

    /// Refuses a field not in `allowed` (400 `unknown_parameter`, naming the known ones).
    public static func refuseUnknown(_ body: [String: JSONValue], allowed: Set<String>) throws(APIError) {
        if let unknown = body.keys.sorted().first(where: { !allowed.contains($0) }) {
            throw APIError.invalid(
                "unknown_parameter", "unknown field \(unknown); known: \(allowed.sorted().joined(separator: ", "))", param: unknown)
        }
    }

    /// A string field: nil when absent (or null where `nullable`); 400 `code` when of another type.
    public static func text(_ value: JSONValue?, field: String, code: String? = nil, nullable: Bool = true) throws(APIError) -> String? {
        switch value {
        case nil: return nil
        case .null? where nullable: return nil
        case .string(let text)?: return text
        case let other?:
            throw APIError.invalid(code ?? "invalid_\(field)", "\(field) must be a string, not \(other.typeName)", param: field)
        }
    }

    /// A boolean field, nil when absent or null.
    public static func bool(_ value: JSONValue?, field: String) throws(APIError) -> Bool? {
        switch value {
        case nil, .null?: return nil
        case .bool(let flag)?: return flag
        case let other?: throw APIError.invalid("invalid_\(field)", "\(field) must be true or false, not \(other.typeName)", param: field)
        }
    }

    /// A decimal number field (exact: read from the JSON text), nil when absent or null.
    public static func decimal(_ value: JSONValue?, field: String) throws(APIError) -> Decimal? {
        switch value {
        case nil, .null?: return nil
        case .number(let number)?: return number
        case let other?: throw APIError.invalid("invalid_\(field)", "\(field) must be a number, not \(other.typeName)", param: field)
        }
    }
}
