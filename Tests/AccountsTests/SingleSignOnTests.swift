import Foundation
import GRPCCore
import LumenAPI
import LumenTesting
import Testing

/// An organisation's single sign-on as the accounts service keeps and applies it: the setting
/// checked, and what a verified ID token's claims do — who signs in, who is created, which role
/// and groups they get — with each outcome in the audit log.
@Suite("Single sign-on: the setting and the rules of a sign-in")
struct SingleSignOnTests {
    static let sso = Lumen_Accounts_V1_SingleSignOn.with {
        $0.issuer = "https://idp.example.com/realms/acme/"
        $0.clientID = "lumen"
        $0.clientSecretEnv = "ACME_OIDC_SECRET"
        $0.allowedDomains = ["Acme.test"]
        $0.adminClaim = "roles"
        $0.adminValue = "lumen-admin"
        $0.groupsClaim = "groups"
        $0.groupMap = ["/research": "Research", "/ops": "Ops"]
        $0.createPeople = true
    }

    static func claims(_ email: String, groups: [String] = [], roles: [String] = [], verified: Bool? = nil) throws -> String {
        var claims: [String: Any] = ["sub": "sub-\(email)", "email": email, "name": "Ann Example", "groups": groups, "roles": roles]
        if let verified { claims["email_verified"] = verified }
        return String(decoding: try JSONSerialization.data(withJSONObject: claims), as: UTF8.self)
    }

