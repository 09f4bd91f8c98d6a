import Foundation
import GRPCCore
@testable import Ledger
import LumenAPI
import LumenTesting
import RPCSupport
import SharedRules
import Testing

/// The request log: every request's line, failed ones too (kept with what the caller got),
/// newest first, filtered; a member sees their own and their clients'.
@Suite("The request log")
struct RequestLogTests {
    @Test("Settled, pending and failed requests, newest first, filtered; a failed one costs nothing and is not usage", arguments: TestStore.available)
    func log(store: TestStore) async throws {
        let clock = ManualClock()
        try await TestServices.run(clock: clock.wallClock, store: store) { services in
            let ledger = services.ledger
            let lumen = services.asInternal
            try await services.registerMeteredModels(["small", "large"])
            let ada = Lumen_Common_V1_PrincipalRef.user("usr_ada")
            let ci = Lumen_Common_V1_PrincipalRef.client("cli_ci")
            _ = try await ledger.reserve(OwnerTotalsTests.reserve("req_1", key: "key_a", owner: ada, model: "small"), metadata: lumen)
            _ = try await ledger.settle(
                .with {
                    $0.requestID = "req_1"
                    $0.inputTokens = 10
                    $0.outputTokens = 5
                    $0.latencyMs = 120
                    $0.ttftMs = 40
                    $0.httpStatus = 200
                    $0.backendID = "primary"
                }, metadata: lumen)
            clock.advance(seconds: 1)
            _ = try await ledger.reserve(OwnerTotalsTests.reserve("req_2", key: "key_a", owner: ada, model: "large"), metadata: lumen)
            _ = try await ledger.release(
                .with {
                    $0.requestID = "req_2"
                    $0.httpStatus = 502
                    $0.errorCode = "upstream_unavailable"
                    $0.latencyMs = 3_000
                }, metadata: lumen)
            clock.advance(seconds: 1)
            _ = try await ledger.reserve(OwnerTotalsTests.reserve("req_3", key: "key_c", owner: ci, model: "small"), metadata: lumen)

            func log(_ change: (inout Lumen_Ledger_V1_ListRequestsRequest) -> Void = { _ in }) async throws -> [Lumen_Ledger_V1_UsageLine] {
                var request = Lumen_Ledger_V1_ListRequestsRequest.with { $0.organizationID = "org_1" }
                change(&request)
                return try await ledger.listRequests(request, metadata: lumen).lines
            }
            let all = try await log()
            #expect(all.map(\.requestID) == ["req_3", "req_2", "req_1"])
            #expect(all.map(\.status) == [.pending, .failed, .settled])
            let failed = all[1]
            #expect(failed.httpStatus == 502 && failed.errorCode == "upstream_unavailable" && failed.latencyMs == 3_000 && failed.costMicros == 0)
            let settled = all[2]
            #expect(settled.httpStatus == 200 && settled.ttftMs == 40 && settled.backendID == "primary" && settled.costMicros > 0)
            #expect(try await log { $0.status = .failed }.map(\.requestID) == ["req_2"])
            #expect(try await log { $0.keyID = "key_c" }.map(\.requestID) == ["req_3"])
            #expect(try await log { $0.logicalModel = "small"; $0.backendID = "primary" }.map(\.requestID) == ["req_1"])
            #expect(try await log { $0.owner = ada }.map(\.requestID) == ["req_2", "req_1"])
            #expect(try await log { $0.endTime = .init(millis: clock.nowMillis - 1_500) }.map(\.requestID) == ["req_1"])
            // The usage of a key lists what it was charged for: the failed request is not there.
            let usage = try await ledger.listUsage(.with { $0.filter = .with { $0.organizationID = "org_1"; $0.keyID = "key_a" } }, metadata: lumen)
            #expect(usage.lines.map(\.requestID) == ["req_1"] && usage.pageInfo.total == 1)
            // Refusals name their field.
            let deep = await #expect(throws: RPCError.self) {
                _ = try await log { $0.page = .with { $0.page = 101; $0.limit = 100 } }
            }
            #expect(deep.map(reason(of:)) == "invalid_page")
        }
    }

    @Test("A member sees their own requests and their clients', not another's", arguments: TestStore.available)
    func scope(store: TestStore) async throws {
        try await TestServices.run(store: store) { services in
            try await services.registerMeteredModels(["small"])
            let tenant = try await services.tenant()
            let member = try await services.accounts.createUser(
                .with {
                    $0.organizationID = tenant.organizationID
                    $0.email = "member@acme.test"
                    $0.displayName = "Member"
                }, metadata: tenant.metadata
            ).user
            for (id, owner) in [("req_m", Lumen_Common_V1_PrincipalRef.user(member.id)), ("req_a", .user(tenant.adminUserID))] {
                var reserve = OwnerTotalsTests.reserve(id, key: "", owner: owner, model: "small", origin: .web)
                reserve.organizationID = tenant.organizationID
                _ = try await services.ledger.reserve(reserve, metadata: services.asInternal)
            }
            let person = try await services.person(member.id, organizationID: tenant.organizationID)
            let own = try await services.ledger.listRequests(.init(), metadata: services.acting(person)).lines
            #expect(own.map(\.requestID) == ["req_m"])
            let everything = try await services.ledger.listRequests(.init(), metadata: tenant.metadata).lines
            #expect(Set(everything.map(\.requestID)) == ["req_m", "req_a"])
            let refused = await #expect(throws: RPCError.self) {
                _ = try await services.ledger.listRequests(.with { $0.owner = .user(tenant.adminUserID) }, metadata: services.acting(person))
            }
            #expect(refused.map(reason(of:)) == "not_permitted")
        }
    }
}
