import Foundation

/// Any JSON value, decoded without losing the difference between `null` and absent, or the
/// exact decimal digits of a number (money must not pass through a binary float).
public enum JSONValue: Codable, Sendable, Equatable {
    case null
    case bool(Bool)
    case number(Decimal)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let value = try? container.decode(Bool.self) {
            self = .bool(value)
        } else if let value = try? container.decode(String.self) {
            self = .string(value)
        } else if let value = try? container.decode(Decimal.self) {
            self = .number(value)
        } else if let value = try? container.decode([JSONValue].self) {
            self = .array(value)
        } else {
            self = .object(try container.decode([String: JSONValue].self))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .null: try container.encodeNil()
        case .bool(let value): try container.encode(value)
        case .number(let value): try container.encode(value)
        case .string(let value): try container.encode(value)
        case .array(let value): try container.encode(value)
        case .object(let value): try container.encode(value)
        }
    }

    /// The JSON type's name, for error messages.
    public var typeName: String {
        switch self {
        case .null: "null"
        case .bool: "a boolean"
        case .number: "a number"
        case .string: "a string"
        case .array: "an array"
        case .object: "an object"
        }
    }

    /// An optional whole-number field: nil when absent or null; otherwise the number, which must
    /// be whole and within `range` (`2`, `2.0` and `2e0` all are), or `error`.
    public static func wholeNumber<Failure: Error>(
        _ value: JSONValue?, in range: ClosedRange<Int>, else error: Failure
    ) throws(Failure) -> Int? {
        switch value {
        case nil, .null?: return nil
        case .number(let number)?:
            guard let whole = number.exactInt64.map(Int.init), range.contains(whole) else { throw error }
            return whole
        default: throw error
        }
    }

    /// The member `key` of an object; nil for anything else.
    public subscript(key: String) -> JSONValue? {
        guard case .object(let members) = self else { return nil }
        return members[key]
    }

    public var stringValue: String? {
        guard case .string(let string) = self else { return nil }
        return string
    }

    public var arrayValue: [JSONValue]? {
        guard case .array(let elements) = self else { return nil }
        return elements
    }

    /// A whole number that fits `Int64`; nil for anything else.
    public var int64Value: Int64? {
        guard case .number(let number) = self else { return nil }
        return number.exactInt64
    }
}

extension Decimal {
    /// The `Int64` this number is exactly; nil when it is not whole or out of range. A
    /// conversion checked by converting back (twenty times cheaper than reading its text, which
    /// decides only when the check fails: a fraction, or past what the conversion keeps).
    var exactInt64: Int64? {
        let converted = NSDecimalNumber(decimal: self).int64Value
        if Decimal(converted) == self { return converted }
        return Int64(description)
    }
}
