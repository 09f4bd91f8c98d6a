import ArgumentParser
import Foundation
import GRPCCore
import Gateway
import Ledger
import bench_synthetic
import Logging
import LumenAPI
import RPCSupport
import SharedRules
import Storage
import Synchronization

/// The ledger benchmark: seeds millions of usage lines, times usage pages and billing
/// queries through the ledger service, then drives holds and settlements over the gateway's
/// `Meter` stream into the durable, group-committed database.
@main
struct LedgerBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench-ledger",
        abstract: "Time usage and billing queries on a large ledger, and hold+settle throughput.",
        discussion: """
            Seeds --lines synthetic settled usage lines (half of them on key_0) into a ledger \
            database in --data-dir (reused when it already holds them), then prints p50/p99 of \
            usage pages and billing queries through LedgerService (in-process gRPC), and the \
            throughput of hold+settle pairs sent over the gateway's Meter stream with \
            --concurrency in flight, each committed durably (SQLite WAL, synchronous=FULL; or \
            PostgreSQL with --database).
            """)

    @Option(help: "Usage lines to seed.")
    var lines = 10_000_000

    @Option(help: "Directory of the benchmark's ledger database (default: a new one in the temporary directory, removed afterwards).")
    var dataDir: String?

    @Option(help: "Timed runs of each query.")
    var iterations = 200

    @Option(help: "Hold+settle pairs to time.")
    var pairs = 100_000

    @Option(help: "Requests in flight.")
    var concurrency = 512

    @Flag(help: "Only time hold+settle pairs, on an empty ledger (no seeding, no queries).")
    var onlyPairs = false

    @Option(help: "A PostgreSQL URL (postgres://user@host/db): time the pairs on a ledger there, in an empty database (with --only-pairs).")
    var database: String?

    func validate() throws {
        if database != nil, !onlyPairs { throw ValidationError("--database times hold+settle pairs only: add --only-pairs") }
    }

    func run() async throws {
        let directory = dataDir ?? (NSTemporaryDirectory() as NSString).appendingPathComponent("lumen-bench-ledger-\(UUID())")
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { if dataDir == nil { try? FileManager.default.removeItem(atPath: directory) } }
        let location = ServiceDatabase.Location.directory(directory)
        let marker = (directory as NSString).appendingPathComponent("seeded-\(lines)")
        let end = (Int64(Date().timeIntervalSince1970) / 3_600) * 3_600_000 - 1
        var seeded = SyntheticUsage.Plan(end: end)
        seeded.lines = onlyPairs ? 0 : lines
        if onlyPairs {
            // Nothing to seed: the pairs go into an empty ledger.
        } else if let text = try? String(contentsOfFile: marker, encoding: .utf8), let seededEnd = Int64(text) {
            seeded.end = seededEnd
            print("reusing \(lines.formatted()) lines in \(directory)")
        } else {
            let started = ContinuousClock.now
            try SyntheticUsage.load(seeded, at: location) { written in
                if written % 1_000_000 == 0 || written == lines {
                    print("seeded \(written.formatted()) lines (\(Self.seconds(ContinuousClock.now - started)) s)")
                }
            }
            try String(seeded.end).write(toFile: marker, atomically: true, encoding: .utf8)
        }

        var quiet = Logger(label: "bench-ledger")
        quiet.logLevel = .error
        let logger = quiet
        let plan = seeded
        let postgres = try database.map { try PostgresServiceDatabase(url: $0, logger: logger) }
        let pool = postgres?.start()
        defer { pool?.cancel() }
        let store: LedgerService.Store
        if let postgres {
            store = try await LedgerService.openStore(.postgres(postgres), logger: logger)
            print("ledger on PostgreSQL: \(postgres.redactedURL)")
        } else {
            store = try LedgerService.Store(sqlite: location)
        }
        // The ledger prices holds and settlements itself: the bench model's prices, fixed.
        let prices = PriceBook(fixed: [.with {
            $0.name = "gpt-4o-mini"
            $0.prices = .with {
                $0.inputPerMillionMicros = 150_000
                $0.outputPerMillionMicros = 600_000
            }
        }])
        let service = LedgerService(store: store, prices: prices, logger: logger)
        let token = "it-bench-" + Identifier.secret(count: 32)
        try await withLocalServices([service], internalToken: token) { client in
            let ledger = Lumen_Ledger_V1_LedgerService.Client(wrapping: client)
            let metadata = Metadata.bearer(token)
            func filter(_ change: (inout Lumen_Ledger_V1_UsageFilter) -> Void = { _ in }) -> Lumen_Ledger_V1_UsageFilter {
                var filter = Lumen_Ledger_V1_UsageFilter.with {
                    $0.organizationID = plan.organizationID
                    $0.keyID = "key_0"
                }
                change(&filter)
                return filter
            }
            let week = Int64(7) * 86_400_000
            let partialStart = plan.end - 30 * 86_400_000 + 13 * 60_000 + 27_500  // mid-hour, mid-day
            let partialEnd = plan.end - 2 * 86_400_000 - 17 * 60_000
            if !onlyPairs {
                let total = try await ledger.listUsage(.with { $0.filter = filter() }, metadata: metadata).pageInfo.total
                print("")
                print("key_0 holds \(total.formatted()) of \(lines.formatted()) lines; \(iterations) timed runs each, through LedgerService")
                let queries: [(String, () async throws -> Void)] = [
                    ("usage page 1, 50 lines, no filter", {
                        _ = try await ledger.listUsage(.with { $0.filter = filter() }, metadata: metadata)
                    }),
                    ("usage page 200, 50 lines (offset 9,950)", {
                        _ = try await ledger.listUsage(
                            .with { $0.filter = filter(); $0.page = .with { $0.page = 200 } }, metadata: metadata)
                    }),
                    ("usage page 1, model + vendor + last 7 days", {
                        _ = try await ledger.listUsage(
                            .with {
                                $0.filter = filter {
                                    $0.logicalModel = "claude-3-7-sonnet"
                                    $0.modelVendor = "Anthropic"
                                    $0.startTime = .init(millis: plan.end - week)
                                }
                            }, metadata: metadata)
                    }),
                    ("billing, all time (90 days)", {
                        _ = try await ledger.getBilling(.with { $0.filter = filter() }, metadata: metadata)
                    }),
                    ("billing, 28 days cut mid-hour, by model", {
                        _ = try await ledger.getBilling(
                            .with {
                                $0.filter = filter {
                                    $0.logicalModel = "gpt-4o"
                                    $0.startTime = .init(millis: partialStart)
                                    $0.endTime = .init(millis: partialEnd)
                                }
                            }, metadata: metadata)
                    }),
                ]
                for (name, query) in queries {
                    for _ in 0..<5 { try await query() }
                    var durations: [Duration] = []
                    for _ in 0..<iterations {
                        let started = ContinuousClock.now
                        try await query()
                        durations.append(ContinuousClock.now - started)
                    }
                    durations.sort()
                    let p50 = durations[durations.count / 2]
                    let p99 = durations[min(durations.count - 1, Int((Double(durations.count) * 0.99).rounded(.up)) - 1)]
                    print("  \(name.padding(toLength: 46, withPad: " ", startingAt: 0)) p50 \(Self.millis(p50)) ms   p99 \(Self.millis(p99)) ms")
                }
            }
            let pairs = self.pairs
            let concurrency = self.concurrency
            let stream = LedgerMeter(ledger: ledger, internalToken: token, logger: logger)
            let streamed = try await withThrowingTaskGroup(of: Duration?.self) { group in
                group.addTask {
                    try await stream.run()
                    return nil
                }
                while !stream.isConnected { try await Task.sleep(for: .milliseconds(10)) }
                let elapsed = try await Self.timePairs(stream, pairs: pairs, concurrency: concurrency, plan: plan)
                group.cancelAll()
                return elapsed
            }
            let local = try await Self.timePairs(service.localMeter, pairs: pairs, concurrency: concurrency, plan: plan)
            print("")
            print("hold+settle pairs, \(concurrency) in flight, each answered once its group-committed transaction is durable:")
            for (path, elapsed) in [("over the Meter stream (a gateway elsewhere)", streamed), ("in-process (LedgerService.localMeter)", local)] {
                let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
                print("  \(path): \(pairs.formatted()) pairs in \(String(format: "%.2f", seconds)) s = \(Int(Double(pairs) / seconds).formatted()) pairs/s")
            }
        }
    }

    /// Sends `pairs` hold+settle pairs through `meter`, `concurrency` at a time; how long they took.
    static func timePairs(
        _ meter: any HoldMeter, pairs: Int, concurrency: Int, plan: SyntheticUsage.Plan
    ) async throws -> Duration {
        let next = Counter()
        let failures = Counter()
        let started = ContinuousClock.now
        await withTaskGroup(of: Void.self) { workers in
            for _ in 0..<concurrency {
                workers.addTask {
                    while true {
                        let index = next.increment()
                        guard index < pairs else { return }
                        let requestID = Identifier.ordered("req")  // as the gateway makes them
                        do {
                            try await meter.reserve(.with {
                                $0.requestID = requestID
                                $0.organizationID = plan.organizationID
                                $0.keyID = "key_t\(index % 100)"
                                $0.owner = .with { $0.type = .organization; $0.id = plan.organizationID }
                                // A hold of 1,000 micro-USD at the bench model's prices.
                                $0.inputBoundTokens = 2_000
                                $0.outputBoundTokens = 1_167
                                $0.logicalModel = "gpt-4o-mini"
                                $0.modelVendor = "OpenAI"
                                $0.scene = .chat
                                $0.accessChannel = .platform
                            })
                            try await meter.settle(.with {
                                $0.requestID = requestID
                                $0.inputTokens = 1_000
                                $0.outputTokens = 500  // 450 micro-USD
                                $0.latencyMs = 10
                            })
                        } catch {
                            _ = failures.increment()
                        }
                    }
                }
            }
        }
        let elapsed = ContinuousClock.now - started
        if failures.value > 0 { print("  \(failures.value) hold+settle pairs failed") }
        return elapsed
    }

    static func millis(_ duration: Duration) -> String {
        String(format: "%.2f", Double(duration.components.seconds) * 1e3 + Double(duration.components.attoseconds) / 1e15)
    }

    static func seconds(_ duration: Duration) -> String {
        String(format: "%.1f", Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18)
    }
}

/// A shared counter for the benchmark's workers.
final class Counter: Sendable {
    private let atomic = Atomic<Int>(0)

    /// Adds one; the value before.
    func increment() -> Int { atomic.add(1, ordering: .relaxed).oldValue }

    var value: Int { atomic.load(ordering: .relaxed) }
}
