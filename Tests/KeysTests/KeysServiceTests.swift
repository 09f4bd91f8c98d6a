import Foundation
import GRPCCore
@testable import Keys
import LumenAPI
import LumenTesting
import RPCSupport
import SharedRules
import Storage
import Synchronization
import Testing

@Suite("Keys service over the in-process transport")
struct KeysServiceTests {
    @Test("A created key's secret is returned once; reads show only its hint and prefix", arguments: TestStore.available)
    func secretShownOnce(store: TestStore) async throws {
        try await TestServices.run(store: store) { services in
            let tenant = try await services.tenant()
            let created = try await services.keys.createKey(.with { $0.name = "Backend Worker" }, metadata: tenant.metadata)
            let secret = created.secret
            #expect(secret.hasPrefix("sk-"))
            #expect(secret.count == 51)
            #expect(created.key.id.hasPrefix("key_"))
            #expect(created.key.keyPrefix == String(secret.prefix(9)) + "...")
            #expect(created.key.hint == "\(secret.prefix(4))...\(secret.suffix(4))")
            #expect(created.key.status == .active)
            #expect(created.key.owner.type == .organization)
            #expect(created.key.owner.id == tenant.organizationID)

            let fetched = try await services.keys.getKey(.with { $0.keyID = created.key.id }, metadata: tenant.metadata)
            let listed = try await services.keys.listKeys(.init(), metadata: tenant.metadata)
            #expect(fetched.key == created.key)
            #expect(listed.keys == [created.key])
            #expect(!"\(fetched)".contains(secret))
            #expect(!"\(listed)".contains(secret))
        }
    }

