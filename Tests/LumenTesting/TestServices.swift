import Synchronization
import Accounts
import Conversations
import Foundation
import GRPCCore
import GRPCInProcessTransport
import Gateway
import Keys
import Ledger
import Logging
import LumenAPI
import LumenServer
import ModelRegistry
import RPCSupport
import SharedRules
import Storage

/// The services on in-memory databases behind the real `AuthInterceptor`, reached over
/// the in-process transport, for the duration of a test.
public struct TestServices: Sendable {
    public let client: GRPCClient<InProcessTransport.Client>
    public let internalToken: String
    /// The keys service itself, for what only its owner can see (watchers).
    public let keysService: KeysService
    /// The ledger service itself, for its maintenance (the reconciler's sweep).
    public let ledgerService: LedgerService

    public var accounts: Lumen_Accounts_V1_AccountsService.Client<InProcessTransport.Client> { .init(wrapping: client) }
    public var conversations: Lumen_Conversations_V1_ConversationsService.Client<InProcessTransport.Client> {
        .init(wrapping: client)
    }
    public var keys: Lumen_Keys_V1_KeysService.Client<InProcessTransport.Client> { .init(wrapping: client) }
    public var ledger: Lumen_Ledger_V1_LedgerService.Client<InProcessTransport.Client> { .init(wrapping: client) }
    public var registry: Lumen_Registry_V1_ModelRegistryService.Client<InProcessTransport.Client> { .init(wrapping: client) }

    /// What the HTTP facade needs, wired to these services.
    public var gatewayServices: GatewayServices {
        GatewayServices(
            accounts: accounts, conversations: conversations, keys: localKeys, ledger: ledger, registry: registry, internalToken: internalToken,
            meter: ledgerService.localMeter)
    }

    /// The keys service as `lumen serve`'s gateway calls it in one process: unary calls
    /// straight to the service, authenticated as the servers do (`KeysLocalClient`).
    public var localKeys: KeysLocalClient {
        let resolver = KeysTokenResolver(keys: keys, accounts: accounts, internalToken: internalToken)
        return keysService.localClient(
            authenticating: AuthInterceptor(internalToken: internalToken, resolver: resolver), streams: keys)
    }

    /// The model the ledger's tests meter: a micro-dollar a token, input, cached or output — so
    /// that a hold of N input tokens is N micro-USD, and a settlement costs its tokens' sum.
    public static let meteredModel = Lumen_Registry_V1_Model.with {
        $0.name = "gpt-test"
        $0.vendor = "OpenAI"
        $0.maxOutputTokens = 1_024
        $0.prices = .with {
            $0.inputPerMillionMicros = 1_000_000
            $0.cachedInputPerMillionMicros = 1_000_000
            $0.outputPerMillionMicros = 1_000_000
        }
    }

    /// Registers models named `names` at `meteredModel`'s prices, for the ledger to price them.
    public func registerMeteredModels(_ names: [String], vendor: String = "v") async throws {
        for name in names {
            var model = Self.meteredModel
            model.name = name
            model.vendor = vendor
            model.scenes = [.chat, .embedding]
            _ = try await registry.upsertModel(.with { $0.model = model }, metadata: asInternal)
        }
    }

    /// Metadata of the deployment's internal caller.
    public var asInternal: Metadata { .bearer(internalToken) }

    /// Runs `body` with fresh services; `clock` is what they take for now; `store` is where the
    /// services keep their tables (SQLite at `location`, or a fresh PostgreSQL database).
    public static func run<Result: Sendable>(
        clock: WallClock = .system,
        location: ServiceDatabase.Location = .inMemory,
        store: TestStore = .sqlite,
        _ body: @Sendable (TestServices) async throws -> Result
    ) async throws -> Result {
        switch store {
        case .sqlite:
            return try await run(clock: clock, location: location, shared: .sqlite(location), body)
        case .postgres:
            return try await TestPostgres.withDatabase { database in
                try await run(clock: clock, location: location, shared: .postgres(database), body)
            }
        }
    }

    /// Runs services, the way `run` does, on the same tables.
    public typealias Runner = @Sendable (_ body: @Sendable (TestServices) async throws -> Void) async throws -> Void

    /// Gives `body` a `Runner` that runs services on one set of tables each time it is called —
    /// the files at `location`, or one fresh PostgreSQL database — to see what survives a restart.
    public static func twice(
        location: ServiceDatabase.Location, store: TestStore, _ body: @Sendable (Runner) async throws -> Void
    ) async throws {
        try await twice(location: location, store: store) { runner, _ in try await body(runner) }
    }

    /// `twice`, with where the tables are, for a test that looks at them between runs.
    public static func twice(
        location: ServiceDatabase.Location, store: TestStore, _ body: @Sendable (@escaping Runner, StoreLocation) async throws -> Void
    ) async throws {
        switch store {
        case .sqlite:
            try await body({ services in try await run(clock: .system, location: location, shared: .sqlite(location), services) },
                .sqlite(location))
        case .postgres:
            try await TestPostgres.withDatabase { database in
                try await body({ services in
                    try await run(clock: .system, location: location, shared: .postgres(database), services)
                }, .postgres(database))
            }
        }
    }

