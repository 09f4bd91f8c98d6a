import Hummingbird
import LumenAPI

/// A management list's query string: each parameter known and given once, and the optional
/// `page` (from 1) and `limit` (1 to a list's maximum) — or 400 naming the parameter at fault.
enum PageParameters {
    /// The parameters by name; 400 `unknown_parameter` or `duplicate_parameter` otherwise.
    static func values(_ parameters: Parameters, known: Set<String>) throws(APIError) -> [String: String] {
        var values: [String: String] = [:]
        for (name, value) in parameters {
            let name = String(name)
            guard known.contains(name) else {
                throw APIError.invalid(
                    "unknown_parameter", "unknown query parameter \(name); known: \(known.sorted().joined(separator: ", "))",
                    param: name)
            }
            guard values[name] == nil else {
                throw APIError.invalid("duplicate_parameter", "\(name) is given more than once", param: name)
            }
            values[name] = String(value)
        }
        return values
    }

    /// `page` and `limit` as the services take them (unset: the service's defaults).
    static func page(_ values: [String: String], maxLimit: Int32) throws(APIError) -> Lumen_Common_V1_PageRequest {
        var request = Lumen_Common_V1_PageRequest()
        if let text = values["page"] {
            guard let page = Int32(text), page >= 1 else {
                throw APIError.invalid("invalid_page", "page must be a whole number, at least 1", param: "page")
            }
            request.page = page
        }
        if let text = values["limit"] {
            guard let limit = Int32(text), (1...maxLimit).contains(limit) else {
                throw APIError.invalid("invalid_limit", "limit must be a whole number from 1 to \(maxLimit)", param: "limit")
            }
            request.limit = limit
        }
        return request
    }
}
