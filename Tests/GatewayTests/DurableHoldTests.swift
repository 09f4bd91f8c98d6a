import Foundation
import HTTPTypes
import HummingbirdTesting
import LumenAPI
import LumenMock
import LumenTesting
import NIOCore
import RPCSupport
import SharedRules
import Synchronization
import Testing

@testable import Gateway

/// A meter that places holds through the ledger's own but gives their durability when the test
/// says so: what a slow commit, or one that fails, looks like to the gateway.
final class GatedMeter: HoldMeter {
    let inner: any HoldMeter
    let gate = HoldDurability()
    let placed = Atomic(0)

    init(_ inner: any HoldMeter) { self.inner = inner }

    var isConnected: Bool { true }

    func place(_ request: Lumen_Ledger_V1_ReserveRequest) async throws -> Reservation {
        var reservation = try await inner.place(request)
        _ = await reservation.durability.wait()
        reservation.durability = gate
        placed.add(1, ordering: .relaxed)
        return reservation
    }

    func settle(_ request: Lumen_Ledger_V1_SettleRequest, completion: @escaping @Sendable (Result<Void, ServiceError>) -> Void) {
        inner.settle(request, completion: completion)
    }

    func release(_ request: Lumen_Ledger_V1_ReleaseRequest) async throws { try await inner.release(request) }
}

/// The mock upstream, counting its calls.
final class CountingProvider: InProcessProvider {
    let calls = Atomic(0)

    func respond(to call: InProcessCall) throws -> InProcessAnswer {
        calls.add(1, ordering: .relaxed)
        return try MockProvider().respond(to: call)
    }
}

@Suite("The hold: decided before the upstream call, durable before the caller's first byte")
struct DurableHoldTests {
    static let backend = Lumen_Registry_V1_Backend.with {
        $0.id = "mock"
        $0.provider = .mock
    }

    /// Runs `body` with a gateway whose holds wait on a `GatedMeter`'s gate.
    static func gated(
        _ body: @Sendable @escaping (GatewayHarness, String, GatedMeter, CountingProvider) async throws -> Void
    ) async throws {
        let provider = CountingProvider()
        let meter = Mutex<GatedMeter?>(nil)
        try await GatewayHarness.run(
            model: "gpt-test", vendor: "OpenAI", backend: backend, provider: provider,
            meter: { inner in
                let gated = GatedMeter(inner)
                meter.withLock { $0 = gated }
                return gated
            }
        ) { gateway, secret, _ in
            try await body(gateway, secret, try #require(meter.withLock { $0 }), provider)
        }
    }

    /// Waits until the upstream has been called `count` times.
    static func called(_ provider: CountingProvider, _ count: Int) async throws {
        let deadline = ContinuousClock.now + .seconds(10)
        while provider.calls.load(ordering: .relaxed) < count {
            guard ContinuousClock.now < deadline else { throw CancellationError() }
            try await Task.sleep(for: .milliseconds(5))
        }
    }

    static let chat = #"{"model":"gpt-test","messages":[{"role":"user","content":"hello"}],"max_tokens":20}"#
    static let stream = #"{"model":"gpt-test","messages":[{"role":"user","content":"hello"}],"max_tokens":20,"stream":true}"#

    @Test("The upstream answers while the hold commits; the caller hears nothing until it is durable")
    func answerWaitsForDurability() async throws {
        try await Self.gated { gateway, secret, meter, provider in
            let answered = Atomic(false)
            let request = Task {
                let response = try await gateway.raw(.post, "/v1/chat/completions", json: Self.chat, bearer: secret)
                answered.store(true, ordering: .relaxed)
                return response
            }
            try await Self.called(provider, 1)
            try await Task.sleep(for: .milliseconds(200))
            let early = answered.load(ordering: .relaxed)
            #expect(!early, "the answer went out before the hold was durable")
            meter.gate.resolve(.success(()))
            let response = try await request.value
            #expect(response.status == .ok)
            #expect(String(buffer: response.body).contains("chat.completion"))
        }
    }

    @Test("A hold that does not become durable: 503 ledger_unavailable, JSON or stream, the upstream's answer dropped")
    func notDurableIsUnavailable() async throws {
        try await Self.gated { gateway, secret, meter, provider in
            let json = Task { try await gateway.raw(.post, "/v1/chat/completions", json: Self.chat, bearer: secret) }
            let stream = Task { try await gateway.raw(.post, "/v1/chat/completions", json: Self.stream, bearer: secret) }
            try await Self.called(provider, 2)
            meter.gate.resolve(.failure(ServiceError(.unavailable, "ledger_unavailable", "the batch did not commit")))
            for response in [try await json.value, try await stream.value] {
                #expect(response.status == .serviceUnavailable)
                let body = String(buffer: response.body)
                #expect(body.contains("\"ledger_unavailable\"") && !body.contains("chat.completion"), "\(body)")
            }
        }
    }
}
