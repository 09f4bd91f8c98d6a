import GRDB
import GRPCCore
import Logging
import LumenAPI
import RPCSupport
import ServiceLifecycle
import Storage
import Synchronization

/// The ledger service: pools, holds, usage lines and billing.
///
/// Reserve, settle and release — one at a time or many in flight over `Meter` — go through
/// one `GroupCommit`, so concurrent holds share a durable transaction. Pool administration
/// (configure, grant, balances) and billing aggregates arrive with the ledger issue and
/// answer UNIMPLEMENTED until then.
public struct LedgerService: Sendable {
    let writer: any DatabaseWriter
    let clock: WallClock
    let logger: Logger
    let committer: GroupCommit<Metering.Operation, Metering.Outcome>

    /// Opens the ledger database at `location`.
    public init(location: ServiceDatabase.Location, clock: WallClock = .system, logger: Logger) throws {
        let writer = try ServiceDatabase.open(name: "ledger", at: location, migrator: LedgerStore.migrator)
        self.writer = writer
        self.clock = clock
        self.logger = logger
        let book = Book()
        self.committer = GroupCommit(
            writer: writer, savepoints: false, beforeCommit: { db in try book.flush(db) }, afterRollback: { book.reset() }
        ) { db, operation in
            try Metering.apply(db, book, operation, now: clock.nowMillis)
        }
    }

    private func unimplemented(_ method: String) throws -> Never {
        _ = try Caller.require()
        throw ServiceError.unimplemented("LedgerService.\(method)")
    }

    /// Settles every hold expired by now at its estimate (see `Metering.reconcile`); how many.
    public func reconcileExpiredHolds() async throws -> Int {
        guard case .reconciled(let count) = try await meter(.reconcile) else { return 0 }
        if count > 0 {
            logger.warning("expired holds settled at their estimate", metadata: ["holds": "\(count)"])
        }
        return count
    }

    /// The reconciler, to run next to the service: a sweep every `interval`.
    public func reconciler(every interval: Duration = .seconds(60)) -> some Service {
        HoldReconciler(ledger: self, interval: interval)
    }

    /// Runs one metering operation through the group commit.
    func meter(_ operation: Metering.Operation) async throws -> Metering.Outcome {
        let result = await withCheckedContinuation { continuation in
            committer.enqueue(operation) { continuation.resume(returning: self.settled($0, operation)) }
        }
        return try result.get()
    }

    /// A committed operation's result, with storage failures logged and turned into
    /// `ledger_unavailable` (the caller may retry: every operation is idempotent).
    func settled(_ result: Result<Metering.Outcome, any Error>, _ operation: Metering.Operation) -> Result<Metering.Outcome, ServiceError> {
        switch result {
        case .success(let outcome): return .success(outcome)
        case .failure(let error as ServiceError): return .failure(error)
        case .failure(let error):
            logger.error("ledger write failed", metadata: ["request_id": "\(operation.requestID)", "error": "\(error)"])
            return .failure(ServiceError(.unavailable, "ledger_unavailable", "the ledger could not record this request; try again"))
        }
    }

    /// The `Meter` stream's message for an operation's result; failures are a status, not an error.
    static func answer(_ result: Result<Metering.Outcome, ServiceError>, requestID: String) -> Lumen_Ledger_V1_MeterResponse {
        .with {
            $0.requestID = requestID
            switch result {
            case .success(.reserved(let expiresAt)): $0.holdExpiresAt = .init(millis: expiresAt)
            case .success: break
            case .failure(let failure):
                $0.statusCode = Int32(failure.status.rawValue)
                $0.reason = failure.code
                $0.message = failure.message
            }
        }
    }
}

extension LedgerService: Lumen_Ledger_V1_LedgerService.SimpleServiceProtocol {
    public func getPool(request: Lumen_Ledger_V1_GetPoolRequest, context: ServerContext) async throws -> Lumen_Ledger_V1_GetPoolResponse {
        let organizationID = try Caller.organization(request.organizationID)
        guard request.owner.type != .unspecified, !request.owner.id.isEmpty else {
            throw ServiceError.invalid("invalid_owner", "owner is required", param: "owner")
        }
        let now = clock.nowMillis
        let pool = try await writer.read { db in
            try PoolRecord.load(db, organizationID: organizationID, owner: request.owner, now: now)
        }
        return .with {
            $0.pool = .with {
                $0.organizationID = organizationID
                $0.owner = request.owner
                $0.mode = pool.poolMode
                $0.balanceMicros = pool.balanceMicros
                $0.reservedMicros = pool.reservedMicros
                if let limit = pool.limitMicros { $0.limitMicros = limit }
                $0.refillPerHourMicros = pool.refillPerHourMicros
                if let next = pool.nextRefillAt { $0.nextRefillAt = .init(millis: next) }
                $0.spentMicros = pool.spentMicros
                $0.asOf = .init(millis: now)
            }
        }
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
        try Caller.requireInternal()
        guard case .reserved(let expiresAt) = try await meter(.reserve(request)) else { return .init() }
        return .with { $0.expiresAt = .init(millis: expiresAt) }
    }
    public func settle(request: Lumen_Ledger_V1_SettleRequest, context: ServerContext) async throws -> Lumen_Ledger_V1_SettleResponse {
        try Caller.requireInternal()
        guard case .settled(let line) = try await meter(.settle(request)) else { return .init() }
        return .with { $0.line = line }
    }
    public func release(request: Lumen_Ledger_V1_ReleaseRequest, context: ServerContext) async throws -> Lumen_Ledger_V1_ReleaseResponse {
        try Caller.requireInternal()
        _ = try await meter(.release(request))
        return .init()
    }

