import Foundation
import HTTPTypes
import LumenTesting
import Testing

@Suite("Management API: /v1/management/api-keys (seed 003)")
struct ManagementKeysRouteTests {
    static let keyFields: Set<String> = [
        "id", "name", "key_prefix", "hint", "status", "limit_amount", "used_amount", "models", "expires_at",
        "last_used_at", "created_at", "rpm_limit", "tpm_limit",
    ]

    @Test("GET /healthz answers without a token")
    func health() async throws {
        try await GatewayHarness.run { gateway in
            let (status, body) = try await gateway.send(.get, "/healthz", as: .none)
            #expect(status == 200)
            #expect(body["status"] as? String == "ok")
        }
    }

    @Test("Requests without a valid management token get 401 with a code")
    func authentication() async throws {
        try await GatewayHarness.run { gateway in
            let key = try #require(try await gateway.send(.post, "/v1/management/api-keys", json: "{}").body["key"] as? String)
            let cases: [(GatewayHarness.Credential, String)] = [
                (.none, "missing_authorization"),
                (.bearer(key), "invalid_management_token"),
                (.bearer("mt-doesnotexist"), "invalid_management_token"),
                (.bearer(""), "invalid_management_token"),
            ]
            for (credential, code) in cases {
                let (status, body) = try await gateway.send(.get, "/v1/management/api-keys", as: credential)
                #expect(status == 401, "credential \(credential)")
                #expect(GatewayHarness.error(body).code == code)
            }
            // A token without its scheme, or under another one, is told what is missing.
            for (header, says) in [
                (gateway.tenant.managementToken, "the Authorization header has no scheme: send `Authorization: Bearer mt-…`"),
                ("Basic YWRtaW46YWRtaW4=", "the Authorization header's scheme is Basic, not Bearer"),
            ] {
                let (status, body) = try await gateway.send(.get, "/v1/management/api-keys", as: .header(header))
                #expect(status == 401)
                #expect(GatewayHarness.error(body).code == "invalid_management_token")
                #expect(GatewayHarness.error(body).message.hasPrefix(says), "\(body)")
            }
            // A revoked management token stops working at once.
            let token = try await gateway.services.keys.createKey(
                .with {
                    $0.kind = .management
                    $0.organizationID = gateway.tenant.organizationID
                }, metadata: gateway.services.asInternal)
            #expect(try await gateway.send(.get, "/v1/management/api-keys", as: .bearer(token.secret)).status == 200)
            _ = try await gateway.services.keys.revokeKey(
                .with {
                    $0.keyID = token.key.id
                    $0.organizationID = gateway.tenant.organizationID
                }, metadata: gateway.services.asInternal)
            let (status, body) = try await gateway.send(.get, "/v1/management/api-keys", as: .bearer(token.secret))
            #expect(status == 401)
            #expect(GatewayHarness.error(body).code == "key_revoked")
        }
    }