    static func run<Result: Sendable>(
        clock: WallClock, location: ServiceDatabase.Location, shared: StoreLocation,
        _ body: @Sendable (TestServices) async throws -> Result
    ) async throws -> Result {
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        let registryStore = try await ModelRegistryService.openStore(shared, logger: logger)
        let keysStore = try await KeysService.openStore(shared, logger: logger)
        let accounts = AccountsService(store: try await AccountsService.openStore(shared, logger: logger), clock: clock, logger: logger)
        let conversations = ConversationsService(
            store: try await ConversationsService.openStore(shared, logger: logger), clock: clock, logger: logger)
        // As `lumen serve` does where accounts and conversations run.
        try await ConversationsHandOver.run(from: accounts, to: conversations, logger: logger)
        let ledgerStore = try await LedgerService.openStore(shared, logger: logger)
        let token = "it-test-" + Identifier.secret(count: 32)
        let made = Made()
        return try await withLocalServices(
            internalToken: token,
            making: { client in
                // Keys, the ledger and the registry ask accounts and keys who exists, as in `lumen serve`.
                let directory = ServiceDirectory(
                    accounts: Lumen_Accounts_V1_AccountsService.Client(wrapping: client),
                    keys: Lumen_Keys_V1_KeysService.Client(wrapping: client), internalToken: token)
                let keys = KeysService(store: keysStore, clock: clock, directory: directory, logger: logger)
                // The ledger asks the registry for prices it does not hold (no watch runs here); the
                // ledger's own tests meter `TestServices.meteredModel` without registering it.
                let prices = PriceBook(
                    registry: Lumen_Registry_V1_ModelRegistryService.Client(wrapping: client), internalToken: token, logger: logger,
                    known: [meteredModel])
                let ledger = LedgerService(store: ledgerStore, prices: prices, clock: clock, directory: directory, logger: logger)
                made.services.withLock { $0 = (keys, ledger) }
                return [
                    accounts, conversations, keys,
                    ledger,
                    ModelRegistryService(store: registryStore, clock: clock, directory: directory, logger: logger),
                ]
            }
        ) { client in
            let (keys, ledger) = made.services.withLock { $0 }!  // set by `making`, which ran first
            return try await body(TestServices(client: client, internalToken: token, keysService: keys, ledgerService: ledger))
        }
    }

    /// The person `userID` is, as the facade establishes it for a signed-in request.
    public func person(_ userID: String, organizationID: String) async throws -> Person {
        let response = try await accounts.getUser(
            .with {
                $0.organizationID = organizationID
                $0.userID = userID
            }, metadata: asInternal)
        return Person(
            organizationID: organizationID, userID: userID, isAdmin: response.user.isAdmin,
            managedClientIDs: Set(response.managedClientIds))
    }

    /// Metadata of a Lumen process acting for `person`.
    public func acting(_ person: Person) -> Metadata { .acting(as: person, internalToken: internalToken) }

    /// An organisation with its administrator and a management token.
    public struct Tenant: Sendable {
        public var organizationID: String
        public var adminUserID: String
        public var managementToken: String
        public var metadata: Metadata { .bearer(managementToken) }
    }

    /// Bootstraps an organisation the way `lumen admin bootstrap` does.
    public func tenant(_ name: String = "Acme \(Identifier.secret(count: 6))") async throws -> Tenant {
        let result = try await OrganizationBootstrap.run(
            organization: name, adminEmail: "admin@\(name.lowercased().filter(\.isLetter)).test",
            accounts: accounts, keys: keys, internalToken: internalToken)
        return Tenant(
            organizationID: result.organizationID, adminUserID: result.adminUserID,
            managementToken: result.managementToken)
    }
}

/// What `run` made inside the services' factory.
private final class Made: Sendable {
    let services = Mutex<(KeysService, LedgerService)?>(nil)
}

/// The machine-readable reason a Lumen service gave for an RPC error.
public func reason(of error: RPCError) -> String {
    ServiceError(error).code
}

/// What a call came to: "ok", or its refusal as "<status> <code>" (`notFound user_not_found`).
public func refusal(_ call: () async throws -> Void) async -> String {
    do {
        try await call()
        return "ok"
    } catch let error as RPCError {
        return "\(error.code) \(reason(of: error))"
    } catch {
        return "\(error)"
    }
}

/// A clock the test moves by hand.
public final class ManualClock: Sendable {
    private let millis: Mutex<Int64>

    public init(_ start: Date = Date(timeIntervalSince1970: 1_800_000_000)) {
        self.millis = Mutex(WallClock.millis(start))
    }

    public var wallClock: WallClock {
        WallClock { Date(timeIntervalSince1970: Double(self.millis.withLock { $0 }) / 1000) }
    }

    public func advance(seconds: Int64) {
        millis.withLock { $0 += seconds * 1000 }
    }

    public var nowMillis: Int64 { millis.withLock { $0 } }
}
