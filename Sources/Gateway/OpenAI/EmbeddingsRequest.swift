import Foundation

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
                case .number(let token): return token.description
                case .array(let tokens): return tokens.map { if case .number(let n) = $0 { n.description } else { "" } }.joined(separator: " ")
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
