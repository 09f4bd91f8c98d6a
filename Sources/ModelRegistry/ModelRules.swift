import Foundation
import LumenAPI
import SharedRules

/// What a model or backend definition must satisfy before it is stored.
enum ModelRules {
    static let defaultTimeoutMs = 60_000

    static func record(_ model: Lumen_Registry_V1_Model, now: Int64) throws -> ModelRecord {
        let name = model.name.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !name.isEmpty, name.count <= 100, !name.contains(where: { $0.isWhitespace || $0.isNewline }) else {
            throw RegistryError.invalidModel("a model name is 1–100 characters without spaces", param: "model.name")
        }
        let vendor = model.vendor.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !vendor.isEmpty, vendor.count <= 100 else {
            throw RegistryError.invalidModel("a vendor is 1–100 characters", param: "model.vendor")
        }
        var scenes: [Int] = []
        for scene in model.scenes {
            switch scene {
            case .unspecified, .UNRECOGNIZED:
                throw RegistryError.invalidModel("unknown scene \(scene)", param: "model.scenes")
            default:
                if !scenes.contains(scene.rawValue) { scenes.append(scene.rawValue) }
            }
        }
        let prices = model.prices
        for (value, field) in [
            (prices.inputPerMillionMicros, "input"), (prices.cachedInputPerMillionMicros, "cached_input"),
            (prices.outputPerMillionMicros, "output"), (prices.perRequestMicros, "per_request"),
            (prices.cacheWritePerMillionMicros, "cache_write"),
        ] where value < 0 {
            throw RegistryError.invalidModel("prices must not be negative", param: "model.prices.\(field)")
        }
        guard (1...10_000_000).contains(model.maxOutputTokens) else {
            throw RegistryError.invalidModel(
                "max_output_tokens is required: the most output tokens one request may produce, 1 to 10000000",
                param: "model.max_output_tokens")
        }
        guard (0...10_000_000).contains(model.maxAttachmentInputTokens) else {
            throw RegistryError.invalidModel(
                "max_attachment_input_tokens must be between 1 and 10000000 (0: the default, \(HoldBound.defaultAttachmentInputTokens))",
                param: "model.max_attachment_input_tokens")
        }
        return ModelRecord(
            name: name, vendor: vendor,
            scenes: scenes.isEmpty ? [Lumen_Common_V1_Scene.chat.rawValue] : scenes,
            inputPerMillionMicros: prices.inputPerMillionMicros,
            cachedInputPerMillionMicros: prices.cachedInputPerMillionMicros,
            outputPerMillionMicros: prices.outputPerMillionMicros,
            perRequestMicros: prices.perRequestMicros,
            consentRequired: model.consentRequired, enabled: model.enabled,
            maxOutputTokens: model.maxOutputTokens,
            maxAttachmentInputTokens: model.maxAttachmentInputTokens == 0
                ? HoldBound.defaultAttachmentInputTokens : model.maxAttachmentInputTokens,
            allowedGroupIDs: unique(model.allowedGroupIds), blockedGroupIDs: unique(model.blockedGroupIds),
            description: model.description_p, updatedAt: now, cacheWritePerMillionMicros: prices.cacheWritePerMillionMicros)
    }

    /// The variables holding Lumen's own secrets (the services' shared token, a database URL with
    /// its password), which no backend may name as its credential.
    static let lumenSecrets: Set<String> = ["LUMEN_INTERNAL_TOKEN", "LUMEN_DATABASE"]

    /// Where an anthropic backend without a base URL goes.
    static let anthropicBaseURL = "https://api.anthropic.com"
    /// Where a gemini backend without a base URL goes.
    static let geminiBaseURL = "https://generativelanguage.googleapis.com"
    /// Where a bedrock backend without a base URL goes, in its region.
    static func bedrockBaseURL(region: String) -> String { "https://bedrock-runtime.\(region).amazonaws.com" }