    @Test("Keys and tokens created, changed and revoked are each in the audit log once, never with their digest", arguments: TestStore.available)
    func auditLog(store: TestStore) async throws {
        try await TestServices.run(store: store) { services in
            let acme = try await services.tenant("Acme")
            let globex = try await services.tenant("Globex")
            let start = Int64(try await services.keys.listAuditLog(.with { $0.limit = 1_000 }, metadata: services.asInternal).entries.count)
            let created = try await services.keys.createKey(.with { $0.name = "ci" }, metadata: acme.metadata)
            _ = try await services.keys.updateKey(
                .with {
                    $0.keyID = created.key.id
                    $0.name = "ci-2"
                }, metadata: acme.metadata)
            _ = try await services.keys.revokeKey(.with { $0.keyID = created.key.id }, metadata: acme.metadata)
            // Revoking again changes nothing: no entry.
            _ = try await services.keys.revokeKey(.with { $0.keyID = created.key.id }, metadata: acme.metadata)
            let token = try await services.keys.createOperatorToken(.with { $0.name = "platform" }, metadata: services.asInternal)
            _ = try await services.keys.revokeOperatorToken(.with { $0.keyID = token.key.id }, metadata: services.asInternal)

            let log = try await services.keys.listAuditLog(
                .with {
                    $0.afterSequence = start
                    $0.limit = 1_000
                }, metadata: services.asInternal
            ).entries
            #expect(log.map(\.action) == ["key.create", "key.update", "key.revoke", "operator_token.create", "operator_token.revoke"])
            #expect(log.prefix(3).allSatisfy { $0.targetID == created.key.id && $0.organizationID == acme.organizationID })
            #expect(log.prefix(3).allSatisfy { $0.actorType == "management_token" && !$0.actorID.isEmpty })
            #expect(log[1].beforeJson.contains(#""name":"ci""#) && log[1].afterJson.contains(#""name":"ci-2""#))
            #expect(log.allSatisfy { !$0.beforeJson.contains("secret") && !$0.afterJson.contains("secret") }, "never a secret's digest")
            #expect(!log.contains { $0.afterJson.contains(created.secret) || $0.afterJson.contains(token.secret) })
            // Each organisation's administrators see their own entries.
            let theirs = try await services.keys.listAuditLog(.init(), metadata: acme.metadata).entries
            #expect(Set(theirs.map(\.organizationID)) == [acme.organizationID])
            #expect(try await services.keys.listAuditLog(.init(), metadata: globex.metadata).entries.allSatisfy {
                $0.organizationID == globex.organizationID
            })
            let verified = try await services.keys.verifyAuditLog(.init(), metadata: services.asInternal)
            #expect(verified.intact && verified.headHash == log.last?.hash)
        }
    }

    @Test("Only the SHA-256 digest of a secret reaches the database file")
    func secretsHashedAtRest() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("lumen-keys-\(UUID())").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let secret = try await TestServices.run(location: .directory(directory)) { services in
            let tenant = try await services.tenant()
            return try await services.keys.createKey(.init(), metadata: tenant.metadata).secret
        }
        var bytes = Data()
        for file in try FileManager.default.contentsOfDirectory(atPath: directory) where file.hasPrefix("keys.sqlite") {
            bytes += try Data(contentsOf: URL(fileURLWithPath: directory).appendingPathComponent(file))
        }
        #expect(!bytes.isEmpty)
        #expect(bytes.range(of: Data(secret.utf8)) == nil)
        #expect(bytes.range(of: Data(secret.dropFirst(3).utf8)) == nil)
    }

    @Test("Authenticate resolves active keys and refuses revoked, inactive, suspended, expired and unknown ones", arguments: TestStore.available)
    func authenticate(store: TestStore) async throws {
        let clock = ManualClock()
        try await TestServices.run(clock: clock.wallClock, store: store) { services in
            let tenant = try await services.tenant()
            func create(_ change: (inout Lumen_Keys_V1_CreateKeyRequest) -> Void = { _ in }) async throws -> Lumen_Keys_V1_CreateKeyResponse {
                var request = Lumen_Keys_V1_CreateKeyRequest()
                change(&request)
                return try await services.keys.createKey(request, metadata: tenant.metadata)
            }
            func authenticate(_ secret: String) async throws -> Lumen_Keys_V1_Key {
                try await services.keys.authenticate(.with { $0.secret = secret }, metadata: services.asInternal).key
            }
            func reasonOf(_ secret: String) async -> String? {
                do {
                    _ = try await authenticate(secret)
                    return nil
                } catch let error as RPCError {
                    #expect(error.code == .unauthenticated)
                    return reason(of: error)
                } catch {
                    return "\(error)"
                }
            }

            let good = try await create()
            #expect(try await authenticate(good.secret).id == good.key.id)
            #expect(await reasonOf("sk-" + String(repeating: "a", count: 48)) == "invalid_api_key")

            for (status, expected) in [(Lumen_Keys_V1_KeyStatus.inactive, "key_inactive"), (.suspended, "key_suspended"), (.revoked, "key_revoked")] {
                let key = try await create()
                _ = try await services.keys.updateKey(
                    .with {
                        $0.keyID = key.key.id
                        $0.status = status
                    }, metadata: tenant.metadata)
                #expect(await reasonOf(key.secret) == expected)
            }

            let expiring = try await create { $0.expiresAt = .init(millis: clock.nowMillis + 60_000) }
            #expect(try await authenticate(expiring.secret).id == expiring.key.id)
            clock.advance(seconds: 61)
            #expect(await reasonOf(expiring.secret) == "key_expired")

            // Authenticate is for Lumen's own processes only.
            await #expect(throws: RPCError.self) {
                _ = try await services.keys.authenticate(.with { $0.secret = good.secret }, metadata: tenant.metadata)
            }
        }
    }

    @Test("Calls without a valid credential are UNAUTHENTICATED; another organisation is off limits", arguments: TestStore.available)
    func credentialsAndOrganisations(store: TestStore) async throws {
        try await TestServices.run(store: store) { services in
            let acme = try await services.tenant("Acme")
            let globex = try await services.tenant("Globex")
            let globexKey = try await services.keys.createKey(.init(), metadata: globex.metadata)

            for metadata: Metadata in [[:], .bearer("mt-unknown"), .bearer(globexKey.secret), ["authorization": "Basic abc"]] {
                do {
                    _ = try await services.keys.listKeys(.init(), metadata: metadata)
                    Issue.record("expected UNAUTHENTICATED for \(metadata)")
                } catch let error as RPCError {
                    #expect(error.code == .unauthenticated)
                }
            }
            do {
                _ = try await services.keys.listKeys(.with { $0.organizationID = globex.organizationID }, metadata: acme.metadata)
                Issue.record("expected PERMISSION_DENIED")
            } catch let error as RPCError {
                #expect(error.code == .permissionDenied)
            }
            do {
                _ = try await services.keys.getKey(.with { $0.keyID = globexKey.key.id }, metadata: acme.metadata)
                Issue.record("expected NOT_FOUND")
            } catch let error as RPCError {
                #expect(error.code == .notFound)
                #expect(reason(of: error) == "key_not_found")
            }
            #expect(try await services.keys.listKeys(.init(), metadata: acme.metadata).keys.isEmpty)
            // A key is recorded as made by a user of the caller's organisation only.
            let foreign = await refusal {
                _ = try await services.keys.createKey(.with { $0.createdByUserID = globex.adminUserID }, metadata: acme.metadata)
            }
            #expect(foreign == "notFound user_not_found")
            #expect(try await services.keys.listKeys(.init(), metadata: acme.metadata).keys.isEmpty)
            let own = try await services.keys.createKey(.with { $0.createdByUserID = acme.adminUserID }, metadata: acme.metadata)
            #expect(own.key.createdByUserID == acme.adminUserID)
        }
    }

    @Test("Limits: 0 to 1,000,000 USD accepted, stored at most 100,000 USD; CNY is retired", arguments: TestStore.available)
    func limitRules(store: TestStore) async throws {
        try await TestServices.run(store: store) { services in
            let tenant = try await services.tenant()
            func create(limit: Int64?, currency: String = "") async throws -> Lumen_Keys_V1_Key {
                try await services.keys.createKey(
                    .with {
                        if let limit { $0.limitMicros = limit }
                        $0.limitCurrency = currency
                    }, metadata: tenant.metadata
                ).key
            }
            #expect(try await create(limit: nil).hasLimitMicros == false)
            #expect(try await create(limit: 0).limitMicros == 0)
            #expect(try await create(limit: 500_250_000).limitMicros == 500_250_000)
            #expect(try await create(limit: 999_999_000_000).limitMicros == 100_000_000_000)
            #expect(try await create(limit: 1_000_000_000_000).limitMicros == 100_000_000_000)
            for (limit, currency, expected) in [
                (Int64(-1), "", "invalid_limit_amount"), (1_000_000_000_001, "", "invalid_limit_amount"),
                (5_000_000, "CNY", "currency_retired"), (5_000_000, "EUR", "invalid_currency"),
            ] {
                do {
                    _ = try await create(limit: limit, currency: currency)
                    Issue.record("expected \(expected)")
                } catch let error as RPCError {
                    #expect(error.code == .invalidArgument)
                    #expect(reason(of: error) == expected)
                }
            }
            #expect(try await services.keys.listKeys(.init(), metadata: tenant.metadata).keys.count == 5)
        }
    }

    @Test("Updates change only what they name, need at least one change, and never touch a revoked key", arguments: TestStore.available)
    func updates(store: TestStore) async throws {
        try await TestServices.run(store: store) { services in
            let tenant = try await services.tenant()
            let key = try await services.keys.createKey(
                .with {
                    $0.name = "worker"
                    $0.limitMicros = 5_000_000
                    $0.models = ["gpt-4o"]
                }, metadata: tenant.metadata
            ).key
            func update(_ change: (inout Lumen_Keys_V1_UpdateKeyRequest) -> Void) async throws -> Lumen_Keys_V1_Key {
                var request = Lumen_Keys_V1_UpdateKeyRequest()
                request.keyID = key.id
                change(&request)
                return try await services.keys.updateKey(request, metadata: tenant.metadata).key
            }
            let renamed = try await update { $0.name = "  batch  " }
            #expect(renamed.name == "batch")
            #expect(renamed.limitMicros == 5_000_000)
            #expect(renamed.models == ["gpt-4o"])

            let unlimited = try await update { $0.limit = .unlimited(true) }
            #expect(!unlimited.hasLimitMicros)
            let restricted = try await update { $0.models = .with { $0.models = [" a ", "b", "a"] } }
            #expect(restricted.models == ["a", "b"])
            let open = try await update { $0.models = .init() }
            #expect(open.models.isEmpty)

            do {
                _ = try await update { $0.limitCurrency = "USD" }
                Issue.record("expected empty_update")
            } catch let error as RPCError {
                #expect(reason(of: error) == "empty_update")
            }
            do {
                _ = try await update {
                    $0.name = "fine"
                    $0.limit = .limitMicros(-5)
                }
                Issue.record("expected invalid_limit_amount")
            } catch let error as RPCError {
                #expect(reason(of: error) == "invalid_limit_amount")
            }
            // The failed update above wrote nothing.
            #expect(try await services.keys.getKey(.with { $0.keyID = key.id }, metadata: tenant.metadata).key.name == "batch")

            let revoked = try await services.keys.revokeKey(.with { $0.keyID = key.id }, metadata: tenant.metadata).key
            #expect(revoked.status == .revoked)
            #expect(revoked.hasRevokedAt)
            do {
                _ = try await update { $0.status = .active }
                Issue.record("expected key_revoked")
            } catch let error as RPCError {
                #expect(error.code == .failedPrecondition)
                #expect(reason(of: error) == "key_revoked")
            }
        }
    }

    @Test("Listing filters by owner and name, hides revoked keys unless asked, sorts and pages", arguments: TestStore.available)
    func listing(store: TestStore) async throws {
        try await TestServices.run(store: store) { services in
            let tenant = try await services.tenant()
            var ids: [String: String] = [:]
            for name in ["charlie", "alpha", "Bravo", "delta"] {
                let owner: Lumen_Common_V1_PrincipalRef =
                    name == "delta" ? .with { $0.type = .user; $0.id = tenant.adminUserID } : .init()
                ids[name] = try await services.keys.createKey(
                    .with {
                        $0.name = name
                        $0.owner = owner
                    }, metadata: tenant.metadata
                ).key.id
            }
            _ = try await services.keys.revokeKey(.with { $0.keyID = ids["charlie"]! }, metadata: tenant.metadata)
            func names(_ change: (inout Lumen_Keys_V1_ListKeysRequest) -> Void) async throws -> [String] {
                var request = Lumen_Keys_V1_ListKeysRequest()
                change(&request)
                return try await services.keys.listKeys(request, metadata: tenant.metadata).keys.map(\.name)
            }
            #expect(try await names { $0.sort = .name } == ["alpha", "Bravo", "delta"])
            #expect(try await names { $0.sort = .name; $0.includeDeleted = true } == ["alpha", "Bravo", "charlie", "delta"])
            #expect(try await names { $0.sort = .created } == ["alpha", "Bravo", "delta"])
            #expect(try await names { $0.sort = .created; $0.reverse = true } == ["delta", "Bravo", "alpha"])
            do {
                _ = try await names { $0.sort = .UNRECOGNIZED(2) }  // once "by requests": usage is the ledger's
                Issue.record("expected invalid_sort")
            } catch let error as RPCError {
                #expect(reason(of: error) == "invalid_sort")
            }
            #expect(try await names { $0.nameContains = "LT" } == ["delta"])
            #expect(try await names { $0.owner = .with { $0.type = .user; $0.id = tenant.adminUserID } } == ["delta"])

            let page = try await services.keys.listKeys(
                .with {
                    $0.sort = .name
                    $0.page = .with { $0.page = 2; $0.limit = 2 }
                }, metadata: tenant.metadata)
            #expect(page.keys.map(\.name) == ["delta"])
            #expect(page.pageInfo.total == 3)
            #expect(page.pageInfo.hasMore_p == false)

        }
    }

    @Test("Page tokens walk a list in creation order, either way, exactly as one long page lists it, ties by id", arguments: TestStore.available)
    func pageTokens(store: TestStore) async throws {
        let clock = ManualClock()
        try await TestServices.run(clock: clock.wallClock, store: store) { services in
            let tenant = try await services.tenant()
            for index in 0..<23 {
                if index % 5 == 0 { clock.advance(seconds: 1) }  // five keys a millisecond: ties
                let key = try await services.keys.createKey(.with { $0.name = "key \(index)" }, metadata: tenant.metadata).key
                if index == 7 { _ = try await services.keys.revokeKey(.with { $0.keyID = key.id }, metadata: tenant.metadata) }
            }
            func list(_ change: (inout Lumen_Keys_V1_ListKeysRequest) -> Void) async throws -> Lumen_Keys_V1_ListKeysResponse {
                var request = Lumen_Keys_V1_ListKeysRequest()
                change(&request)
                return try await services.keys.listKeys(request, metadata: tenant.metadata)
            }
            for (sort, reverse) in [(Lumen_Keys_V1_KeySort.unspecified, false), (.unspecified, true), (.created, false), (.created, true)] {
                for (deleted, idsOnly) in [(false, false), (true, false), (true, true)] {
                    func setUp(_ request: inout Lumen_Keys_V1_ListKeysRequest) {
                        request.sort = sort
                        request.reverse = reverse
                        request.includeDeleted = deleted
                        request.idsOnly = idsOnly
                    }
                    let whole = try await list { setUp(&$0); $0.page.limit = 100 }
                    let expected = idsOnly ? whole.keyIds : whole.keys.map(\.id)
                    #expect(expected.count == (deleted ? 23 : 22))
                    #expect(whole.nextPageToken.isEmpty)
                    var walked: [String] = []
                    var page = try await list { setUp(&$0); $0.page.limit = 4 }
                    #expect(page.pageInfo.total == Int64(expected.count))
                    while true {
                        walked += idsOnly ? page.keyIds : page.keys.map(\.id)
                        #expect(page.pageInfo.hasMore_p == !page.nextPageToken.isEmpty)
                        guard !page.nextPageToken.isEmpty else { break }
                        let token = page.nextPageToken
                        page = try await list { setUp(&$0); $0.page.limit = 4; $0.pageToken = token }
                        #expect(page.pageInfo.total == 0)  // not counted when going on from a token
                    }
                    #expect(walked == expected, "sort \(sort) reverse \(reverse) deleted \(deleted) ids \(idsOnly)")
                }
            }
            // A token runs one way, for creation orders only; anything else is refused.
            let first = try await list { $0.page.limit = 4 }
            let byName = try await list { $0.sort = .name; $0.page.limit = 4 }
            #expect(byName.nextPageToken.isEmpty && byName.pageInfo.hasMore_p)
            for change in [
                { (request: inout Lumen_Keys_V1_ListKeysRequest) in request.reverse = true; request.pageToken = first.nextPageToken },
                { $0.sort = .name; $0.pageToken = first.nextPageToken },
                { $0.pageToken = "not-a-token" },
                { $0.pageToken = "bi4xMjM" },  // "n.123": no id
            ] {
                do {
                    _ = try await list(change)
                    Issue.record("expected invalid_page_token")
                } catch let error as RPCError {
                    #expect(error.code == .invalidArgument && reason(of: error) == "invalid_page_token")
                }
            }
        }
    }

    @Test("Listing ids alone in the order asked, then just those keys in full (a page sorted by usage)", arguments: TestStore.available)
    func idsOnlyAndKeyIDs(store: TestStore) async throws {
        try await TestServices.run(store: store) { services in
            let tenant = try await services.tenant()
            func make(_ name: String) async throws -> String {
                try await services.keys.createKey(.with { $0.name = name }, metadata: tenant.metadata).key.id
            }
            let bravo = try await make("Bravo")
            let alpha = try await make("alpha")
            let charlie = try await make("charlie")
            _ = try await services.keys.revokeKey(.with { $0.keyID = charlie }, metadata: tenant.metadata)
            func list(_ change: (inout Lumen_Keys_V1_ListKeysRequest) -> Void) async throws -> Lumen_Keys_V1_ListKeysResponse {
                var request = Lumen_Keys_V1_ListKeysRequest()
                change(&request)
                return try await services.keys.listKeys(request, metadata: tenant.metadata)
            }
            let bare = try await list { $0.sort = .name; $0.idsOnly = true }
            #expect(bare.keyIds == [alpha, bravo])
            #expect(bare.keys.isEmpty)
            #expect(bare.pageInfo.total == 2)
            let both = try await list { $0.sort = .name; $0.keyIds = [bravo, alpha] }
            #expect(both.keys.map(\.name) == ["alpha", "Bravo"])
            #expect(both.keys.first?.hint.isEmpty == false)
            let revoked = try await list { $0.keyIds = [charlie] }
            #expect(revoked.keys.isEmpty)  // revoked: only with include_deleted
            let shown = try await list { $0.keyIds = [charlie]; $0.includeDeleted = true }
            #expect(shown.keys.map(\.name) == ["charlie"])
            let nobody = try await list { $0.keyIds = ["key_nobody"] }
            #expect(nobody.keys.isEmpty)
            let many = (0...1000).map { "key_\($0)" }
            do {
                _ = try await list { $0.keyIds = many }
                Issue.record("expected too_many_keys")
            } catch let error as RPCError {
                #expect(error.code == .invalidArgument)
                #expect(reason(of: error) == "too_many_keys")
            }
        }
    }

    @Test("WatchKeys sends a snapshot, a SYNCED marker, then live changes with the secret's digest", arguments: TestStore.available)
    func watch(store: TestStore) async throws {
        try await TestServices.run(store: store) { services in
            let tenant = try await services.tenant()
            let first = try await services.keys.createKey(.with { $0.name = "first" }, metadata: tenant.metadata)
            let events = try await services.keys.watchKeys(
                .with { $0.organizationID = tenant.organizationID }, metadata: services.asInternal
            ) { response in
                var seen: [Lumen_Keys_V1_KeyEvent] = []
                for try await event in response.messages {
                    seen.append(event)
                    if event.type == .synced {
                        _ = try await services.keys.updateKey(
                            .with {
                                $0.keyID = first.key.id
                                $0.name = "renamed"
                            }, metadata: tenant.metadata)
                    }
                    if event.key.name == "renamed" { break }
                }
                return seen
            }
            // The snapshot holds the management token and the first key.
            #expect(events.map(\.type) == [.upsert, .upsert, .synced, .upsert])
            #expect(events.contains { $0.key.id == first.key.id && $0.key.name == "first" })
            let live = try #require(events.last)
            #expect(live.key.name == "renamed")
            #expect(live.secretSha256.count == 32)
            #expect(!"\(events)".contains(first.secret))
        }
    }
    @Test("Key events are published in commit order, however long publishing takes: the last one is the stored key", arguments: TestStore.available)
    func watchOrder(store: TestStore) async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("lumen-watch-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        // On disk (a WAL pool), as in production.
        try await TestServices.run(location: .directory(directory.path), store: store) { services in
            let tenant = try await services.tenant()
            let key = try await services.keys.createKey(.with { $0.name = "start" }, metadata: tenant.metadata).key
            let store = services.keysService.store
            // What the service publishes through: a publisher that takes a moment (a busy
            // machine, many watchers) must not let a later commit overtake an earlier one.
            let published = Published()
            let committed = Published()
            for round in 0..<10 {
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for index in 0..<20 {
                        group.addTask {
                            let audit = AuditEntry(
                                at: 0, actorType: "internal", actorID: "", action: "key.update", targetType: "key", targetID: key.id)
                            _ = try await store.update(id: key.id, organizationID: tenant.organizationID, audit: audit) { record in
                                // Inside the transaction, on the writer: the commit order.
                                record.name = "name-\(round)-\(index)"
                                committed.names.withLock { $0.append(record.name) }
                            } committed: { record in
                                usleep(UInt32.random(in: 0..<3_000))
                                published.names.withLock { $0.append(record.name) }
                            }
                        }
                    }
                    try await group.waitForAll()
                }
                let stored = try #require(try await store.key(id: key.id, organizationID: tenant.organizationID)).name
                let (order, seen) = (committed.names.withLock { $0 }, published.names.withLock { $0 })
                #expect(seen == order, "round \(round): events out of commit order")
                #expect(seen.last == stored)
                #expect(published.names.withLock { $0.count } == 20 * (round + 1))
            }

            // And the service's watchers see the same order: the stream ends on the stored key.
            let events = try await services.keys.watchKeys(
                .with { $0.organizationID = tenant.organizationID }, metadata: services.asInternal
            ) { response in
                var names: [String] = []
                for try await event in response.messages {
                    if event.type == .synced {
                        try await withThrowingTaskGroup(of: Void.self) { group in
                            for index in 0..<20 {
                                group.addTask {
                                    _ = try await services.keys.updateKey(
                                        .with {
                                            $0.keyID = key.id
                                            $0.name = "live-\(index)"
                                        }, metadata: tenant.metadata)
                                }
                            }
                            try await group.waitForAll()
                        }
                        _ = try await services.keys.updateKey(
                            .with {
                                $0.keyID = key.id
                                $0.name = "end"
                            }, metadata: tenant.metadata)
                        continue
                    }
                    if event.key.id == key.id { names.append(event.key.name) }
                    if event.key.name == "end" { break }
                }
                return names
            }
            #expect(events.count == 22)  // the snapshot, 20 live changes, the end
            let stored = try #require(try await store.key(id: key.id, organizationID: tenant.organizationID))
            #expect(stored.name == "end")
        }
    }
}

/// Names in the order a publisher saw them.
final class Published: Sendable {
    let names = Mutex<[String]>([])
}
