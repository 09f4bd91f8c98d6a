import LumenAPI
import RPCSupport
import SharedRules

/// The errors of the keys service. Each carries the machine-readable code the REST API shows.
enum KeysError {
    static func keyNotFound(_ id: String) -> ServiceError {
        ServiceError(.notFound, "key_not_found", "no key \(id) in this organisation", param: "key_id")
    }

    static func invalidName(_ message: String) -> ServiceError {
        .invalid("invalid_name", message, param: "name")
    }

    static func invalidLimit(_ message: String) -> ServiceError {
        .invalid("invalid_limit_amount", message, param: "limit_micros")
    }

    static let currencyRetired = ServiceError.invalid(
        "currency_retired", "CNY limits are retired; give the limit in USD", param: "limit_currency")

    static func invalidCurrency(_ currency: String) -> ServiceError {
        .invalid("invalid_currency", "the limit currency must be USD, not \(currency)", param: "limit_currency")
    }

    static func invalidModels(_ message: String) -> ServiceError {
        .invalid("invalid_models", message, param: "models")
    }

    static func invalidExpiry(_ message: String) -> ServiceError {
        .invalid("invalid_expires_at", message, param: "expires_at")
    }

    static func invalidOwner(_ message: String) -> ServiceError {
        .invalid("invalid_owner", message, param: "owner")
    }

    static let emptyUpdate = ServiceError(
        .invalidArgument, "empty_update",
        "provide at least one of status, name, limit, models, expiry, rpm_limit, tpm_limit")

    static func revoked(_ id: String) -> ServiceError {
        ServiceError(.failedPrecondition, "key_revoked", "key \(id) is revoked and cannot be changed", param: "key_id")
    }
}
