import Foundation
import WireFormats

extension Decimal {
    /// Rounded half away from zero to `places` decimal places.
    func rounded(toPlaces places: Int) -> Decimal {
        var value = self
        var result = Decimal()
        NSDecimalRound(&result, &value, places, .plain)
        return result
    }
}

/// The parts of an OpenAI embeddings request that Lumen reads.
struct EmbeddingsRequest {
    var model: String
    /// Each input as text (token arrays are read as their numbers joined by spaces).
    var inputs: [String]
    var base64: Bool
    var dimensions: Int?

    init(_ body: [String: JSONValue]) throws(APIError) {
        let model = try InferenceRequest.model(body)
        self.model = model
        switch body["input"] {
        case .string(let text)?: inputs = [text]
        case .array(let items)? where !items.isEmpty:
            inputs = try items.map { item throws(APIError) -> String in
                switch item {
                case .string(let text): return text
                case .number(let token) where token >= 0 && token == token.rounded(toPlaces: 0): return token.description
                case .array(let tokens) where !tokens.isEmpty:
                    return try tokens.map { token throws(APIError) -> String in
                        guard case .number(let id) = token, id >= 0, id == id.rounded(toPlaces: 0) else {
                            throw APIError.invalid(
                                "invalid_input", "a token array holds whole token ids ≥ 0, not \(token.typeName)", param: "input")
                        }
                        return id.description
                    }.joined(separator: " ")
                default: throw APIError.invalid("invalid_input", "input must be a string, an array of strings or token arrays", param: "input")
                }
            }
        default:
            throw APIError.invalid("invalid_input", "input must be a non-empty string or array", param: "input")
        }
        switch body["encoding_format"] {
        case nil, .null?, .string("float")?: base64 = false
        case .string("base64")?: base64 = true
        default: throw APIError.invalid("invalid_encoding_format", "encoding_format must be float or base64", param: "encoding_format")
        }
        dimensions = try JSONValue.wholeNumber(
            body["dimensions"], in: 1...4096,
            else: APIError.invalid("invalid_dimensions", "dimensions must be a whole number from 1 to 4096", param: "dimensions"))
    }
}
