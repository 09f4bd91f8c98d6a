import LumenAPI

/// The names the public API (REST, metrics, billing buckets) gives to scenes and channels.
extension Lumen_Common_V1_Scene {
    /// `chat`, `image`, `audio`, `video`, `embedding`, `rerank`, `translation`, `music`, `3d`;
    /// `unspecified` otherwise.
    public var publicName: String {
        switch self {
        case .chat: "chat"
        case .image: "image"
        case .audio: "audio"
        case .video: "video"
        case .embedding: "embedding"
        case .rerank: "rerank"
        case .translation: "translation"
        case .music: "music"
        case .scene3D: "3d"
        default: "unspecified"
        }
    }

    /// Every scene with a public name, by that name.
    public static let byPublicName: [String: Lumen_Common_V1_Scene] = Dictionary(
        uniqueKeysWithValues: [.chat, .image, .audio, .video, .embedding, .rerank, .translation, .music, .scene3D].map {
            ($0.publicName, $0)
        })
}

extension Lumen_Common_V1_AccessChannel {
    /// `platform` or `byok`; `unspecified` otherwise.
    public var publicName: String {
        switch self {
        case .platform: "platform"
        case .byok: "byok"
        default: "unspecified"
        }
    }
}

extension Lumen_Keys_V1_KeyStatus {
    /// `active`, `inactive`, `suspended` or `revoked` (seed 003's key states); `unknown` otherwise.
    public var publicName: String {
        switch self {
        case .active: "active"
        case .inactive: "inactive"
        case .suspended: "suspended"
        case .revoked: "revoked"
        default: "unknown"
        }
    }
}

extension Lumen_Ledger_V1_PoolMode {
    /// The pool states of the dashboard: `balance`, `unlimited`, or `not_configured` (`—`).
    public var publicName: String {
        switch self {
        case .balance: "balance"
        case .unlimited: "unlimited"
        default: "not_configured"
        }
    }
}

extension Lumen_Common_V1_PrincipalType {
    /// `organization`, `user`, `client` or `key`; `principal` otherwise.
    public var publicName: String {
        switch self {
        case .organization: "organization"
        case .user: "user"
        case .client: "client"
        case .key: "key"
        default: "principal"
        }
    }
}

extension Lumen_Common_V1_PrincipalRef {
    /// `type:id`, as logs and reports name a pool's owner (`user:usr_…`).
    public var publicName: String { "\(type.publicName):\(id)" }
}

extension Lumen_Registry_V1_AccessLevel {
    /// Seed 001's access badges: `allowed`, `needs_consent`, `consented`, `blocked`.
    public var publicName: String {
        switch self {
        case .allowed: "allowed"
        case .needsConsent: "needs_consent"
        case .consented: "consented"
        default: "blocked"
        }
    }
}

extension Lumen_Registry_V1_ModelStatus {
    /// Seed 001's status badges: `ok`, `degraded`, `down`, `disabled`.
    public var publicName: String {
        switch self {
        case .ok: "ok"
        case .degraded: "degraded"
        case .disabled: "disabled"
        default: "down"
        }
    }
}

extension Lumen_Registry_V1_BackendHealth {
    /// `healthy` or `unhealthy`; `unknown` before the first report.
    public var publicName: String {
        switch self {
        case .healthy: "healthy"
        case .unhealthy: "unhealthy"
        default: "unknown"
        }
    }
}

extension Lumen_Registry_V1_ProviderKind {
    /// The `provider:` of a backend in YAML and JSON: `openai`, `anthropic`, `azure`, `gemini`,
    /// `bedrock` or `mock`;
    /// `unspecified` otherwise.
    public var publicName: String {
        switch self {
        case .openai: "openai"
        case .anthropic: "anthropic"
        case .azure: "azure"
        case .gemini: "gemini"
        case .bedrock: "bedrock"
        case .mock: "mock"
        default: "unspecified"
        }
    }

    /// The provider as people call it, for pages: `Google Gemini`, `AWS Bedrock`, ….
    public var displayName: String {
        switch self {
        case .openai: "OpenAI-compatible"
        case .anthropic: "Anthropic"
        case .azure: "Azure OpenAI"
        case .gemini: "Google Gemini"
        case .bedrock: "AWS Bedrock"
        case .mock: "Built-in mock"
        default: "Unknown"
        }
    }

    /// Every provider with a public name, by that name.
    public static let byPublicName: [String: Lumen_Registry_V1_ProviderKind] = Dictionary(
        uniqueKeysWithValues: [.openai, .anthropic, .azure, .gemini, .bedrock, .mock].map { ($0.publicName, $0) })
}
