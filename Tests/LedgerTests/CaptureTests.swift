import Foundation
import GRPCCore
@testable import Ledger
import LumenAPI
import LumenTesting
import RPCSupport
import SharedRules
import Testing

/// Capturing prompts and answers: off by default, on per organisation, client or key (the most
/// specific setting wins), kept for its retention, then deleted; shown to whoever may see the request.
@Suite("Captured prompts and answers")
struct CaptureTests {
    @Test("A captured request is kept for its retention and deleted on time; a key's setting beats the organisation's", arguments: TestStore.available)
    func capture(store: TestStore) async throws {
        let clock = ManualClock()
        try await TestServices.run(clock: clock.wallClock, store: store) { services in
            let ledger = services.ledger
            let lumen = services.asInternal
            try await services.registerMeteredModels(["small"])
            let tenant = try await services.tenant()
            let member = try await services.accounts.createUser(
                .with {
                    $0.organizationID = tenant.organizationID
                    $0.email = "member@acme.test"
                    $0.displayName = "Member"
                }, metadata: tenant.metadata
            ).user
            let admin = Lumen_Common_V1_PrincipalRef.user(tenant.adminUserID)
            let quiet = try await services.keys.createKey(.with { $0.name = "quiet" }, metadata: tenant.metadata).key
            let loud = try await services.keys.createKey(.with { $0.name = "loud" }, metadata: tenant.metadata).key
            func reserve(_ id: String, key: String) -> Lumen_Ledger_V1_ReserveRequest {
                var request = OwnerTotalsTests.reserve(id, key: key, owner: .with { $0.type = .organization; $0.id = tenant.organizationID }, model: "small")
                request.organizationID = tenant.organizationID
                return request
            }
            // Off by default: a reserve says nothing about capturing.
            #expect(!(try await ledger.reserve(reserve("req_0", key: loud.id), metadata: lumen)).hasCapture)
            // On for the organisation, off for one key.
            func set(_ owner: Lumen_Common_V1_PrincipalRef, enabled: Bool) async throws {
                _ = try await ledger.setCapture(
                    .with {
                        $0.rule = .with {
                            $0.owner = owner
                            $0.enabled = enabled
                            $0.retentionDays = 1
                            $0.maxBytes = 2_048
                        }
                    }, metadata: tenant.metadata)
            }
            try await set(.with { $0.type = .organization }, enabled: true)
            try await set(.with { $0.type = .key; $0.id = quiet.id }, enabled: false)
            #expect(!(try await ledger.reserve(reserve("req_1", key: quiet.id), metadata: lumen)).hasCapture)
            let captured = try await ledger.reserve(reserve("req_2", key: loud.id), metadata: lumen)
            #expect(captured.hasCapture && captured.capture.maxBytes == 2_048 && captured.capture.retentionDays == 1)
            _ = try await ledger.settle(
                .with {
                    $0.requestID = "req_2"
                    $0.inputTokens = 3
                    $0.outputTokens = 4
                    $0.capture = .with {
                        $0.prompt = #"{"messages":[{"role":"user","content":"the secret plan"}]}"#
                        $0.answer = "Here is the plan."
                        $0.retentionDays = captured.capture.retentionDays
                    }
                }, metadata: lumen)
            let got = try await ledger.getRequestCapture(.with { $0.requestID = "req_2" }, metadata: tenant.metadata).capture
            #expect(got.prompt.contains("the secret plan") && got.answer == "Here is the plan." && !got.truncated)
            #expect(got.expiresAt.millis == clock.nowMillis + 86_400_000)
            let log = try await ledger.listRequests(.init(), metadata: tenant.metadata).lines
            #expect(log.first { $0.requestID == "req_2" }?.captured == true && log.first { $0.requestID == "req_1" }?.captured == false)
            // Whoever may not see the request is told nothing is there.
            let person = try await services.person(member.id, organizationID: tenant.organizationID)
            let hidden = await #expect(throws: RPCError.self) {
                _ = try await ledger.getRequestCapture(.with { $0.requestID = "req_2" }, metadata: services.acting(person))
            }
            #expect(hidden.map(reason(of:)) == "capture_not_found")
            let refused = await #expect(throws: RPCError.self) {
                _ = try await ledger.setCapture(.with { $0.rule = .with { $0.owner = admin; $0.enabled = true; $0.retentionDays = 1; $0.maxBytes = 2_048 } }, metadata: tenant.metadata)
            }
            #expect(refused.map(reason(of:)) == "invalid_owner")
            for (days, bytes, code) in [(0, 2_048, "invalid_retention_days"), (91, 2_048, "invalid_retention_days"), (1, 100, "invalid_max_bytes")] {
                let wrong = await #expect(throws: RPCError.self) {
                    _ = try await ledger.setCapture(
                        .with { $0.rule = .with { $0.owner = .with { $0.type = .organization }; $0.enabled = true; $0.retentionDays = Int32(days); $0.maxBytes = Int64(bytes) } },
                        metadata: tenant.metadata)
                }
                #expect(wrong.map(reason(of:)) == code)
            }
            #expect(try await ledger.listCaptures(.init(), metadata: tenant.metadata).rules.count == 2)
            // A day later it is gone.
            clock.advance(seconds: 86_400)
            try await services.ledgerService.pruneCaptures()
            let gone = await #expect(throws: RPCError.self) {
                _ = try await ledger.getRequestCapture(.with { $0.requestID = "req_2" }, metadata: tenant.metadata)
            }
            #expect(gone.map(reason(of:)) == "capture_not_found")
            let left: Int64 = try await services.ledgerService.read { db in try await db.rows("SELECT COUNT(*) FROM request_captures", [])[0][0] }
            #expect(left == 0)
        }
    }
}
