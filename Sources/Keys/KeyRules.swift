import Foundation
import RPCSupport
import SharedRules

/// The business rules of a key's editable fields (seed 003's body contract).
enum KeyRules {
    static let defaultName = "Default Key"
    static let maxNameLength = 50
    /// The largest cap a request may ask for: 1,000,000 USD.
    static let maxRequestedLimitMicros: Int64 = 1_000_000 * 1_000_000
    /// Positive caps are stored at most at 100,000 USD.
    static let maxStoredLimitMicros: Int64 = 100_000 * 1_000_000
    static let maxModels = 100
    static let maxModelNameLength = 100

    /// A trimmed name of 1–50 characters, as `NameText` has it.
    static func name(_ raw: String) throws -> String {
        let name = raw.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !name.isEmpty else { throw KeysError.invalidName("name must not be empty") }
        // Counted in Unicode scalars, as JSON Schema's maxLength counts (gateway/openapi.yaml).
        guard name.unicodeScalars.count <= maxNameLength else {
            throw KeysError.invalidName("name must be at most \(maxNameLength) characters (got \(name.unicodeScalars.count))")
        }
        if let problem = NameText.problem(name) { throw KeysError.invalidName("name \(problem)") }
        return name
    }

    /// The cap to store for a requested cap: 0…1,000,000 USD accepted, stored at most 100,000 USD.
    static func limit(_ requested: Int64) throws -> Int64 {
        guard requested >= 0 else { throw KeysError.invalidLimit("the limit must not be negative") }
        guard requested <= maxRequestedLimitMicros else {
            throw KeysError.invalidLimit("the limit must be at most 1000000 USD")
        }
        return min(requested, maxStoredLimitMicros)
    }

    /// A requests-per-minute limit: 0 (none) to 1,000,000.
    static func rpmLimit(_ requested: Int64) throws -> Int64 {
        guard (0...1_000_000).contains(requested) else {
            throw ServiceError.invalid("invalid_rpm_limit", "rpm_limit must be between 0 (no limit) and 1000000", param: "rpm_limit")
        }
        return requested
    }

    /// A tokens-per-minute limit: 0 (none) to 1,000,000,000.
    static func tpmLimit(_ requested: Int64) throws -> Int64 {
        guard (0...1_000_000_000).contains(requested) else {
            throw ServiceError.invalid("invalid_tpm_limit", "tpm_limit must be between 0 (no limit) and 1000000000", param: "tpm_limit")
        }
        return requested
    }

    static func currency(_ raw: String) throws {
        // Exactly `USD` (empty: unset, in proto3): a lower-case or unknown code is refused.
        switch raw {
        case "", "USD": return
        case "CNY": throw KeysError.currencyRetired
        default: throw KeysError.invalidCurrency(raw)
        }
    }

    /// Trimmed, de-duplicated model names in their given order.
    static func models(_ raw: [String]) throws -> [String] {
        guard raw.count <= maxModels else {
            throw KeysError.invalidModels("models may list at most \(maxModels) names")
        }
        var seen = Set<String>()
        var models: [String] = []
        for entry in raw {
            let model = entry.trimmingCharacters(in: .whitespacesAndNewlines)
            guard !model.isEmpty, model.unicodeScalars.count <= maxModelNameLength else {
                throw KeysError.invalidModels("each model name must be 1–\(maxModelNameLength) characters")
            }
            if seen.insert(model).inserted { models.append(model) }
        }
        return models
    }

    static func expiry(_ millis: Int64, now: Int64) throws -> Int64 {
        guard millis > now else { throw KeysError.invalidExpiry("expiresAt must be in the future") }
        return millis
    }
}
