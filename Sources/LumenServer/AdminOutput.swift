import Accounts
import Dashboard
import Foundation
import Gateway
import LumenAPI
import RPCSupport
import SharedRules

/// What `lumen admin` prints: JSON with sorted keys, snake_case names, amounts in USD and
/// times in RFC 3339.
public enum AdminOutput {
    public static func json(_ value: some Encodable, indented: Bool = false) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = indented ? [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes] : [.sortedKeys]
        return String(decoding: try encoder.encode(value), as: UTF8.self)
    }

    /// Whose pool a command means: `--user`, `--client`, `--key`, or the organisation's when none is given.
    public static func poolOwner(user: String?, client: String?, key: String?) throws -> Lumen_Common_V1_PrincipalRef {
        let given = [(Lumen_Common_V1_PrincipalType.user, user), (.client, client), (.key, key)].filter { $0.1 != nil }
        guard given.count <= 1 else { throw ConfigurationError("give at most one of --user, --client, --key") }
        guard let (type, id) = given.first, let id else { return .with { $0.type = .organization } }
        return .with {
            $0.type = type
            $0.id = id
        }
    }

    /// The first line of `input` (a password piped in), without its line end; refused when empty.
    public static func secretLine(_ input: Data, option: String) throws -> String {
        let text = String(decoding: input, as: UTF8.self)
        let line = text.split(separator: "\n", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? ""
        let trimmed = line.hasSuffix("\r") ? String(line.dropLast()) : line
        guard !trimmed.isEmpty else { throw ConfigurationError("\(option): standard input holds no password") }
        return trimmed
    }

    /// Micro-USD of a USD amount typed on the command line, exactly.
    public static func usd(_ text: String, option: String) throws -> Int64 {
        guard let micros = USD.micros(parsing: text) else {
            throw ConfigurationError("\(option) must be a USD amount such as 12.50 (at most 6 decimal places), not \(text)")
        }
        return micros
    }
}

public struct BootstrapOutput: Encodable {
    public var organizationID: String
    public var adminUserID: String
    public var managementToken: String

    public init(_ result: OrganizationBootstrap) {
        (organizationID, adminUserID, managementToken) = (result.organizationID, result.adminUserID, result.managementToken)
    }

    enum CodingKeys: String, CodingKey {
        case organizationID = "organization_id"
        case adminUserID = "admin_user_id"
        case managementToken = "management_token"
    }
}

/// A user, as `/api` shows one.
public typealias UserOutput = UserObject

/// An organisation's single sign-on as `lumen admin sso` prints it.
public typealias SingleSignOnOutput = AuditedSingleSignOn

public struct OperatorTokenOutput: Encodable {
    public var id: String
    public var name: String
    public var hint: String
    public var status: String
    public var createdAt: String

    public init(_ key: Lumen_Keys_V1_Key) {
        self.id = key.id
        self.name = key.name
        self.hint = key.hint
        self.status = key.status.publicName
        self.createdAt = RFC3339.format(millis: key.createdAt.millis)
    }

    enum CodingKeys: String, CodingKey {
        case id, name, hint, status
        case createdAt = "created_at"
    }
}

public struct PoolOutput: Encodable {
    public var organizationID: String
    public var owner: String
    public var state: String
    public var balance: Decimal
    public var reserved: Decimal
    public var spent: Decimal
    public var limit: Decimal?
    public var refillPerHour: Decimal
    public var nextRefillAt: String?
    public var asOf: String

    enum CodingKeys: String, CodingKey {
        case organizationID = "organization_id"
        case owner, state, balance, reserved, spent, limit
        case refillPerHour = "refill_per_hour"
        case nextRefillAt = "next_refill_at"
        case asOf = "as_of"
    }

    public init(_ pool: Lumen_Ledger_V1_Pool) {
        organizationID = pool.organizationID
        owner = pool.owner.publicName
        state = pool.mode.publicName
        balance = USD.amount(pool.balanceMicros)
        reserved = USD.amount(pool.reservedMicros)
        spent = USD.amount(pool.spentMicros)
        limit = pool.hasLimitMicros ? USD.amount(pool.limitMicros) : nil
        refillPerHour = USD.amount(pool.refillPerHourMicros)
        nextRefillAt = pool.hasNextRefillAt ? RFC3339.format(millis: pool.nextRefillAt.millis) : nil
        asOf = RFC3339.format(millis: pool.asOf.millis)
    }

