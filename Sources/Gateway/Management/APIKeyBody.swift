import Foundation
import LumenAPI
import RPCSupport
import SharedRules
import SwiftProtobuf
import WireFormats

/// Translates the JSON bodies of `POST` and `PATCH /v1/management/api-keys` into keys-service
/// requests. Only the shape is checked here (types, unknown fields, number and date syntax);
/// the rules (lengths, ranges, the currency, at least one change) are the keys service's.
enum APIKeyBody {
    static let createFields: Set<String> = [
        "name", "limitAmount", "limitCurrency", "models", "expiresAt", "rpmLimit", "tpmLimit",
    ]
    static let updateFields: Set<String> = createFields.union(["status"])

    /// The service's field names as this body calls them, for `param` in errors.
    static let params = [
        "name": "name", "limit_micros": "limitAmount", "limit_currency": "limitCurrency",
        "models": "models", "expires_at": "expiresAt", "status": "status", "key_id": "keyId",
        "rpm_limit": "rpmLimit", "tpm_limit": "tpmLimit",
    ]

    static func create(_ body: [String: JSONValue]) throws(APIError) -> Lumen_Keys_V1_CreateKeyRequest {
        try RequestRules.refuseUnknown(body, allowed: createFields)
        var request = Lumen_Keys_V1_CreateKeyRequest()
        request.kind = .inference
        // On creation `null` means "the default" for the fields that have one.
        if let name = try RequestRules.text(body["name"], field: "name", code: "invalid_name", nullable: true) {
            request.name = name
        }
        switch try limit(body["limitAmount"]) {
        case .some(.some(let micros)): request.limitMicros = micros
        default: break
        }
        if let currency = try currency(body["limitCurrency"], nullable: true) { request.limitCurrency = currency }
        if let models = try models(body["models"], nullable: true) { request.models = models }
        if case .some(.some(let millis)) = try expiry(body["expiresAt"]) {
            request.expiresAt = .init(millis: millis)
        }
        if let rpm = try rate(body["rpmLimit"], field: "rpmLimit", max: 1_000_000) { request.rpmLimit = Int32(rpm) }
        if let tpm = try rate(body["tpmLimit"], field: "tpmLimit", max: 1_000_000_000) { request.tpmLimit = tpm }
        return request
    }

    static func update(_ body: [String: JSONValue], keyID: String) throws(APIError) -> Lumen_Keys_V1_UpdateKeyRequest {
        try RequestRules.refuseUnknown(body, allowed: updateFields)
        var request = Lumen_Keys_V1_UpdateKeyRequest()
        request.keyID = keyID
        if let name = try RequestRules.text(body["name"], field: "name", code: "invalid_name", nullable: false) {
            request.name = name
        }
        if let status = try RequestRules.text(body["status"], field: "status", code: "invalid_status", nullable: false) {
            request.status = try Self.status(status)
        }
        switch try limit(body["limitAmount"]) {
        case .some(.some(let micros)): request.limit = .limitMicros(micros)
        case .some(.none): request.limit = .unlimited(true)
        case .none: break
        }
        if let currency = try currency(body["limitCurrency"], nullable: false) { request.limitCurrency = currency }
        if let models = try models(body["models"], nullable: false) {
            request.models = .with { $0.models = models }
        }
        switch try expiry(body["expiresAt"]) {
        case .some(.some(let millis)): request.expiry = .expiresAt(.init(millis: millis))
        case .some(.none): request.expiry = .noExpiry(true)
        case .none: break
        }
        if let rpm = try rate(body["rpmLimit"], field: "rpmLimit", max: 1_000_000) { request.rpmLimit = Int32(rpm) }
        if let tpm = try rate(body["tpmLimit"], field: "tpmLimit", max: 1_000_000_000) { request.tpmLimit = tpm }
        return request
    }

    /// A per-minute limit: nil when absent; null or 0 means no limit (0).
    static func rate(_ value: JSONValue?, field: String, max: Int) throws(APIError) -> Int64? {
        if case .null? = value { return 0 }
        let code = field == "rpmLimit" ? "invalid_rpm_limit" : "invalid_tpm_limit"
        return try JSONValue.wholeNumber(
            value, in: 0...max,
            else: APIError.invalid(code, "\(field) must be a whole number from 0 (no limit) to \(max), or null", param: field)
        ).map(Int64.init)
    }

    /// `limitCurrency`: the keys service checks the code; an explicit `""` is refused here, where
    /// it still differs from an absent field (the RPC's empty string means unset).
    static func currency(_ value: JSONValue?, nullable: Bool) throws(APIError) -> String? {
        let currency = try RequestRules.text(value, field: "limitCurrency", code: "invalid_currency", nullable: nullable)
        if currency == "" {
            throw APIError.invalid("invalid_currency", "limitCurrency must be USD (or left out)", param: "limitCurrency")
        }
        return currency
    }

    /// nil: absent; .some(nil): null (unlimited); .some(micros): a cap.
    static func limit(_ value: JSONValue?) throws(APIError) -> Int64?? {
        switch value {
        case nil: return nil
        case .null?: return .some(nil)
        case .number(let amount)?:
            guard let micros = USD.micros(amount) else {
                throw APIError.invalid(
                    "invalid_limit_amount", "limitAmount may have at most 6 decimal places", param: "limitAmount")
            }
            return .some(micros)
        case let other?:
            throw APIError.invalid(
                "invalid_limit_amount", "limitAmount must be a number or null, not \(other.typeName)",
                param: "limitAmount")
        }
    }

    static func models(_ value: JSONValue?, nullable: Bool) throws(APIError) -> [String]? {
        switch value {
        case nil: return nil
        case .null? where nullable: return nil
        case .array(let items)?:
            var models: [String] = []
            for item in items {
                guard case .string(let model) = item else {
                    throw APIError.invalid("invalid_models", "models must be an array of strings", param: "models")
                }
                models.append(model)
            }
            return models
        case let other?:
            throw APIError.invalid("invalid_models", "models must be an array of strings, not \(other.typeName)", param: "models")
        }
    }

    /// nil: absent; .some(nil): null (no expiry); .some(millis): an expiry.
    static func expiry(_ value: JSONValue?) throws(APIError) -> Int64?? {
        switch value {
        case nil: return nil
        case .null?: return .some(nil)
        case .string(let text)?:
            guard let millis = RFC3339.parseMillis(text) else {
                throw APIError.invalid(
                    "invalid_expires_at", "expiresAt must be an RFC 3339 date-time with a time zone, such as 2026-04-30T00:00:00Z",
                    param: "expiresAt")
            }
            return .some(millis)
        case let other?:
            throw APIError.invalid(
                "invalid_expires_at", "expiresAt must be a string or null, not \(other.typeName)", param: "expiresAt")
        }
    }

    static func status(_ name: String) throws(APIError) -> Lumen_Keys_V1_KeyStatus {
        switch name {
        case "active": .active
        case "inactive": .inactive
        case "suspended": .suspended
        case "revoked": .revoked
        default:
            throw APIError.invalid(
                "invalid_status", "status must be one of active, inactive, suspended, revoked", param: "status")
        }
    }
}
