import Foundation
import WireFormats

extension JSONValue {
    /// Decodes a request body that must be a JSON object; an empty body is `{}`.
    public static func object(
        from bytes: some Collection<UInt8>, numbers: NumberPolicy = .refuseHugeNumbers
    ) throws(APIError) -> [String: JSONValue] {
        if bytes.allSatisfy({ $0 == 0x20 || $0 == 0x0A || $0 == 0x0D || $0 == 0x09 }) { return [:] }
        let value: JSONValue
        do {
            value = try JSONValue.parse(bytes, numbers: numbers)
        } catch {
            throw APIError.invalid("invalid_json", "the request body is not valid JSON: \(error)")
        }
        guard case .object(let object) = value else {
            throw APIError.invalid("invalid_json", "the request body must be a JSON object, not \(value.typeName)")
        }
        return object
    }

}