    /// Every key, `limit` and `next_refill_at` as null when absent.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(organizationID, forKey: .organizationID)
        try container.encode(owner, forKey: .owner)
        try container.encode(state, forKey: .state)
        try container.encode(balance, forKey: .balance)
        try container.encode(reserved, forKey: .reserved)
        try container.encode(spent, forKey: .spent)
        try container.encode(limit, forKey: .limit)
        try container.encode(refillPerHour, forKey: .refillPerHour)
        try container.encode(nextRefillAt, forKey: .nextRefillAt)
        try container.encode(asOf, forKey: .asOf)
    }
}

public struct GrantOutput: Encodable {
    public struct Grant: Encodable {
        public var id: String
        public var owner: String
        public var amount: Decimal
        public var reason: String
        public var grantedByUserID: String
        public var createdAt: String

        enum CodingKeys: String, CodingKey {
            case id, owner, amount, reason
            case grantedByUserID = "granted_by_user_id"
            case createdAt = "created_at"
        }

        public init(_ grant: Lumen_Ledger_V1_GrantRecord) {
            id = grant.id
            owner = grant.owner.publicName
            amount = USD.amount(grant.amountMicros)
            reason = grant.reason
            grantedByUserID = grant.grantedByUserID
            createdAt = RFC3339.format(millis: grant.createdAt.millis)
        }
    }

    public var grant: Grant
    public var pool: PoolOutput

    public init(_ response: Lumen_Ledger_V1_GrantResponse) {
        grant = Grant(response.grant)
        pool = PoolOutput(response.pool)
    }
}

public struct GrantListOutput: Encodable {
    public var grants: [GrantOutput.Grant]
    public var page: Int
    public var limit: Int
    public var total: Int64
    public var hasMore: Bool

    public init(_ response: Lumen_Ledger_V1_ListGrantsResponse) {
        grants = response.grants.map(GrantOutput.Grant.init)
        page = Int(response.pageInfo.page)
        limit = Int(response.pageInfo.limit)
        total = response.pageInfo.total
        hasMore = response.pageInfo.hasMore_p
    }

    enum CodingKeys: String, CodingKey {
        case grants, page, limit, total
        case hasMore = "has_more"
    }
}

/// A model as `lumen admin models list` prints it: the names and units of the YAML `models:`
/// section (prices in USD per million tokens, `scenes: [chat]`, `provider: openai`), so that
/// what is listed reads like what is applied, plus what the registry knows at run time
/// (`status`, each backend's `health` and `problem`).
public struct ModelOutput: Encodable {
    public struct Prices: Encodable {
        var input: Decimal
        var cachedInput: Decimal
        var cacheWrite: Decimal
        var output: Decimal
        var perRequest: Decimal

        enum CodingKeys: String, CodingKey {
            case input, output
            case cachedInput = "cached_input"
            case cacheWrite = "cache_write"
            case perRequest = "per_request"
        }
    }

    public struct Backend: Encodable {
        var id: String
        var provider: String
        var baseURL: String
        var credentialEnv: String
        var upstreamModel: String
        var weight: Int32
        var timeoutMs: Int32
        var byok: Bool
        var health: String
        var consecutiveFailures: Int32
        var problem: String
        var lastFailure: String?
        var lastFailureAt: String?
        /// An azure backend's API version (the default when it names none); absent for others.
        var apiVersion: String?
        /// A bedrock backend's region and AWS profile (empty: the gateway's variables); absent for others.
        var region: String?
        var awsProfile: String?
        /// An azure backend's bearer token source; absent when it sends its key.
        var tokenSource: String?

        enum CodingKeys: String, CodingKey {
            case id, provider, weight, byok, health, problem
            case baseURL = "base_url"
            case credentialEnv = "credential_env"
            case upstreamModel = "upstream_model"
            case timeoutMs = "timeout_ms"
            case consecutiveFailures = "consecutive_failures"
            case lastFailure = "last_failure"
            case lastFailureAt = "last_failure_at"
            case apiVersion = "api_version"
            case region
            case awsProfile = "aws_profile"
            case tokenSource = "token_source"
        }

