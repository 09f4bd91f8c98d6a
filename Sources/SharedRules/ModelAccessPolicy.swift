import LumenAPI

/// Who may use a model: blocked groups win, then the allowed groups (if any are listed),
/// then consent for models that require it. One rule for the registry (`GetModelAccess`)
/// and the gateway's admission.
public enum ModelAccessPolicy {
    public static func level(
        of model: Lumen_Registry_V1_Model, groups: Set<String>, consented: Bool
    ) -> Lumen_Registry_V1_AccessLevel {
        if !groupsPermit(model, groups) { return .blocked }
        if model.consentRequired { return consented ? .consented : .needsConsent }
        return .allowed
    }

    /// Whether a principal in `groups` passes the model's allowed and blocked groups.
    public static func groupsPermit(_ model: Lumen_Registry_V1_Model, _ groups: Set<String>) -> Bool {
        if model.blockedGroupIds.contains(where: groups.contains) { return false }
        return model.allowedGroupIds.isEmpty || model.allowedGroupIds.contains(where: groups.contains)
    }
}