    /// Every operation is answered as soon as its batch commits, in whatever order that is.
    /// Messages go straight into the group commit as they arrive (no task per message);
    /// answers go back through one writer task because an `RPCWriter` takes one write at a
    /// time. The stream ends once every operation received has been answered.
    public func meter(
        request: RPCAsyncSequence<Lumen_Ledger_V1_MeterRequest, any Error>,
        response: RPCWriter<Lumen_Ledger_V1_MeterResponse>,
        context: ServerContext
    ) async throws {
        try Caller.requireInternal()
        let (answers, outbox) = AsyncStream.makeStream(of: Lumen_Ledger_V1_MeterResponse.self)
        // Operations in flight, and whether the caller has sent its last.
        let open = Mutex((inFlight: 0, ended: false))
        @Sendable func answered(_ answer: Lumen_Ledger_V1_MeterResponse) {
            outbox.yield(answer)
            let done = open.withLock { state in
                state.inFlight -= 1
                return state.ended && state.inFlight == 0
            }
            if done { outbox.finish() }
        }
        try await withThrowingDiscardingTaskGroup { group in
            group.addTask {
                for await answer in answers { try await response.write(answer) }
            }
            defer {
                let done = open.withLock { state in
                    state.ended = true
                    return state.inFlight == 0
                }
                if done { outbox.finish() }
            }
            for try await message in request {
                let operation: Metering.Operation
                switch message.op {
                case .reserve(let request): operation = .reserve(request)
                case .settle(let request): operation = .settle(request)
                case .release(let request): operation = .release(request)
                case nil:
                    outbox.yield(.with {
                        $0.statusCode = Int32(RPCError.Code.invalidArgument.rawValue)
                        $0.reason = "empty_operation"
                        $0.message = "a MeterRequest needs one of reserve, settle, release"
                    })
                    continue
                }
                open.withLock { $0.inFlight += 1 }
                committer.enqueue(operation) { result in
                    answered(Self.answer(self.settled(result, operation), requestID: operation.requestID))
                }
            }
        }
    }

    public func listUsage(request: Lumen_Ledger_V1_ListUsageRequest, context: ServerContext) async throws -> Lumen_Ledger_V1_ListUsageResponse {
        let organizationID = try Caller.organization(request.filter.organizationID)
        let filter = try UsageQuery(request.filter, organizationID: organizationID)
        let page = try Page(request.page, defaultLimit: 50, maxLimit: 100)
        let (lines, total) = try await writer.read { db in
            let query = filter.request
            return (
                try query.order(Column("created_at").desc, Column("request_id").desc)
                    .limit(page.limit, offset: page.offset).fetchAll(db),
                try query.fetchCount(db)
            )
        }
        return .with {
            $0.lines = lines.map(\.message)
            $0.pageInfo = page.info(total: total)
        }
    }
    public func getBilling(request: Lumen_Ledger_V1_GetBillingRequest, context: ServerContext) async throws -> Lumen_Ledger_V1_GetBillingResponse {
        try unimplemented("GetBilling")
    }
}

/// Sweeps expired holds on a timer (`LedgerService.reconcileExpiredHolds`) until shutdown.
struct HoldReconciler: Service {
    let ledger: LedgerService
    let interval: Duration

    func run() async throws {
        while !Task.isShuttingDownGracefully {
            do {
                try await Task.sleep(for: interval)
            } catch {
                return
            }
            do {
                // A sweep settles at most a batch; keep going while there were that many.
                while try await ledger.reconcileExpiredHolds() >= Metering.reconcileBatch {}
            } catch {
                ledger.logger.error("reconciling expired holds failed; will retry", metadata: ["error": "\(error)"])
            }
        }
    }
}
