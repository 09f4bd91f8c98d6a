import Foundation
import LumenAPI
import RPCSupport
import SharedRules
import Yams

/// The `models:` section of the configuration file: logical models with their prices and
/// backends, upserted into the registry when the process that runs it starts.
///
/// Prices are USD per million tokens (`per_request` in USD per request), read as exact
/// decimals: `0.15` is 150,000 micro-USD per million tokens, never a binary float.
public struct ModelCatalog: Sendable, Equatable {
    public var models: [Lumen_Registry_V1_Model] = []
    public var backends: [Lumen_Registry_V1_Backend] = []

    public init() {}

    static let modelKeys: Set<String> = [
        "name", "vendor", "scenes", "prices", "consent_required", "enabled", "max_output_tokens",
        "max_attachment_input_tokens", "allowed_groups", "blocked_groups", "description", "backends",
    ]
    static let priceKeys: Set<String> = ["input", "cached_input", "cache_write", "output", "per_request"]
    static let backendKeys: Set<String> = [
        "id", "provider", "base_url", "credential_env", "upstream_model", "weight", "timeout_ms", "byok", "api_version", "region",
        "aws_profile", "token_source",
    ]
    /// Settings that were renamed: a file that still uses one is told the new name.
    static let renamed = ["default_max_output_tokens": "max_output_tokens"]
    static let scenes = Lumen_Common_V1_Scene.byPublicName

    /// The models and backends of the file at `path` (`lumen admin models apply --file`), which
    /// must list some.
    public static func load(file path: String) throws -> ModelCatalog {
        let catalog: ModelCatalog
        do {
            catalog = try parse(yaml: try YAMLFile.read(path, what: "the models file"), path: path)
        } catch let error as ConfigurationError {
            throw FileProblem(error.description)
        }
        guard !catalog.models.isEmpty else { throw FileProblem("\(path) has no `models:` list") }
        return catalog
    }

    /// Reads the `models` key of a configuration file, if it has one.
    public static func parse(yaml text: String, path: String) throws -> ModelCatalog {
        guard let root = try YAMLFile.parse(text, path: path, { try Yams.compose(yaml: $0) }), let list = root["models"] else {
            return ModelCatalog()
        }
        guard case .sequence(let entries) = list else { throw ConfigurationError("\(path): models must be a list") }
        var catalog = ModelCatalog()
        for (index, entry) in entries.enumerated() {
            let place = "\(path): models[\(index)]"
            let fields = try mapping(entry, place, allowed: modelKeys)
            guard let name = fields["name"]?.string, !name.isEmpty else { throw ConfigurationError("\(place).name is required") }
            // The most output one request may produce bounds its hold (README, "Budgets"): no default.
            guard let maxOutput = try int(fields["max_output_tokens"], "\(path): model \(name).max_output_tokens"), maxOutput > 0 else {
                throw ConfigurationError(
                    "\(path): model \(name).max_output_tokens is required: the most output tokens one request may produce "
                        + "(the model's own output limit, such as 16384), which bounds each request's hold")
            }
            let at = "\(path): model \(name)"
            var model = Lumen_Registry_V1_Model()
            model.name = name
            model.vendor = try string(fields["vendor"], "\(at).vendor") ?? ""
            model.enabled = try bool(fields["enabled"], "\(at).enabled") ?? true
            model.consentRequired = try bool(fields["consent_required"], "\(at).consent_required") ?? false
            model.maxOutputTokens = Int64(maxOutput)
            model.maxAttachmentInputTokens = Int64(
                try int(fields["max_attachment_input_tokens"], "\(at).max_attachment_input_tokens") ?? 0)
            model.description_p = try string(fields["description"], "\(at).description") ?? ""
            model.allowedGroupIds = try strings(fields["allowed_groups"], "\(at).allowed_groups")
            model.blockedGroupIds = try strings(fields["blocked_groups"], "\(at).blocked_groups")
            model.scenes = try strings(fields["scenes"], "\(at).scenes").map { name in
                guard let scene = scenes[name] else {
                    throw ConfigurationError("\(at).scenes: unknown scene \(name); choose from \(scenes.keys.sorted().joined(separator: ", "))")
                }
                return scene
            }
            if let prices = fields["prices"] {
                let values = try mapping(prices, "\(at).prices", allowed: priceKeys)
                model.prices.inputPerMillionMicros = try usd(values["input"], "\(at).prices.input")
                model.prices.cachedInputPerMillionMicros = try usd(values["cached_input"], "\(at).prices.cached_input")
                model.prices.outputPerMillionMicros = try usd(values["output"], "\(at).prices.output")
                model.prices.perRequestMicros = try usd(values["per_request"], "\(at).prices.per_request")
                model.prices.cacheWritePerMillionMicros = try usd(values["cache_write"], "\(at).prices.cache_write")
            }
            catalog.models.append(model)
            if let backends = fields["backends"] {
                guard case .sequence(let items) = backends else { throw ConfigurationError("\(at).backends must be a list") }
                for (position, item) in items.enumerated() {
                    let place = "\(at).backends[\(position)]"
                    let values = try mapping(item, place, allowed: backendKeys)
                    var backend = Lumen_Registry_V1_Backend()
                    backend.model = name
                    backend.id = try string(values["id"], "\(place).id") ?? "backend-\(position + 1)"
                    let provider = try string(values["provider"], "\(place).provider") ?? "openai"
                    guard let kind = Lumen_Registry_V1_ProviderKind.byPublicName[provider] else {
                        throw ConfigurationError(
                            "\(place).provider: unknown provider \(provider); choose \(Lumen_Registry_V1_ProviderKind.byPublicName.keys.sorted().joined(separator: " or "))")
                    }
                    backend.provider = kind
                    backend.baseURL = try string(values["base_url"], "\(place).base_url") ?? ""
                    backend.credentialEnv = try string(values["credential_env"], "\(place).credential_env") ?? ""
                    backend.upstreamModel = try string(values["upstream_model"], "\(place).upstream_model") ?? ""
                    backend.weight = Int32(try int(values["weight"], "\(place).weight") ?? 0)
                    backend.timeoutMs = Int32(try int(values["timeout_ms"], "\(place).timeout_ms") ?? 0)
                    backend.byok = try bool(values["byok"], "\(place).byok") ?? false
                    backend.apiVersion = try string(values["api_version"], "\(place).api_version") ?? ""
                    backend.region = try string(values["region"], "\(place).region") ?? ""
                    backend.awsProfile = try string(values["aws_profile"], "\(place).aws_profile") ?? ""
                    backend.tokenSource = try string(values["token_source"], "\(place).token_source") ?? ""
                    catalog.backends.append(backend)
                }
            }
        }
        return catalog
    }

