import RPCSupport
import SharedRules

/// The errors of the model registry.
enum RegistryError {
    static func modelNotFound(_ name: String) -> ServiceError {
        ServiceError(.notFound, "model_not_found", "no model named \(name)", param: "model")
    }

    static func backendNotFound(_ model: String, _ id: String) -> ServiceError {
        ServiceError(.notFound, "backend_not_found", "model \(model) has no backend \(id)", param: "backend_id")
    }

    static func invalidModel(_ message: String, param: String) -> ServiceError {
        .invalid("invalid_model", message, param: param)
    }

    static func invalidBackend(_ message: String, param: String) -> ServiceError {
        .invalid("invalid_backend", message, param: param)
    }

    static func invalidPrincipal(_ message: String) -> ServiceError {
        .invalid("invalid_principal", message, param: "principal")
    }

    static func consentNotRequired(_ model: String) -> ServiceError {
        ServiceError(
            .failedPrecondition, "consent_not_required", "model \(model) does not require consent", param: "model")
    }
}
