import GRPCCore
import LumenAPI
import LumenTesting
import Testing

@Suite("Model registry over the in-process transport")
struct ModelRegistryServiceTests {
    static func gpt(_ change: (inout Lumen_Registry_V1_Model) -> Void = { _ in }) -> Lumen_Registry_V1_Model {
        var model = Lumen_Registry_V1_Model.with {
            $0.name = "gpt-4o-mini"
            $0.vendor = "openai"
            $0.enabled = true
            $0.maxOutputTokens = 16_384
            $0.prices = .with {
                $0.inputPerMillionMicros = 150_000
                $0.cachedInputPerMillionMicros = 75_000
                $0.outputPerMillionMicros = 600_000
            }
        }
        change(&model)
        return model
    }

    static func backend(_ id: String, model: String = "gpt-4o-mini") -> Lumen_Registry_V1_Backend {
        .with {
            $0.id = id
            $0.model = model
            $0.provider = .openai
            $0.baseURL = "http://127.0.0.1:9/v1"
            $0.credentialEnv = "UPSTREAM_KEY"
        }
    }

    @Test("Models and backends are stored with defaults; status follows reported health", arguments: TestStore.available)
    func modelsBackendsAndStatus(store: TestStore) async throws {
        let clock = ManualClock()
        try await TestServices.run(clock: clock.wallClock, store: store) { services in
            let asInternal = services.asInternal
            let created = try await services.registry.upsertModel(.with { $0.model = Self.gpt() }, metadata: asInternal).model
            #expect(created.scenes == [.chat])
            #expect(created.maxOutputTokens == 16_384 && created.maxAttachmentInputTokens == 8_192)
            #expect(created.status == .down)  // no backend yet

            let primary = try await services.registry.upsertBackend(.with { $0.backend = Self.backend("primary") }, metadata: asInternal).backend
            #expect(primary.weight == 1 && primary.timeoutMs == 60_000)
            _ = try await services.registry.upsertBackend(.with { $0.backend = Self.backend("secondary") }, metadata: asInternal)
            func status() async throws -> Lumen_Registry_V1_Model {
                try await services.registry.getModel(.with { $0.name = "gpt-4o-mini" }, metadata: asInternal).model
            }
            #expect(try await status().status == .ok)

            func report(_ backend: String, successes: Int32 = 0, failures: Int32 = 0, failure: String? = nil) async throws {
                _ = try await services.registry.reportBackendHealth(
                    .with {
                        $0.reports = [.with {
                            $0.model = "gpt-4o-mini"
                            $0.backendID = backend
                            $0.successes = successes
                            $0.failures = failures
                            if let failure { $0.lastFailure = failure }
                        }]
                    }, metadata: asInternal)
            }
            try await report("primary", failures: 3, failure: "answered 503 (request req_1)")
            var model = try await status()
            #expect(model.status == .degraded)
            let down = try #require(model.backends.first { $0.id == "primary" })
            #expect(down.health == .unhealthy && down.consecutiveFailures == 3)
            #expect(down.circuitOpenUntil.millis == clock.nowMillis + 30_000)
            // The operator sees what went wrong last, and when.
            #expect(down.lastFailure == "answered 503 (request req_1)" && down.lastFailureAt.millis == clock.nowMillis)

            try await report("secondary", failures: 5)
            #expect(try await status().status == .down)
            try await report("primary", successes: 1)
            model = try await status()
            #expect(model.status == .degraded)
            #expect(model.backends.first { $0.id == "primary" }?.health == .healthy)
            #expect(model.backends.first { $0.id == "primary" }?.lastFailure == "answered 503 (request req_1)", "a success keeps it")

            // Re-declaring a backend keeps its health; removing one changes the status.
            _ = try await services.registry.upsertBackend(.with { $0.backend = Self.backend("secondary") }, metadata: asInternal)
            #expect(try await status().backends.first { $0.id == "secondary" }?.health == .unhealthy)
            _ = try await services.registry.removeBackend(
                .with {
                    $0.model = "gpt-4o-mini"
                    $0.backendID = "secondary"
                }, metadata: asInternal)
            #expect(try await status().status == .ok)

            _ = try await services.registry.upsertModel(.with { $0.model = Self.gpt { $0.enabled = false } }, metadata: asInternal)
            #expect(try await status().status == .disabled)
            #expect(try await services.registry.listModels(.init(), metadata: asInternal).models.isEmpty)
            #expect(try await services.registry.listModels(.with { $0.includeDisabled = true }, metadata: asInternal).models.count == 1)
        }
    }