    @Test("POST creates a key: defaults, trimming, the secret once, the seed's fields")
    func create() async throws {
        try await GatewayHarness.run { gateway in
            let (status, created) = try await gateway.send(
                .post, "/v1/management/api-keys",
                json: #"{"name": "  Backend Worker  ", "limitAmount": 500.25, "models": ["gpt-4o-mini", "claude-3-7-sonnet"], "expiresAt": "2099-04-30T02:00:00+02:00"}"#
            )
            #expect(status == 200)
            let secret = try #require(created["key"] as? String)
            #expect(secret.hasPrefix("sk-"))
            #expect(Set(created.keys) == Self.keyFields.union(["key"]))
            #expect(created["name"] as? String == "Backend Worker")
            #expect(created["status"] as? String == "active")
            #expect((created["limit_amount"] as? NSNumber)?.decimalValue == Decimal(string: "500.25"))
            #expect((created["used_amount"] as? NSNumber)?.intValue == 0)
            #expect(created["models"] as? [String] == ["gpt-4o-mini", "claude-3-7-sonnet"])
            #expect(created["expires_at"] as? String == "2099-04-30T00:00:00.000Z")
            #expect(created["last_used_at"] is NSNull)
            #expect(created["key_prefix"] as? String == String(secret.prefix(9)) + "...")
            #expect(created["hint"] as? String == "\(secret.prefix(4))...\(secret.suffix(4))")
            #expect((created["id"] as? String)?.hasPrefix("key_") == true)

            let (_, defaults) = try await gateway.send(.post, "/v1/management/api-keys", json: nil)
            #expect(defaults["name"] as? String == "Default Key")
            #expect(defaults["limit_amount"] is NSNull)
            #expect(defaults["models"] as? [String] == [])
            #expect(defaults["expires_at"] is NSNull)

            let (listStatus, list) = try await gateway.send(.get, "/v1/management/api-keys")
            #expect(listStatus == 200)
            #expect(list["object"] as? String == "list")
            let items = try #require(list["data"] as? [[String: Any]])
            #expect(items.count == 2)
            for item in items { #expect(Set(item.keys) == Self.keyFields) }
            let text = String(describing: list)
            #expect(!text.contains(secret))
            #expect(text.contains(secret.suffix(4)))
        }
    }

    @Test("GET pages with page and limit (newest first, total and has_more); without them, every key; bad values are 400")
    func paging() async throws {
        try await GatewayHarness.run { gateway in
            for name in ["first", "second", "third"] {
                #expect(try await gateway.send(.post, "/v1/management/api-keys", json: #"{"name": "\#(name)"}"#).status == 200)
            }
            let (plainStatus, plain) = try await gateway.send(.get, "/v1/management/api-keys")
            #expect(plainStatus == 200)
            #expect(Set(plain.keys) == ["object", "data"])
            #expect((plain["data"] as? [[String: Any]])?.compactMap { $0["name"] as? String } == ["third", "second", "first"])

            let (status, first) = try await gateway.send(.get, "/v1/management/api-keys?limit=2")
            #expect(status == 200)
            #expect((first["data"] as? [[String: Any]])?.compactMap { $0["name"] as? String } == ["third", "second"])
            #expect(first["page"] as? Int == 1)
            #expect(first["limit"] as? Int == 2)
            #expect(first["total"] as? Int == 3)
            #expect(first["has_more"] as? Bool == true)
            let (_, second) = try await gateway.send(.get, "/v1/management/api-keys?page=2&limit=2")
            #expect((second["data"] as? [[String: Any]])?.compactMap { $0["name"] as? String } == ["first"])
            #expect(second["has_more"] as? Bool == false)
            let (_, defaults) = try await gateway.send(.get, "/v1/management/api-keys?page=1")
            #expect(defaults["limit"] as? Int == 100)
            #expect((defaults["data"] as? [Any])?.count == 3)

            for (query, code, param) in [
                ("limit=0", "invalid_limit", "limit"), ("limit=1001", "invalid_limit", "limit"), ("page=0", "invalid_page", "page"),
                ("page=two", "invalid_page", "page"), ("sort=name", "unknown_parameter", "sort"),
                ("limit=1&limit=2", "duplicate_parameter", "limit"),
            ] {
                let (status, body) = try await gateway.send(.get, "/v1/management/api-keys?\(query)")
                #expect(status == 400, "\(query)")
                #expect(GatewayHarness.error(body).code == code, "\(query)")
                #expect(GatewayHarness.error(body).param == param, "\(query)")
            }
        }
    }

    @Test("Without page and limit, a list longer than the keys service's pages of 1,000 has every key once, newest first")
    func longList() async throws {
        try await GatewayHarness.run { gateway in
            var created: [String] = []
            for index in 0..<2_105 {
                let key = try await gateway.services.keys.createKey(
                    .with { $0.name = "key \(index)" }, metadata: gateway.tenant.metadata
                ).key
                created.append(key.id)
            }
            let (status, body) = try await gateway.send(.get, "/v1/management/api-keys")
            #expect(status == 200)
            let ids = (body["data"] as? [[String: Any]])?.compactMap { $0["id"] as? String } ?? []
            #expect(ids.count == 2_105)
            #expect(Set(ids) == Set(created))
            let (_, page) = try await gateway.send(.get, "/v1/management/api-keys?limit=1000&page=3")
            #expect((page["data"] as? [[String: Any]])?.compactMap { $0["id"] as? String } == Array(ids[2_000...]))
        }
    }

    @Test("limitAmount: null or omitted is unlimited, 0 is zero quota, positive values are capped at 100,000")
    func limits() async throws {
        try await GatewayHarness.run { gateway in
            let cases: [(String, String?)] = [
                (#"{}"#, nil), (#"{"limitAmount": null}"#, nil), (#"{"limitAmount": 0}"#, "0"),
                (#"{"limitAmount": 0.3}"#, "0.3"), (#"{"limitAmount": 100000}"#, "100000"),
                (#"{"limitAmount": 999999.99}"#, "100000"), (#"{"limitAmount": 1000000}"#, "100000"),
                (#"{"limitAmount": 12.5, "limitCurrency": "USD"}"#, "12.5"),
            ]
            for (json, expected) in cases {
                let (status, body) = try await gateway.send(.post, "/v1/management/api-keys", json: json)
                #expect(status == 200, "\(json)")
                if let expected {
                    #expect((body["limit_amount"] as? NSNumber)?.decimalValue == Decimal(string: expected), "\(json)")
                } else {
                    #expect(body["limit_amount"] is NSNull, "\(json)")
                }
            }
        }
    }

    @Test("POST rejects every bad input with 400, its code and param, and creates nothing")
    func createRejects() async throws {
        try await GatewayHarness.run { gateway in
            let longName = String(repeating: "n", count: 51)
            let cases: [(String, String, String?)] = [
                (#"{"name": ""}"#, "invalid_name", "name"),
                (#"{"name": "   "}"#, "invalid_name", "name"),
                (#"{"name": "\#(longName)"}"#, "invalid_name", "name"),
                (#"{"name": 5}"#, "invalid_name", "name"),
                (#"{"limitAmount": -0.01}"#, "invalid_limit_amount", "limitAmount"),
                (#"{"limitAmount": 1000000.01}"#, "invalid_limit_amount", "limitAmount"),
                (#"{"limitAmount": 1e30}"#, "invalid_limit_amount", "limitAmount"),
                (#"{"limitAmount": "10"}"#, "invalid_limit_amount", "limitAmount"),
                (#"{"limitAmount": 0.0000001}"#, "invalid_limit_amount", "limitAmount"),
                (#"{"limitAmount": 10, "limitCurrency": "CNY"}"#, "currency_retired", "limitCurrency"),
                (#"{"limitCurrency": "EUR"}"#, "invalid_currency", "limitCurrency"),
                (#"{"models": "gpt-4o"}"#, "invalid_models", "models"),
                (#"{"models": [1]}"#, "invalid_models", "models"),
                (#"{"models": [""]}"#, "invalid_models", "models"),
                (#"{"expiresAt": "2026-13-01T00:00:00Z"}"#, "invalid_expires_at", "expiresAt"),
                (#"{"expiresAt": "2099-01-01T00:00:00"}"#, "invalid_expires_at", "expiresAt"),
                (#"{"expiresAt": "2099-01-01"}"#, "invalid_expires_at", "expiresAt"),
                (#"{"expiresAt": "2001-01-01T00:00:00Z"}"#, "invalid_expires_at", "expiresAt"),
                (#"{"expiresAt": 1893456000}"#, "invalid_expires_at", "expiresAt"),
                (#"{"status": "active"}"#, "unknown_parameter", "status"),
                (#"{"limit_amount": 5}"#, "unknown_parameter", "limit_amount"),
                (#"{"rpmLimit": -1}"#, "invalid_rpm_limit", "rpmLimit"),
                (#"{"rpmLimit": 1.5}"#, "invalid_rpm_limit", "rpmLimit"),
                (#"{"rpmLimit": 1000001}"#, "invalid_rpm_limit", "rpmLimit"),
                (#"{"tpmLimit": "many"}"#, "invalid_tpm_limit", "tpmLimit"),
                (#"{"name": "x""#, "invalid_json", nil),
                (#"["x"]"#, "invalid_json", nil),
            ]
            for (json, code, param) in cases {
                let (status, body) = try await gateway.send(.post, "/v1/management/api-keys", json: json)
                #expect(status == 400, "\(json)")
                let error = GatewayHarness.error(body)
                #expect(error.code == code, "\(json)")
                #expect(error.param == param, "\(json)")
                let detail = body["error"] as? [String: Any]
                #expect(detail?["type"] as? String == "invalid_request_error")
                #expect((detail?["message"] as? String)?.isEmpty == false)
            }
            let (_, list) = try await gateway.send(.get, "/v1/management/api-keys")
            #expect((list["data"] as? [Any])?.isEmpty == true)
        }
    }

    @Test("PATCH updates each field; null clears the cap and the expiry")
    func update() async throws {
        try await GatewayHarness.run { gateway in
            let (_, created) = try await gateway.send(
                .post, "/v1/management/api-keys",
                json: #"{"name": "worker", "limitAmount": 50, "expiresAt": "2099-01-01T00:00:00Z"}"#)
            let path = "/v1/management/api-keys/\(try #require(created["id"] as? String))"

            var (status, body) = try await gateway.send(.patch, path, json: #"{"name": " batch "}"#)
            #expect(status == 200)
            #expect(body["name"] as? String == "batch")
            #expect((body["limit_amount"] as? NSNumber)?.intValue == 50)
            #expect(body["key"] == nil)

            (status, body) = try await gateway.send(.patch, path, json: #"{"limitAmount": 2000000.0}"#)
            #expect(status == 400)
            #expect(GatewayHarness.error(body).code == "invalid_limit_amount")

            (status, body) = try await gateway.send(.patch, path, json: #"{"limitAmount": 250000}"#)
            #expect((body["limit_amount"] as? NSNumber)?.intValue == 100_000)
            (status, body) = try await gateway.send(.patch, path, json: #"{"limitAmount": null, "expiresAt": null}"#)
            #expect(status == 200)
            #expect(body["limit_amount"] is NSNull)
            #expect(body["expires_at"] is NSNull)
            (status, body) = try await gateway.send(.patch, path, json: #"{"models": ["gpt-4o", "gpt-4o"]}"#)
            #expect(body["models"] as? [String] == ["gpt-4o"])
            (status, body) = try await gateway.send(.patch, path, json: #"{"expiresAt": "2099-06-01T12:00:00.250Z"}"#)
            #expect(body["expires_at"] as? String == "2099-06-01T12:00:00.250Z")
            #expect(body["rpm_limit"] is NSNull && body["tpm_limit"] is NSNull)
            (status, body) = try await gateway.send(.patch, path, json: #"{"rpmLimit": 60, "tpmLimit": 100000}"#)
            #expect((body["rpm_limit"] as? Int, body["tpm_limit"] as? Int) == (60, 100_000))
            (status, body) = try await gateway.send(.patch, path, json: #"{"tpmLimit": null}"#)
            #expect(body["rpm_limit"] as? Int == 60 && body["tpm_limit"] is NSNull)

            for state in ["inactive", "suspended", "active", "revoked"] {
                (status, body) = try await gateway.send(.patch, path, json: #"{"status": "\#(state)"}"#)
                #expect(status == 200)
                #expect(body["status"] as? String == state)
            }
            (status, body) = try await gateway.send(.patch, path, json: #"{"status": "active"}"#)
            #expect(status == 409)
            #expect(GatewayHarness.error(body).code == "key_revoked")

            let (_, list) = try await gateway.send(.get, "/v1/management/api-keys")
            let item = (list["data"] as? [[String: Any]])?.first
            #expect(item?["status"] as? String == "revoked")
        }
    }

    @Test("PATCH rejects bad input and unknown keys")
    func updateRejects() async throws {
        try await GatewayHarness.run { gateway in
            let (_, created) = try await gateway.send(.post, "/v1/management/api-keys", json: #"{"name": "keep"}"#)
            let path = "/v1/management/api-keys/\(try #require(created["id"] as? String))"
            let cases: [(String?, Int, String, String?)] = [
                (nil, 400, "empty_update", nil),
                ("{}", 400, "empty_update", nil),
                (#"{"limitCurrency": "USD"}"#, 400, "empty_update", nil),
                (#"{"status": "paused"}"#, 400, "invalid_status", "status"),
                (#"{"status": null}"#, 400, "invalid_status", "status"),
                (#"{"name": null}"#, 400, "invalid_name", "name"),
                (#"{"name": ""}"#, 400, "invalid_name", "name"),
                (#"{"models": null}"#, 400, "invalid_models", "models"),
                (#"{"limitAmount": -1}"#, 400, "invalid_limit_amount", "limitAmount"),
                (#"{"limitAmount": 5, "limitCurrency": "CNY"}"#, 400, "currency_retired", "limitCurrency"),
                (#"{"expiresAt": "yesterday"}"#, 400, "invalid_expires_at", "expiresAt"),
                (#"{"owner": "me"}"#, 400, "unknown_parameter", "owner"),
            ]
            for (json, expectedStatus, code, param) in cases {
                let (status, body) = try await gateway.send(.patch, path, json: json)
                #expect(status == expectedStatus, "\(json ?? "no body")")
                #expect(GatewayHarness.error(body).code == code, "\(json ?? "no body")")
                #expect(GatewayHarness.error(body).param == param, "\(json ?? "no body")")
            }
            let (_, unchanged) = try await gateway.send(.get, path)
            #expect(unchanged["name"] as? String == "keep")

            let (status, body) = try await gateway.send(.patch, "/v1/management/api-keys/key_doesnotexist", json: #"{"name": "x"}"#)
            #expect(status == 404)
            #expect(GatewayHarness.error(body).code == "key_not_found")
            #expect(GatewayHarness.error(body).param == "keyId")
        }
    }

    @Test("One organisation's token cannot see or change another's keys")
    func organisationsAreIsolated() async throws {
        try await GatewayHarness.run { gateway in
            let (_, created) = try await gateway.send(.post, "/v1/management/api-keys", json: #"{"name": "mine"}"#)
            let other = try await gateway.services.tenant("Globex")
            let (_, list) = try await gateway.send(.get, "/v1/management/api-keys", as: .bearer(other.managementToken))
            #expect((list["data"] as? [Any])?.isEmpty == true)
            let path = "/v1/management/api-keys/\(try #require(created["id"] as? String))"
            let (status, body) = try await gateway.send(.patch, path, json: #"{"name": "theirs"}"#, as: .bearer(other.managementToken))
            #expect(status == 404)
            #expect(GatewayHarness.error(body).code == "key_not_found")
        }
    }

    @Test("Unknown routes and oversized bodies get JSON errors, never a bare 500")
    func edges() async throws {
        try await GatewayHarness.run { gateway in
            var (status, body) = try await gateway.send(.get, "/v1/management/nothing-here")
            #expect(status == 404)
            #expect(GatewayHarness.error(body).code == "not_found")
            let huge = #"{"name": "\#(String(repeating: "x", count: 100_000))"}"#
            (status, body) = try await gateway.send(.post, "/v1/management/api-keys", json: huge)
            #expect(status == 413)
            #expect(GatewayHarness.error(body).code == "request_too_large")
        }
    }
}
