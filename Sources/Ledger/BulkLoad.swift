import GRDB
import LumenAPI
import Storage

/// Settled usage lines written straight into a ledger database — with the rollups and the key
/// and owner totals they add to, through `Book` as settling does — for the benchmarks' data sets
/// (`bench/Synthetic`). Not part of the ledger's API: `@_spi(Bench) import Ledger` to use it.
/// No holds, no pools, no checks: a loaded line is taken as written.
@_spi(Bench) public final class BulkLoad {
    /// One settled line.
    public struct Line: Sendable {
        public var requestID: String
        public var createdAt: Int64
        public var organizationID: String
        public var keyID: String
        public var owner: Lumen_Common_V1_PrincipalRef
        public var logicalModel: String
        public var modelVendor: String
        public var scene: Lumen_Common_V1_Scene
        public var accessChannel: Lumen_Common_V1_AccessChannel
        public var origin: Lumen_Common_V1_UsageOrigin
        /// Input tokens not served from a cache.
        public var inputTokens: Int64
        public var cachedInputTokens: Int64
        public var outputTokens: Int64
        public var costMicros: Int64
        /// Input tokens written to the provider's cache.
        public var cacheWriteTokens: Int64

        public init(
            requestID: String, createdAt: Int64, organizationID: String, keyID: String, owner: Lumen_Common_V1_PrincipalRef,
            logicalModel: String, modelVendor: String, scene: Lumen_Common_V1_Scene, accessChannel: Lumen_Common_V1_AccessChannel,
            origin: Lumen_Common_V1_UsageOrigin, inputTokens: Int64, cachedInputTokens: Int64, outputTokens: Int64, costMicros: Int64,
            cacheWriteTokens: Int64 = 0
        ) {
            (self.requestID, self.createdAt, self.organizationID, self.keyID, self.owner) = (requestID, createdAt, organizationID, keyID, owner)
            (self.logicalModel, self.modelVendor, self.scene, self.accessChannel, self.origin) = (logicalModel, modelVendor, scene, accessChannel, origin)
            (self.inputTokens, self.cachedInputTokens, self.outputTokens, self.costMicros) = (inputTokens, cachedInputTokens, outputTokens, costMicros)
            self.cacheWriteTokens = cacheWriteTokens
        }
    }

    /// A day in milliseconds, as the rollups count them.
    public static let day = Rollups.day

    let writer: any DatabaseWriter
    let book = Book(holdTTLMillis: 0, prices: PriceBook(fixed: []))

    /// Opens (and creates, migrated) the ledger database at `location`.
    public init(at location: ServiceDatabase.Location) throws {
        writer = try ServiceDatabase.open(name: "ledger", at: location, migrator: LedgerStore.migrator)
    }

    /// Writes `lines` in one transaction, settled 500 ms after they were made.
    public func write(_ lines: [Line]) throws {
        try writer.write { db in
            let statement = try db.makeStatement(
                sql: """
                    INSERT INTO usage_lines (request_id, billing_transaction_id, created_at, settled_at, organization_id,
                        key_id, owner_type, owner_id, logical_model, model_vendor, scene, access_channel, input_tokens,
                        cached_input_tokens, output_tokens, cost_micros, latency_ms, origin, cache_write_tokens, status, estimated,
                        expired)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 2, 0, 0)
                    """)
            for line in lines {
                try statement.execute(arguments: [
                    line.requestID, "btx_" + line.requestID, line.createdAt, line.createdAt + 500, line.organizationID,
                    line.keyID, line.owner.type.rawValue, line.owner.id, line.logicalModel, line.modelVendor, line.scene.rawValue,
                    line.accessChannel.rawValue, line.inputTokens, line.cachedInputTokens, line.outputTokens, line.costMicros, 500,
                    line.origin.rawValue, line.cacheWriteTokens,
                ])
                let hold = Book.Hold(
                    organizationID: line.organizationID, keyID: line.keyID, owner: line.owner, logicalModel: line.logicalModel,
                    modelVendor: line.modelVendor, scene: line.scene, accessChannel: line.accessChannel,
                    estimateMicros: line.costMicros, createdAt: line.createdAt, origin: line.origin)
                book.roll(
                    hold,
                    Rollups.Totals(
                        requests: 1, inputTokens: line.inputTokens, cachedInputTokens: line.cachedInputTokens,
                        cacheWriteTokens: line.cacheWriteTokens, outputTokens: line.outputTokens, costMicros: line.costMicros))
            }
            try book.flush(SQLiteLedgerTables(db: db))
        }
    }
}