    @Test("Bad definitions are refused with a reason and the field at fault", arguments: TestStore.available)
    func validation(store: TestStore) async throws {
        try await TestServices.run(store: store) { services in
            let asInternal = services.asInternal
            _ = try await services.registry.upsertModel(.with { $0.model = Self.gpt() }, metadata: asInternal)
            let models: [(Lumen_Registry_V1_Model, String)] = [
                (Self.gpt { $0.name = "has space" }, "model.name"),
                (Self.gpt { $0.vendor = "" }, "model.vendor"),
                (Self.gpt { $0.prices.outputPerMillionMicros = -1 }, "model.prices.output"),
                (Self.gpt { $0.scenes = [.unspecified] }, "model.scenes"),
            ]
            for (model, param) in models {
                do {
                    _ = try await services.registry.upsertModel(.with { $0.model = model }, metadata: asInternal)
                    Issue.record("expected invalid_model for \(param)")
                } catch let error as RPCError {
                    #expect(error.code == .invalidArgument)
                    #expect(reason(of: error) == "invalid_model")
                }
            }
            var noURL = Self.backend("a")
            noURL.baseURL = "ftp://x"
            var secretInEnv = Self.backend("b")
            secretInEnv.credentialEnv = "sk-live-123"
            var noProvider = Self.backend("c")
            noProvider.provider = .unspecified
            // Lumen's own secrets never go upstream as a backend's key.
            var internalToken = Self.backend("d")
            internalToken.credentialEnv = "LUMEN_INTERNAL_TOKEN"
            var databaseURL = Self.backend("e")
            databaseURL.credentialEnv = "LUMEN_DATABASE"
            // An API version is Azure's alone.
            var versionElsewhere = Self.backend("f")
            versionElsewhere.apiVersion = "2024-10-21"
            var badVersion = Self.backend("g")
            badVersion.provider = .azure
            badVersion.apiVersion = "2024/10?x"
            // A region and an AWS profile are Bedrock's alone; Bedrock needs a region, and signs or sends a key, not both.
            var regionElsewhere = Self.backend("h")
            regionElsewhere.region = "us-east-1"
            var bedrockWithoutRegion = Self.backend("i")
            bedrockWithoutRegion.provider = .bedrock
            bedrockWithoutRegion.baseURL = ""
            var bedrockBadRegion = bedrockWithoutRegion
            bedrockBadRegion.region = "us-east-1.evil.example/"
            var bedrockBoth = bedrockWithoutRegion
            bedrockBoth.region = "eu-west-3"
            bedrockBoth.awsProfile = "prod"
            bedrockBoth.credentialEnv = "AWS_BEARER_TOKEN_BEDROCK"
            // A token source is Azure's alone, named (not a path), and not beside a key.
            var tokenElsewhere = Self.backend("j")
            tokenElsewhere.tokenSource = "entra"
            var tokenPath = Self.backend("k")
            tokenPath.provider = .azure
            tokenPath.credentialEnv = ""
            tokenPath.tokenSource = "/etc/shadow"
            var tokenAndKey = tokenPath
            tokenAndKey.tokenSource = "entra"
            tokenAndKey.credentialEnv = "AZURE_OPENAI_API_KEY"
            for backend in [
                noURL, secretInEnv, noProvider, internalToken, databaseURL, versionElsewhere, badVersion, regionElsewhere,
                bedrockWithoutRegion, bedrockBadRegion, bedrockBoth, tokenElsewhere, tokenPath, tokenAndKey,
            ] {
                do {
                    _ = try await services.registry.upsertBackend(.with { $0.backend = backend }, metadata: asInternal)
                    Issue.record("expected invalid_backend")
                } catch let error as RPCError {
                    #expect(reason(of: error) == "invalid_backend")
                }
            }
            do {
                _ = try await services.registry.upsertBackend(.with { $0.backend = Self.backend("x", model: "nope") }, metadata: asInternal)
                Issue.record("expected model_not_found")
            } catch let error as RPCError {
                #expect(error.code == .notFound)
            }
            #expect(try await services.registry.getModel(.with { $0.name = "gpt-4o-mini" }, metadata: asInternal).model.backends.isEmpty)

            // Without a base URL, Gemini and Bedrock backends get Google's API and the region's endpoint.
            var gemini = Self.backend("google")
            gemini.provider = .gemini
            gemini.baseURL = ""
            var bedrock = Self.backend("aws")
            bedrock.provider = .bedrock
            bedrock.baseURL = ""
            bedrock.region = "eu-west-3"
            bedrock.awsProfile = "prod"
            bedrock.credentialEnv = ""
            _ = try await services.registry.upsertBackend(.with { $0.backend = gemini }, metadata: asInternal)
            _ = try await services.registry.upsertBackend(.with { $0.backend = bedrock }, metadata: asInternal)
            let stored = try await services.registry.getModel(.with { $0.name = "gpt-4o-mini" }, metadata: asInternal).model.backends
            #expect(stored.first { $0.id == "google" }?.baseURL == "https://generativelanguage.googleapis.com")
            let aws = try #require(stored.first { $0.id == "aws" })
            #expect(aws.baseURL == "https://bedrock-runtime.eu-west-3.amazonaws.com" && aws.region == "eu-west-3" && aws.awsProfile == "prod")
        }
    }

