import GRDB
import GRPCCore
import Logging
import LumenAPI
import RPCSupport
import Storage

/// The ledger service: pools, holds, usage lines and billing.
///
/// Served and reachable today, but every call answers UNIMPLEMENTED: the ledger arrives
/// with the inference and ledger issues, and nothing here pretends to work before then.
public struct LedgerService: Sendable {
    let writer: any DatabaseWriter
    let logger: Logger

    /// Opens the ledger database at `location` (its tables arrive with the ledger itself).
    public init(location: ServiceDatabase.Location, logger: Logger) throws {
        self.writer = try ServiceDatabase.open(name: "ledger", at: location, migrator: DatabaseMigrator())
        self.logger = logger
    }

    private func unimplemented(_ method: String) throws -> Never {
        _ = try Caller.require()
        throw ServiceError.unimplemented("LedgerService.\(method)")
    }
}

extension LedgerService: Lumen_Ledger_V1_LedgerService.SimpleServiceProtocol {
    public func getPool(request: Lumen_Ledger_V1_GetPoolRequest, context: ServerContext) async throws -> Lumen_Ledger_V1_GetPoolResponse {
        try unimplemented("GetPool")
    }
    public func configurePool(request: Lumen_Ledger_V1_ConfigurePoolRequest, context: ServerContext) async throws -> Lumen_Ledger_V1_ConfigurePoolResponse {
        try unimplemented("ConfigurePool")
    }
    public func grant(request: Lumen_Ledger_V1_GrantRequest, context: ServerContext) async throws -> Lumen_Ledger_V1_GrantResponse {
        try unimplemented("Grant")
    }
    public func listGrants(request: Lumen_Ledger_V1_ListGrantsRequest, context: ServerContext) async throws -> Lumen_Ledger_V1_ListGrantsResponse {
        try unimplemented("ListGrants")
    }
    public func getOrganizationBalance(request: Lumen_Ledger_V1_GetOrganizationBalanceRequest, context: ServerContext) async throws -> Lumen_Ledger_V1_GetOrganizationBalanceResponse {
        try unimplemented("GetOrganizationBalance")
    }
    public func reserve(request: Lumen_Ledger_V1_ReserveRequest, context: ServerContext) async throws -> Lumen_Ledger_V1_ReserveResponse {
        try unimplemented("Reserve")
    }
    public func settle(request: Lumen_Ledger_V1_SettleRequest, context: ServerContext) async throws -> Lumen_Ledger_V1_SettleResponse {
        try unimplemented("Settle")
    }
    public func release(request: Lumen_Ledger_V1_ReleaseRequest, context: ServerContext) async throws -> Lumen_Ledger_V1_ReleaseResponse {
        try unimplemented("Release")
    }
    public func meter(
        request: RPCAsyncSequence<Lumen_Ledger_V1_MeterRequest, any Error>,
        response: RPCWriter<Lumen_Ledger_V1_MeterResponse>,
        context: ServerContext
    ) async throws {
        try unimplemented("Meter")
    }
    public func listUsage(request: Lumen_Ledger_V1_ListUsageRequest, context: ServerContext) async throws -> Lumen_Ledger_V1_ListUsageResponse {
        try unimplemented("ListUsage")
    }
    public func getBilling(request: Lumen_Ledger_V1_GetBillingRequest, context: ServerContext) async throws -> Lumen_Ledger_V1_GetBillingResponse {
        try unimplemented("GetBilling")
    }
}
