import LumenAPI

/// Who may use a model: blocked groups win, then the allowed groups (if any are listed),
/// then consent for models that require it.
public enum ModelAccessPolicy {
    public static func level(
        of model: Lumen_Registry_V1_Model, groups: Set<String>, consented: Bool
    ) -> Lumen_Registry_V1_AccessLevel {
        if model.blockedGroupIds.contains(where: groups.contains) { return .blocked }
        if !model.allowedGroupIds.isEmpty && !model.allowedGroupIds.contains(where: groups.contains) { return .blocked }
        if model.consentRequired { return consented ? .consented : .needsConsent }
        return .allowed
    }
}