    @Test("Every change of models, backends and consents writes one audit entry naming its caller; none for what changes nothing", arguments: TestStore.available)
    func auditLog(store: TestStore) async throws {
        try await TestServices.run(store: store) { services in
            let asInternal = services.asInternal
            let acme = try await services.tenant("Acme")
            let start = Int64(try await services.registry.listAuditLog(.with { $0.limit = 1_000 }, metadata: asInternal).entries.count)
            func entries() async throws -> [Lumen_Common_V1_AuditEntry] {
                try await services.registry.listAuditLog(
                    .with {
                        $0.afterSequence = start
                        $0.limit = 1_000
                    }, metadata: asInternal
                ).entries
            }
            _ = try await services.registry.upsertModel(.with { $0.model = Self.gpt { $0.consentRequired = true } }, metadata: asInternal)
            // The same definition again changes nothing: no entry.
            _ = try await services.registry.upsertModel(.with { $0.model = Self.gpt { $0.consentRequired = true } }, metadata: asInternal)
            _ = try await services.registry.upsertBackend(.with { $0.backend = Self.backend("a") }, metadata: asInternal)
            _ = try await services.registry.upsertBackend(.with { $0.backend = Self.backend("a") }, metadata: asInternal)
            var moved = Self.backend("a")
            moved.weight = 5
            _ = try await services.registry.upsertBackend(.with { $0.backend = moved }, metadata: asInternal)
            _ = try await services.registry.removeBackend(
                .with {
                    $0.model = "gpt-4o-mini"
                    $0.backendID = "a"
                }, metadata: asInternal)
            let user = Lumen_Common_V1_PrincipalRef.with {
                $0.type = .user
                $0.id = acme.adminUserID
            }
            _ = try await services.registry.grantConsent(
                .with {
                    $0.principal = user
                    $0.model = "gpt-4o-mini"
                }, metadata: acme.metadata)
            _ = try await services.registry.revokeConsent(
                .with {
                    $0.principal = user
                    $0.model = "gpt-4o-mini"
                }, metadata: acme.metadata)

            let log = try await entries()
            #expect(log.map(\.action) == ["model.upsert", "backend.upsert", "backend.upsert", "backend.remove", "consent.grant", "consent.revoke"])
            #expect(log.map(\.targetID).prefix(4) == ["gpt-4o-mini", "gpt-4o-mini/a", "gpt-4o-mini/a", "gpt-4o-mini/a"])
            #expect(log.prefix(4).allSatisfy { $0.actorType == "internal" && $0.organizationID.isEmpty })
            #expect(log[1].beforeJson.isEmpty && log[1].afterJson.contains(#""weight":1"#))
            #expect(log[2].beforeJson.contains(#""weight":1"#) && log[2].afterJson.contains(#""weight":5"#))
            #expect(log[3].afterJson.isEmpty && log[3].beforeJson.contains(#""credential_env":"UPSTREAM_KEY""#))
            #expect(log[4].actorType == "management_token" && !log[4].actorID.isEmpty && log[4].organizationID == acme.organizationID)
            #expect(log[4].targetID == "user/\(acme.adminUserID)/gpt-4o-mini")
            for (earlier, later) in zip(log, log.dropFirst()) { #expect(later.previousHash == earlier.hash) }

            // An administrator reads their organisation's entries only; the chain verifies.
            let theirs = try await services.registry.listAuditLog(.init(), metadata: acme.metadata).entries
            #expect(theirs.map(\.action) == ["consent.grant", "consent.revoke"])
            let verified = try await services.registry.verifyAuditLog(.init(), metadata: asInternal)
            #expect(verified.intact && verified.headHash == log.last?.hash)
            do {
                _ = try await services.registry.verifyAuditLog(.init(), metadata: acme.metadata)
                Issue.record("expected operator_only")
            } catch let error as RPCError {
                #expect(error.code == .permissionDenied)
            }
        }
    }

    @Test("Access and consent: per principal, per organisation; health reports are asInternal only", arguments: TestStore.available)
    func accessAndConsent(store: TestStore) async throws {
        try await TestServices.run(store: store) { services in
            let asInternal = services.asInternal
            let acme = try await services.tenant("Acme")
            let globex = try await services.tenant("Globex")
            _ = try await services.registry.upsertModel(.with { $0.model = Self.gpt() }, metadata: asInternal)
            _ = try await services.registry.upsertModel(
                .with {
                    $0.model = Self.gpt {
                        $0.name = "o1-research"
                        $0.consentRequired = true
                        $0.allowedGroupIds = ["grp_research"]
                    }
                }, metadata: asInternal)
            let user = Lumen_Common_V1_PrincipalRef.with {
                $0.type = .user
                $0.id = acme.adminUserID
            }
            func levels(_ tenant: TestServices.Tenant, groups: [String]) async throws -> [String: Lumen_Registry_V1_AccessLevel] {
                let access = try await services.registry.getModelAccess(
                    .with {
                        $0.principal = user
                        $0.groupIds = groups
                    }, metadata: tenant.metadata)
                return Dictionary(uniqueKeysWithValues: access.access.map { ($0.model, $0.level) })
            }
            #expect(try await levels(acme, groups: []) == ["gpt-4o-mini": .allowed, "o1-research": .blocked])
            #expect(try await levels(acme, groups: ["grp_research"])["o1-research"] == .needsConsent)

            let consent = try await services.registry.grantConsent(
                .with {
                    $0.principal = user
                    $0.model = "o1-research"
                }, metadata: acme.metadata
            ).consent
            #expect(consent.grantedByUserID == acme.adminUserID)
            #expect(try await levels(acme, groups: ["grp_research"])["o1-research"] == .consented)
            // The consent belongs to Acme only; Globex cannot even name Acme's user.
            do {
                _ = try await levels(globex, groups: ["grp_research"])
                Issue.record("expected user_not_found")
            } catch let error as RPCError {
                #expect(error.code == .notFound && reason(of: error) == "user_not_found")
            }
            #expect(try await services.registry.listConsents(.init(), metadata: globex.metadata).consents.isEmpty)

            do {
                _ = try await services.registry.grantConsent(
                    .with {
                        $0.principal = user
                        $0.model = "gpt-4o-mini"
                    }, metadata: acme.metadata)
                Issue.record("expected consent_not_required")
            } catch let error as RPCError {
                #expect(reason(of: error) == "consent_not_required")
            }
            _ = try await services.registry.revokeConsent(
                .with {
                    $0.principal = user
                    $0.model = "o1-research"
                }, metadata: acme.metadata)
            #expect(try await levels(acme, groups: ["grp_research"])["o1-research"] == .needsConsent)

            do {
                _ = try await services.registry.reportBackendHealth(.init(), metadata: acme.metadata)
                Issue.record("expected PERMISSION_DENIED")
            } catch let error as RPCError {
                #expect(error.code == .permissionDenied)
            }
        }
    }

    @Test("Models, backends and prices are the operator's: an organisation's token is refused, an operator token is not", arguments: TestStore.available)
    func operatorOnly(store: TestStore) async throws {
        try await TestServices.run(store: store) { services in
            let acme = try await services.tenant("Acme")
            let intruder = try await services.tenant("Intruder")
            _ = try await services.registry.upsertModel(.with { $0.model = Self.gpt() }, metadata: services.asInternal)
            _ = try await services.registry.upsertBackend(.with { $0.backend = Self.backend("primary") }, metadata: services.asInternal)

            func refused(_ what: String, _ call: () async throws -> Void) async {
                do {
                    try await call()
                    Issue.record("\(what): an organisation's management token was accepted")
                } catch let error as RPCError {
                    #expect(error.code == .permissionDenied, "\(what)")
                    #expect(reason(of: error) == "operator_only", "\(what)")
                } catch {
                    Issue.record("\(what): \(error)")
                }
            }
            for tenant in [acme, intruder] {
                var hijack = Self.backend("hijack")
                hijack.weight = 1000
                hijack.baseURL = "http://127.0.0.1:1/v1"
                await refused("UpsertBackend") {
                    _ = try await services.registry.upsertBackend(.with { $0.backend = hijack }, metadata: tenant.metadata)
                }
                await refused("RemoveBackend") {
                    _ = try await services.registry.removeBackend(
                        .with {
                            $0.model = "gpt-4o-mini"
                            $0.backendID = "primary"
                        }, metadata: tenant.metadata)
                }
                await refused("UpsertModel") {
                    _ = try await services.registry.upsertModel(
                        .with { $0.model = Self.gpt { $0.prices.outputPerMillionMicros = 0 } }, metadata: tenant.metadata)
                }
            }
            // Nothing changed: one backend, the original price.
            var model = try await services.registry.getModel(.with { $0.name = "gpt-4o-mini" }, metadata: acme.metadata).model
            #expect(model.backends.map(\.id) == ["primary"])
            #expect(model.prices.outputPerMillionMicros == 600_000)

            // An operator token (made on the machine, as the internal caller) may change them.
            let created = try await services.keys.createOperatorToken(.with { $0.name = "ops" }, metadata: services.asInternal)
            #expect(created.secret.hasPrefix("op-"))
            #expect(created.key.kind == .operator && created.key.organizationID.isEmpty)
            let asOperator = Metadata.bearer(created.secret)
            _ = try await services.registry.upsertModel(
                .with { $0.model = Self.gpt { $0.prices.outputPerMillionMicros = 700_000 } }, metadata: asOperator)
            _ = try await services.registry.upsertBackend(.with { $0.backend = Self.backend("secondary") }, metadata: asOperator)
            model = try await services.registry.getModel(.with { $0.name = "gpt-4o-mini" }, metadata: asOperator).model
            #expect(model.backends.map(\.id) == ["primary", "secondary"])
            #expect(model.prices.outputPerMillionMicros == 700_000)

            // It acts for no organisation, and it cannot make operator tokens itself.
            do {
                _ = try await services.keys.listKeys(.init(), metadata: asOperator)
                Issue.record("an operator token listed an organisation's keys")
            } catch let error as RPCError {
                #expect(error.code == .permissionDenied)
            }
            do {
                _ = try await services.keys.createOperatorToken(.init(), metadata: acme.metadata)
                Issue.record("a management token made an operator token")
            } catch let error as RPCError {
                #expect(error.code == .permissionDenied)
            }
            // Never streamed to gateways, and revoked at once.
            #expect(try await services.keys.listOperatorTokens(.init(), metadata: services.asInternal).keys.map(\.id) == [created.key.id])
            _ = try await services.keys.revokeOperatorToken(.with { $0.keyID = created.key.id }, metadata: services.asInternal)
            do {
                _ = try await services.registry.removeBackend(
                    .with {
                        $0.model = "gpt-4o-mini"
                        $0.backendID = "secondary"
                    }, metadata: asOperator)
                Issue.record("a revoked operator token was accepted")
            } catch let error as RPCError {
                #expect(error.code == .unauthenticated)
                #expect(reason(of: error) == "key_revoked")
            }
            do {
                _ = try await services.keys.revokeOperatorToken(.with { $0.keyID = "key_nope" }, metadata: services.asInternal)
                Issue.record("expected key_not_found")
            } catch let error as RPCError {
                #expect(error.code == .notFound)
            }
        }
    }

    @Test("WatchRegistry sends the registry, SYNCED, then each change", arguments: TestStore.available)
    func watch(store: TestStore) async throws {
        try await TestServices.run(store: store) { services in
            let asInternal = services.asInternal
            _ = try await services.registry.upsertModel(.with { $0.model = Self.gpt() }, metadata: asInternal)
            let events = try await services.registry.watchRegistry(.init(), metadata: asInternal) { response in
                var seen: [Lumen_Registry_V1_RegistryEvent] = []
                for try await event in response.messages {
                    seen.append(event)
                    if event.type == .synced {
                        _ = try await services.registry.upsertBackend(.with { $0.backend = Self.backend("primary") }, metadata: asInternal)
                    }
                    if event.type == .modelUpsert && !event.model.backends.isEmpty { break }
                }
                return seen
            }
            #expect(events.map(\.type) == [.modelUpsert, .synced, .modelUpsert])
            #expect(events.last?.model.status == .ok)
        }
    }
}
