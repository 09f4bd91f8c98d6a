import HTTPTypes
import Hummingbird
import LumenAPI
import RPCSupport
import SharedRules

/// Who may call which model, decided from the gateway's caches without an RPC, in the order
/// the API promises: the key and its owner (401; a deactivated user's or client's keys are
/// refused), the model's existence (404), the key's allowlist (403
/// `model_not_allowed`), the model's allowed and blocked groups for the key's owner (403
/// `model_blocked`), consent (403 `consent_required`), the model's state (503
/// `model_unavailable` when it is turned off or no backend is routable).
struct InferenceAdmission: Sendable {
    let keys: KeyCache
    let registry: RegistryCache
    let memberships: MembershipCache
    let clock: WallClock

    /// The key of a request's `Authorization: Bearer sk-…`.
    /// The `sk-` key of `Authorization: Bearer` — or, for Anthropic's routes (`xAPIKey`), of
    /// `x-api-key` when there is no Authorization header (Claude Code and the `anthropic` SDKs
    /// send either).
    func key(_ request: Request, xAPIKey: Bool = false) throws(APIError) -> Lumen_Keys_V1_Key {
        if xAPIKey, request.headers[.authorization] == nil, let secret = request.headers[Self.xAPIKey] {
            return try key(secret: secret.trimmingCharacters(in: .whitespaces))
        }
        guard let header = request.headers[.authorization], let secret = AuthInterceptor.bearerToken(header) else {
            throw APIError(
                .unauthorized, code: "missing_api_key",
                message: request.headers[.authorization] == nil
                    ? "send your API key: `Authorization: Bearer sk-…`"
                    : AuthorizationHeader.problem(request.headers[.authorization], prefix: "sk-"))
        }
        return try key(secret: secret)
    }

    static let xAPIKey = HTTPField.Name("x-api-key")!

    func key(secret: String) throws(APIError) -> Lumen_Keys_V1_Key {
        guard secret.hasPrefix("sk-") else {
            throw APIError(.unauthorized, code: "invalid_api_key", message: "the model endpoints take an sk- API key")
        }
        switch keys.authenticate(secret) {
        case .success(let key):
            guard key.kind == .inference else {
                throw APIError(.unauthorized, code: "invalid_api_key", message: "the model endpoints take an sk- API key")
            }
            if (key.owner.type == .user || key.owner.type == .client) && memberships.isInactive(key.owner.id) {
                throw APIError(
                    .unauthorized, code: "owner_inactive",
                    message: "the \(key.owner.type == .client ? "client" : "user") that owns this API key is deactivated")
            }
            return key
        case .failure(let error):
            throw APIError(error)
        }
    }

    /// Whether the key's allowlist names the model (an empty list allows every model).
    func allowlisted(_ key: Lumen_Keys_V1_Key, _ model: Lumen_Registry_V1_Model) -> Bool {
        key.models.isEmpty || key.models.contains(model.name)
    }

    /// Whether the model's groups let the key's owner in: a user by its groups; the
    /// organisation and clients belong to no group.
    func groupsPermit(_ key: Lumen_Keys_V1_Key, _ model: Lumen_Registry_V1_Model) -> Bool {
        if model.allowedGroupIds.isEmpty && model.blockedGroupIds.isEmpty { return true }
        let groups = key.owner.type == .user ? memberships.groups(ofUser: key.owner.id) : []
        return ModelAccessPolicy.groupsPermit(model, groups)
    }

    /// Whether the key may call the model, without consent or status checks.
    func permits(_ key: Lumen_Keys_V1_Key, _ model: Lumen_Registry_V1_Model) -> Bool {
        allowlisted(key, model) && groupsPermit(key, model)
    }

    /// Whether the key's owner has acknowledged a model that requires it.
    func consented(_ key: Lumen_Keys_V1_Key, _ model: Lumen_Registry_V1_Model) -> Bool {
        !model.consentRequired || registry.hasConsent(organizationID: key.organizationID, principal: key.owner, model: model.name)
    }

    /// The model a key may call now, or the error that stops it.
    func model(_ name: String, for key: Lumen_Keys_V1_Key) throws(APIError) -> Lumen_Registry_V1_Model {
        guard let model = registry.model(name) else {
            throw APIError(.notFound, code: "model_not_found", message: "the model \(name) does not exist", param: "model")
        }
        guard allowlisted(key, model) else {
            throw APIError(.forbidden, code: "model_not_allowed", message: "this API key may not use \(name)", param: "model")
        }
        if !(model.allowedGroupIds.isEmpty && model.blockedGroupIds.isEmpty) && !memberships.isSynced {
            throw APIError(
                .serviceUnavailable, code: "accounts_unavailable", message: "the gateway is still loading group memberships; retry shortly")
        }
        guard groupsPermit(key, model) else {
            throw APIError(
                .forbidden, code: "model_blocked", message: "the owner of this API key is not in a group allowed to use \(name)",
                param: "model")
        }
        guard consented(key, model) else {
            throw APIError(
                .forbidden, code: "consent_required",
                message: "\(name) needs a one-time acknowledgment before use; grant consent in the dashboard or through the registry",
                param: "model")
        }
        guard model.enabled, model.status != .disabled else {
            throw APIError(.serviceUnavailable, code: "model_unavailable", message: "\(name) is turned off", param: "model")
        }
        // Down means every circuit is open; once a cooldown is over, a trial request goes through.
        let now = clock.nowMillis
        guard model.backends.contains(where: { $0.isRoutable(at: now) }) else {
            throw APIError(
                .serviceUnavailable, code: "model_unavailable", message: "\(name) has no healthy backend right now", param: "model")
        }
        return model
    }
}