        /// Every key, the latest failure's as null before the first.
        public func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(id, forKey: .id)
            try container.encode(provider, forKey: .provider)
            try container.encode(baseURL, forKey: .baseURL)
            try container.encode(credentialEnv, forKey: .credentialEnv)
            try container.encode(upstreamModel, forKey: .upstreamModel)
            try container.encode(weight, forKey: .weight)
            try container.encode(timeoutMs, forKey: .timeoutMs)
            try container.encode(byok, forKey: .byok)
            try container.encode(health, forKey: .health)
            try container.encode(consecutiveFailures, forKey: .consecutiveFailures)
            try container.encode(problem, forKey: .problem)
            try container.encode(lastFailure, forKey: .lastFailure)
            try container.encode(lastFailureAt, forKey: .lastFailureAt)
            try container.encodeIfPresent(apiVersion, forKey: .apiVersion)
            try container.encodeIfPresent(region, forKey: .region)
            try container.encodeIfPresent(awsProfile, forKey: .awsProfile)
            try container.encodeIfPresent(tokenSource, forKey: .tokenSource)
        }
    }

    var name: String
    var vendor: String
    var description: String
    var enabled: Bool
    var status: String
    var consentRequired: Bool
    var scenes: [String]
    var maxOutputTokens: Int64
    var maxAttachmentInputTokens: Int64
    var allowedGroups: [String]
    var blockedGroups: [String]
    var prices: Prices
    var backends: [Backend]

    enum CodingKeys: String, CodingKey {
        case name, vendor, description, enabled, status, scenes, prices, backends
        case consentRequired = "consent_required"
        case maxOutputTokens = "max_output_tokens"
        case maxAttachmentInputTokens = "max_attachment_input_tokens"
        case allowedGroups = "allowed_groups"
        case blockedGroups = "blocked_groups"
    }

    public init(_ model: Lumen_Registry_V1_Model) {
        name = model.name
        vendor = model.vendor
        description = model.description_p
        enabled = model.enabled
        status = model.status.publicName
        consentRequired = model.consentRequired
        scenes = model.scenes.map(\.publicName)
        maxOutputTokens = model.maxOutputTokens
        maxAttachmentInputTokens = model.maxAttachmentInputTokens
        allowedGroups = model.allowedGroupIds
        blockedGroups = model.blockedGroupIds
        prices = Prices(
            input: USD.amount(model.prices.inputPerMillionMicros), cachedInput: USD.amount(model.prices.cachedInputPerMillionMicros),
            cacheWrite: USD.amount(Pricing.cacheWritePrice(model.prices)), output: USD.amount(model.prices.outputPerMillionMicros),
            perRequest: USD.amount(model.prices.perRequestMicros))
        backends = model.backends.map {
            Backend(
                id: $0.id, provider: $0.provider.publicName, baseURL: $0.baseURL, credentialEnv: $0.credentialEnv,
                upstreamModel: $0.upstreamModel, weight: $0.weight, timeoutMs: $0.timeoutMs, byok: $0.byok,
                health: $0.health.publicName, consecutiveFailures: $0.consecutiveFailures, problem: $0.problem,
                lastFailure: $0.lastFailure.isEmpty ? nil : $0.lastFailure,
                lastFailureAt: $0.hasLastFailureAt ? RFC3339.format(millis: $0.lastFailureAt.millis) : nil,
                apiVersion: $0.provider == .azure ? ($0.apiVersion.isEmpty ? AzureProvider.defaultAPIVersion : $0.apiVersion) : nil,
                region: $0.provider == .bedrock ? $0.region : nil, awsProfile: $0.provider == .bedrock ? $0.awsProfile : nil,
                tokenSource: $0.tokenSource.isEmpty ? nil : $0.tokenSource)
        }
    }
}

/// A list, as the REST API returns one: `{"object": "list", "data": […]}`.
public struct ListOutput<Item: Encodable>: Encodable {
    var object = "list"
    var data: [Item]

    public init(_ data: [Item]) { self.data = data }
}
