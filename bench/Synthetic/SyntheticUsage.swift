@_spi(Bench) import Ledger
import LumenAPI
import Storage

/// Synthetic settled usage — the data sets of `bench-ledger` and `bench-pages` — loaded into a
/// ledger database through the ledger's bulk loader (`BulkLoad`, with the rollups and totals
/// settling would write). Deterministic: the same plan writes the same lines, ids and times
/// ascending, in transactions of 100,000.
public enum SyntheticUsage {
    /// A key lines are written for, and its owner (the organisation, a user or a client).
    public struct Key: Sendable {
        public var id: String
        public var owner: Lumen_Common_V1_PrincipalRef

        public init(id: String, owner: Lumen_Common_V1_PrincipalRef) {
            self.id = id
            self.owner = owner
        }
    }

    public struct Plan: Sendable {
        public var organizationID = "org_bench"
        /// Lines in all.
        public var lines = 10_000_000
        /// The keys; the first gets half of all lines, the others share the rest. Empty: 20
        /// keys of the organisation, `key_0` … `key_19`.
        public var keys: [Key] = []
        /// Lines are spread evenly over this many days, ending at `end`.
        public var days = 90
        /// Milliseconds since 1970 of the last line.
        public var end: Int64
        /// Percent of the lines made through the web chat (origin `web`); the rest through the API.
        public var webPercent = 0
        /// Starts the request ids, so that several plans can load into one database.
        public var requestPrefix = "req_"

        public init(end: Int64) {
            self.end = end
        }

        public var start: Int64 { end - Int64(days) * BulkLoad.day }

        var resolvedKeys: [Key] {
            guard keys.isEmpty else { return keys }
            let organization = Lumen_Common_V1_PrincipalRef.with {
                $0.type = .organization
                $0.id = organizationID
            }
            return (0..<20).map { Key(id: "key_\($0)", owner: organization) }
        }
    }

    static let models = [
        ("gpt-4o-mini", "OpenAI"), ("gpt-4o", "OpenAI"), ("claude-3-7-sonnet", "Anthropic"),
        ("claude-3-5-haiku", "Anthropic"), ("gemini-2.0-flash", "Google"), ("text-embedding-3-small", "OpenAI"),
    ]

    /// Writes the plan's lines into the ledger database at `location` (created if needed);
    /// `progress` is called after each transaction with the lines written so far.
    public static func load(_ plan: Plan, at location: ServiceDatabase.Location, progress: (Int) -> Void = { _ in }) throws {
        let loader = try BulkLoad(at: location)
        let keys = plan.resolvedKeys
        let step = max(1, (plan.end - plan.start) / Int64(max(1, plan.lines)))
        var random: UInt64 = 0x9E37_79B9_7F4A_7C15
        func next() -> UInt64 {
            random ^= random << 13
            random ^= random >> 7
            random ^= random << 17
            return random
        }
        var written = 0
        let chunk = 100_000
        while written < plan.lines {
            let upper = min(plan.lines, written + chunk)
            var lines: [BulkLoad.Line] = []
            lines.reserveCapacity(upper - written)
            for index in written..<upper {
                let roll = next()
                let key = keys[roll % 2 == 0 ? 0 : Int(1 + (roll >> 1) % UInt64(max(1, keys.count - 1))) % keys.count]
                let (model, vendor) = models[Int((roll >> 8) % UInt64(models.count))]
                let scene: Lumen_Common_V1_Scene = model.hasPrefix("text-embedding") ? .embedding : .chat
                let channel: Lumen_Common_V1_AccessChannel = (roll >> 16) % 10 == 0 ? .byok : .platform
                let origin: Lumen_Common_V1_UsageOrigin = Int((roll >> 44) % 100) < plan.webPercent ? .web : .api
                let input = Int64((roll >> 20) % 4_000)
                let cached = input / 4
                let output = scene == .embedding ? 0 : Int64((roll >> 32) % 1_000)
                let cost = channel == .byok ? 0 : (input * 150 + cached * 75 + output * 600) / 1_000
                let suffix = String(index)
                lines.append(
                    BulkLoad.Line(
                        requestID: plan.requestPrefix + String(repeating: "0", count: max(0, 12 - suffix.count)) + suffix,
                        createdAt: plan.start + Int64(index) * step, organizationID: plan.organizationID, keyID: key.id,
                        owner: key.owner, logicalModel: model, modelVendor: vendor, scene: scene, accessChannel: channel,
                        origin: origin, inputTokens: input - cached, cachedInputTokens: cached, outputTokens: output,
                        costMicros: cost))
            }
            try loader.write(lines)
            written = upper
            progress(written)
        }
    }
}