    static func mapping(_ node: Node, _ place: String, allowed: Set<String>) throws -> [String: Node] {
        guard case .mapping(let mapping) = node else { throw ConfigurationError("\(place) must be a mapping") }
        var fields: [String: Node] = [:]
        for (key, value) in mapping {
            if let name = key.string, let newName = renamed[name], allowed.contains(newName) {
                throw ConfigurationError("\(place): \(name) was renamed \(newName)")
            }
            guard let name = key.string, allowed.contains(name) else {
                throw ConfigurationError(
                    "\(place): unknown setting \(key.string ?? "?"); known: \(allowed.sorted().joined(separator: ", "))")
            }
            fields[name] = value
        }
        return fields
    }

    static func string(_ node: Node?, _ place: String) throws -> String? {
        guard let node else { return nil }
        guard case .scalar(let scalar) = node else { throw ConfigurationError("\(place) must be a string") }
        return scalar.string
    }

    static func bool(_ node: Node?, _ place: String) throws -> Bool? {
        guard let node else { return nil }
        guard let value = node.bool else { throw ConfigurationError("\(place) must be true or false") }
        return value
    }

    static func int(_ node: Node?, _ place: String) throws -> Int? {
        guard let node else { return nil }
        guard let value = node.int, value >= 0, value <= Int(Int32.max) else {
            throw ConfigurationError("\(place) must be a whole number ≥ 0")
        }
        return value
    }

    static func strings(_ node: Node?, _ place: String) throws -> [String] {
        guard let node else { return [] }
        guard case .sequence(let items) = node else { throw ConfigurationError("\(place) must be a list") }
        return try items.map { item in
            guard case .scalar(let scalar) = item else { throw ConfigurationError("\(place) must list strings") }
            return scalar.string
        }
    }

    /// An exact USD amount (≤ 6 decimals, ≥ 0) as micro-USD.
    static func usd(_ node: Node?, _ place: String) throws -> Int64 {
        guard let node else { return 0 }
        guard case .scalar(let scalar) = node, let micros = USD.micros(parsing: scalar.string), micros >= 0
        else { throw ConfigurationError("\(place) must be a USD amount ≥ 0 with at most 6 decimals") }
        return micros
    }
}