    static func record(_ backend: Lumen_Registry_V1_Backend, keeping health: BackendRecord?) throws -> BackendRecord {
        let id = backend.id.trimmingCharacters(in: .whitespacesAndNewlines)
        let idCharacters = CharacterSet.alphanumerics.union(CharacterSet(charactersIn: "._-"))
        guard !id.isEmpty, id.count <= 64, id.unicodeScalars.allSatisfy({ idCharacters.contains($0) && $0.isASCII }) else {
            throw RegistryError.invalidBackend("a backend id is 1–64 letters, digits, '.', '_' or '-'", param: "backend.id")
        }
        let region = backend.region.trimmingCharacters(in: .whitespacesAndNewlines)
        let profile = backend.awsProfile.trimmingCharacters(in: .whitespacesAndNewlines)
        if backend.provider == .bedrock {
            guard region.range(of: "^[a-z]{2}(-[a-z]+)+-[0-9]{1,2}$", options: .regularExpression) != nil else {
                throw RegistryError.invalidBackend("a bedrock backend needs its AWS region, such as us-east-1", param: "backend.region")
            }
            guard profile.count <= 64, profile.unicodeScalars.allSatisfy({ $0.isASCII && (idCharacters.contains($0) || $0 == "@" || $0 == "+") })
            else {
                throw RegistryError.invalidBackend("aws_profile names a profile of the AWS credentials file (letters, digits, ., _, -)", param: "backend.aws_profile")
            }
            guard profile.isEmpty || backend.credentialEnv.isEmpty else {
                throw RegistryError.invalidBackend(
                    "a bedrock backend signs with aws_profile's keys or sends credential_env's API key, not both", param: "backend.aws_profile")
            }
        } else {
            guard region.isEmpty else { throw RegistryError.invalidBackend("region is a bedrock backend's setting", param: "backend.region") }
            guard profile.isEmpty else { throw RegistryError.invalidBackend("aws_profile is a bedrock backend's setting", param: "backend.aws_profile") }
        }
        var baseURL = backend.baseURL.trimmingCharacters(in: .whitespacesAndNewlines)
        switch backend.provider {
        case .openai, .anthropic, .azure, .gemini, .bedrock:
            if baseURL.isEmpty {
                switch backend.provider {
                case .anthropic: baseURL = anthropicBaseURL
                case .gemini: baseURL = geminiBaseURL
                case .bedrock: baseURL = bedrockBaseURL(region: region)
                default: break
                }
            }
            guard let url = URL(string: baseURL), ["http", "https"].contains(url.scheme?.lowercased() ?? ""),
                url.host?.isEmpty == false
            else {
                let message =
                    switch backend.provider {
                    case .openai: "an openai backend needs an http(s) base_url, such as https://api.openai.com/v1"
                    case .azure: "an azure backend needs its resource's http(s) base_url, such as https://NAME.openai.azure.com"
                    case .gemini: "a gemini backend's base_url is an http(s) URL (leave it out for \(geminiBaseURL))"
                    case .bedrock: "a bedrock backend's base_url is an http(s) URL (leave it out for \(bedrockBaseURL(region: region)))"
                    default: "an anthropic backend's base_url is an http(s) URL (leave it out for \(anthropicBaseURL))"
                    }
                throw RegistryError.invalidBackend(message, param: "backend.base_url")
            }
        case .mock:
            break
        default:
            throw RegistryError.invalidBackend("provider must be openai, anthropic, azure, gemini, bedrock or mock", param: "backend.provider")
        }
        let apiVersion = backend.apiVersion.trimmingCharacters(in: .whitespacesAndNewlines)
        guard apiVersion.isEmpty || backend.provider == .azure else {
            throw RegistryError.invalidBackend("api_version is an azure backend's setting", param: "backend.api_version")
        }
        guard apiVersion.count <= 40, apiVersion.unicodeScalars.allSatisfy({ $0.isASCII && (CharacterSet.alphanumerics.contains($0) || $0 == "-") })
        else {
            throw RegistryError.invalidBackend("api_version is a version such as 2024-10-21 (letters, digits, -)", param: "backend.api_version")
        }
        let tokenSource = backend.tokenSource.trimmingCharacters(in: .whitespacesAndNewlines)
        if !tokenSource.isEmpty {
            guard backend.provider == .azure else {
                throw RegistryError.invalidBackend("token_source is an azure backend's setting", param: "backend.token_source")
            }
            guard tokenSource.count <= 64, tokenSource.unicodeScalars.allSatisfy({ $0.isASCII && idCharacters.contains($0) }) else {
                throw RegistryError.invalidBackend(
                    "token_source names a token source of the gateways (--token-sources): letters, digits, ., _, -", param: "backend.token_source")
            }
            guard backend.credentialEnv.isEmpty else {
                throw RegistryError.invalidBackend(
                    "an azure backend sends token_source's bearer token or credential_env's api-key, not both", param: "backend.token_source")
            }
        }
        let env = backend.credentialEnv
        guard env.isEmpty || env.range(of: "^[A-Za-z_][A-Za-z0-9_]*$", options: .regularExpression) != nil else {
            throw RegistryError.invalidBackend(
                "credential_env names an environment variable (letters, digits, _), never holds the secret itself",
                param: "backend.credential_env")
        }
        // Lumen's own secrets stay in the gateway: a backend naming one would send it upstream.
        guard !Self.lumenSecrets.contains(env) else {
            throw RegistryError.invalidBackend(
                "credential_env must name the upstream's key, not \(env), which holds Lumen's own secret", param: "backend.credential_env")
        }
        guard (0...1000).contains(backend.weight) else {
            throw RegistryError.invalidBackend("weight must be between 1 and 1000", param: "backend.weight")
        }
        guard (0...3_600_000).contains(backend.timeoutMs) else {
            throw RegistryError.invalidBackend("timeout_ms must be between 1 and 3600000", param: "backend.timeout_ms")
        }
        return BackendRecord(
            model: backend.model, id: id, provider: backend.provider.rawValue,
            baseURL: baseURL,
            credentialEnv: env, upstreamModel: backend.upstreamModel.trimmingCharacters(in: .whitespacesAndNewlines),
            weight: backend.weight == 0 ? 1 : Int(backend.weight),
            timeoutMs: backend.timeoutMs == 0 ? defaultTimeoutMs : Int(backend.timeoutMs),
            health: health?.health ?? Lumen_Registry_V1_BackendHealth.unspecified.rawValue,
            consecutiveFailures: health?.consecutiveFailures ?? 0,
            circuitOpenUntil: health?.circuitOpenUntil, problem: "", byok: backend.byok, apiVersion: apiVersion,
            region: region, awsProfile: profile, tokenSource: tokenSource)
    }

    static func unique(_ values: [String]) -> [String] {
        var seen = Set<String>()
        return values.filter { !$0.isEmpty && seen.insert($0).inserted }
    }
}
