import Crypto
import Foundation
import GRPCCore
import Gateway
import Hummingbird
import LumenAPI
import RPCSupport
import SharedRules

/// Seed 001's profile card: who the person is and the six tiles — groups, coins used, tokens
/// used, favorite model, coins available, refill rate — from the accounts service and the
/// ledger's totals (never a scan of usage lines).
struct ProfileController: Sendable {
    let services: GatewayServices
    let coins: Coins
    /// Whether the card carries a Gravatar address (`--gravatar`); else `avatar_url` is null.
    var gravatar = false

    func addRoutes(to group: RouterGroup<DashboardContext>) {
        group.get("me/profile", use: profile)
    }

    @Sendable func profile(_ request: Request, context: DashboardContext) async throws -> JSONResponse<ProfileObject> {
        JSONResponse(try await profile(context))
    }

    /// The signed-in person's card; `/api/me/profile` and the profile page show the same.
    func profile(_ context: DashboardContext) async throws -> ProfileObject {
        let person = try context.person
        let metadata = try context.acting(services)
        let owner = Lumen_Common_V1_PrincipalRef.user(person.userID)
        let (user, groups, usage, pool, conversations) = try await APIError.translating {
            async let user = services.accounts.getUser(.with { $0.userID = person.userID }, metadata: metadata).user
            async let groups = services.accounts.listGroups(.init(), metadata: metadata).groups
            async let usage = services.ledger.getOwnerUsage(.with { $0.owner = owner }, metadata: metadata)
            async let pool = services.ledger.getPool(.with { $0.owner = owner }, metadata: metadata).pool
            async let conversations = services.conversations.listConversations(
                .with { $0.page = .with { $0.limit = 1 } }, metadata: metadata
            ).pageInfo.total
            return try await (user, groups, usage, pool, conversations)
        }
        let models = usage.models
        let web = usage.origins.first { $0.origin == .web }
        let names = Dictionary(groups.map { ($0.id, $0.name) }, uniquingKeysWith: { first, _ in first })
        return ProfileObject(
            user: UserObject(user), avatarURL: gravatar ? ProfileObject.gravatar(user.email) : nil,
            groups: user.groupIds.map { GroupRef(id: $0, name: names[$0] ?? $0) },
            coinsUsed: coins.amount(micros: models.reduce(0) { $0 + $1.costMicros }),
            tokensUsed: models.reduce(0) { $0 + $1.tokens },
            requests: models.reduce(0) { $0 + $1.requests },
            // The ledger orders models by requests, then tokens.
            favoriteModel: models.first?.logicalModel, pool: PoolObject(pool, coins: coins),
            webChat: WebChatObject(
                conversations: conversations, requests: web?.requests ?? 0,
                tokens: web?.tokens ?? 0,
                coins: coins.amount(micros: web?.costMicros ?? 0),
                lastUsedAt: web.map { RFC3339.format(millis: $0.lastUsedAt.millis) }))
    }
}

struct GroupRef: Encodable, Sendable {
    var id: String
    var name: String
}

/// The profile card.
struct ProfileObject: Encodable, Sendable {
    var user: UserObject
    /// The person's Gravatar picture, when the deployment shows them (`--gravatar`); else null.
    var avatarURL: String?
    var groups: [GroupRef]
    var coinsUsed: Decimal
    var tokensUsed: Int64
    var requests: Int64
    /// The model used most (most requests; ties: most tokens); null before the first request.
    var favoriteModel: String?
    /// Coins available: the person's own pool.
    var pool: PoolObject
    /// What the person did through the dashboard's web chat (part of the totals above).
    var webChat: WebChatObject

    /// Gravatar's address for an email: the SHA-256 of the trimmed, lower-cased address.
    static func gravatar(_ email: String) -> String {
        let normalized = email.trimmingCharacters(in: .whitespacesAndNewlines).lowercased()
        let digest = SHA256.hash(data: Data(normalized.utf8)).map { String(format: "%02x", $0) }.joined()
        return "https://www.gravatar.com/avatar/\(digest)?d=identicon"
    }

    enum CodingKeys: String, CodingKey {
        case user, groups, requests, pool
        case avatarURL = "avatar_url"
        case coinsUsed = "coins_used"
        case tokensUsed = "tokens_used"
        case favoriteModel = "favorite_model"
        case webChat = "web_chat"
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(user, forKey: .user)
        try container.encode(avatarURL, forKey: .avatarURL)
        try container.encode(groups, forKey: .groups)
        try container.encode(coinsUsed, forKey: .coinsUsed)
        try container.encode(tokensUsed, forKey: .tokensUsed)
        try container.encode(requests, forKey: .requests)
        try container.encode(favoriteModel, forKey: .favoriteModel)
        try container.encode(pool, forKey: .pool)
        try container.encode(webChat, forKey: .webChat)
    }
}

/// The profile's web-chat row: requests, tokens and coins through the web chat, and its last use.
struct WebChatObject: Encodable, Sendable {
    /// Conversations the person has (deleted ones no longer count).
    var conversations: Int64
    var requests: Int64
    var tokens: Int64
    var coins: Decimal
    var lastUsedAt: String?

    enum CodingKeys: String, CodingKey {
        case conversations, requests, tokens, coins
        case lastUsedAt = "last_used_at"
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(conversations, forKey: .conversations)
        try container.encode(requests, forKey: .requests)
        try container.encode(tokens, forKey: .tokens)
        try container.encode(coins, forKey: .coins)
        try container.encode(lastUsedAt, forKey: .lastUsedAt)
    }
}