    @Test("The setting is checked field by field, tidied, read back, listed for the gateway and audited", arguments: TestStore.available)
    func setting(store: TestStore) async throws {
        try await TestServices.run(store: store) { services in
            let acme = try await services.tenant()
            let set = try await services.accounts.setSingleSignOn(.with { $0.sso = Self.sso }, metadata: acme.metadata)
            #expect(set.sso.issuer == "https://idp.example.com/realms/acme" && set.sso.allowedDomains == ["acme.test"])
            #expect(set.sso.displayName == "idp.example.com")
            let read = try await services.accounts.getSingleSignOn(.init(), metadata: acme.metadata)
            #expect(read.configured && read.sso == set.sso)
            let listed = try await services.accounts.listSingleSignOns(.init(), metadata: services.asInternal).entries
            #expect(listed.map(\.organizationID) == [acme.organizationID] && listed.first?.sso == set.sso)
            #expect(await refusal { _ = try await services.accounts.listSingleSignOns(.init(), metadata: acme.metadata) }
                == "permissionDenied internal_only")

            for (field, change) in [
                ("issuer", { (sso: inout Lumen_Accounts_V1_SingleSignOn) in sso.issuer = "http://idp.example.com" }),
                ("client_id", { $0.clientID = " " }),
                ("client_secret_env", { $0.clientSecretEnv = "secret value" }),
                ("allowed_domains", { $0.allowedDomains = ["not a domain"] }),
                ("admin_value", { $0.adminValue = "" }),
            ] as [(String, (inout Lumen_Accounts_V1_SingleSignOn) -> Void)] {
                var sso = Self.sso
                change(&sso)
                do {
                    _ = try await services.accounts.setSingleSignOn(.with { $0.sso = sso }, metadata: acme.metadata)
                    Issue.record("\(field) accepted")
                } catch let error as RPCError {
                    #expect(reason(of: error) == "invalid_sso" && error.message.hasPrefix(field), "\(field)")
                }
            }
            _ = try await services.accounts.setSingleSignOn(.with { $0.remove = true }, metadata: acme.metadata)
            #expect(try await services.accounts.getSingleSignOn(.init(), metadata: acme.metadata).configured == false)
            let log = try await services.accounts.listAuditLog(.with { $0.action = "sso." }, metadata: acme.metadata).entries
            #expect(log.map(\.action) == ["sso.set", "sso.remove"] && log.allSatisfy { $0.actorType == "management_token" })
            #expect(!log[0].afterJson.contains("secret value") && log[0].afterJson.contains(#""client_secret_env":"ACME_OIDC_SECRET""#))
        }
    }

    @Test("A first sign-in creates the person with the mapped role and groups; the next follows the provider; refusals say why", arguments: TestStore.available)
    func signIn(store: TestStore) async throws {
        try await TestServices.run(store: store) { services in
            let acme = try await services.tenant()
            for name in ["Research", "Ops"] {
                _ = try await services.accounts.createGroup(.with { $0.name = name }, metadata: acme.metadata)
            }
            let groups = try await services.accounts.listGroups(.init(), metadata: acme.metadata).groups
            let research = try #require(groups.first { $0.name == "Research" }).id
            let ops = try #require(groups.first { $0.name == "Ops" }).id
            _ = try await services.accounts.setSingleSignOn(.with { $0.sso = Self.sso }, metadata: acme.metadata)
            func signIn(_ claims: String) async throws -> Lumen_Accounts_V1_User {
                try await services.accounts.signInWithSingleSignOn(
                    .with {
                        $0.organizationID = acme.organizationID
                        $0.claimsJson = claims
                        $0.clientAddress = "203.0.113.7"
                    }, metadata: services.asInternal
                ).user
            }
            let first = try await signIn(try Self.claims("Ann@Acme.test", groups: ["/research", "/unmapped"], roles: ["lumen-admin"]))
            #expect(first.email == "ann@acme.test" && first.displayName == "Ann Example" && first.isAdmin)
            #expect(first.groupIds == [research])
            // The provider moved her: the groups and the role follow at the next sign-in.
            let next = try await signIn(try Self.claims("ann@acme.test", groups: ["/ops"]))
            #expect(next.id == first.id && next.groupIds == [ops] && !next.isAdmin)

            for (claims, why) in [
                (try Self.claims("bob@elsewhere.test"), "elsewhere.test is not among the organisation's email domains"),
                (try Self.claims("bob@acme.test", verified: false), "the provider has not verified bob@acme.test"),
                (#"{"sub":"x"}"#, "the provider gave no email address (ask for the email scope)"),
            ] {
                do {
                    _ = try await signIn(claims)
                    Issue.record("\(claims) signed in")
                } catch let error as RPCError {
                    #expect(reason(of: error) == "sso_refused" && error.message == why)
                }
            }
            // Deactivated in Lumen: the provider cannot bring her back.
            _ = try await services.accounts.updateUser(
                .with {
                    $0.userID = first.id
                    $0.active = false
                }, metadata: acme.metadata)
            #expect(await refusal { _ = try await signIn(try Self.claims("ann@acme.test")) } == "permissionDenied sso_refused")
            // Only people created beforehand, when the organisation says so.
            var closed = Self.sso
            closed.createPeople = false
            _ = try await services.accounts.setSingleSignOn(.with { $0.sso = closed }, metadata: acme.metadata)
            #expect(await refusal { _ = try await signIn(try Self.claims("carl@acme.test")) } == "permissionDenied sso_refused")

            let log = try await services.accounts.listAuditLog(.with { $0.action = "session." }, metadata: acme.metadata).entries
            #expect(log.map(\.action) == ["session.sign_in", "session.sign_in"] + Array(repeating: "session.sign_in_failed", count: 5))
            #expect(log[0].actorType == "person" && log[0].actorID == first.id && log[0].clientAddress == "203.0.113.7")
            let provisioned = try await services.accounts.listAuditLog(.with { $0.action = "user.provision" }, metadata: acme.metadata)
            #expect(provisioned.entries.map(\.targetID) == [first.id])
        }
    }

    @Test("An organisation that turns passwords off signs in through its provider only")
    func passwordsOff() async throws {
        try await TestServices.run { services in
            let acme = try await services.tenant()
            _ = try await services.accounts.createUser(
                .with {
                    $0.email = "dee@acme.test"
                    $0.password = "correct horse battery"
                }, metadata: acme.metadata)
            func passwordSignIn() async -> String {
                await refusal {
                    _ = try await services.accounts.signIn(
                        .with {
                            $0.email = "dee@acme.test"
                            $0.password = "correct horse battery"
                        }, metadata: services.asInternal)
                }
            }
            #expect(await passwordSignIn() == "ok")
            var sso = Self.sso
            sso.displayName = "Acme SSO"
            _ = try await services.accounts.setSingleSignOn(.with { $0.sso = sso }, metadata: acme.metadata)
            #expect(await passwordSignIn() == "permissionDenied password_sign_in_off")
            sso.passwordsAllowed = true
            _ = try await services.accounts.setSingleSignOn(.with { $0.sso = sso }, metadata: acme.metadata)
            #expect(await passwordSignIn() == "ok")
        }
    }
}
