import Crypto
import Foundation
import Logging
import LumenAPI
import NIOCore
import NIOHTTP1
import RPCSupport
import ServiceLifecycle
import SharedRules
import Storage
import UpstreamClient

/// How budget alerts reach their webhooks: each endpoint's signing secret — derived from the
/// deployment's internal token and the endpoint's id, so it is never stored and every ledger
/// process of the deployment signs alike — and the hosts alerts may be sent to.
public struct AlertSettings: Sendable {
    let key: SymmetricKey
    /// The hosts the operator allows (`--alert-webhook-hosts`): by default any host at a public address.
    public var hosts: HostPolicy

    public init(internalToken: String, hosts: HostPolicy) {
        key = SymmetricKey(data: SHA256.hash(data: Data("lumen alert webhooks\u{0}\(internalToken)".utf8)))
        self.hosts = hosts
    }

    /// For tests and a ledger without wiring: a key of its own, any host at a public address.
    static func random() -> AlertSettings {
        // The policy `*` always parses.
        AlertSettings(internalToken: Identifier.secret(count: 32), hosts: (try? HostPolicy(list: "*")) ?? .none)
    }

    /// The endpoint's signing secret, `whsec_…`.
    func secret(for endpointID: String) -> String {
        let mac = HMAC<SHA256>.authenticationCode(for: Data(endpointID.utf8), using: key)
        return "whsec_" + Data(mac).base64EncodedString().replacingOccurrences(of: "+", with: "-")
            .replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
    }

    /// `Lumen-Signature` of `body` sent at `timestamp` (Unix seconds) to `endpointID`:
    /// `t=<timestamp>,v1=<hex HMAC-SHA256 of "<timestamp>.<body>" under the endpoint's secret>`.
    func signature(_ body: [UInt8], timestamp: Int64, endpointID: String) -> String {
        let secret = SymmetricKey(data: Data(secret(for: endpointID).utf8))
        var signed = Data("\(timestamp).".utf8)
        signed.append(contentsOf: body)
        let mac = HMAC<SHA256>.authenticationCode(for: signed, using: secret)
        return "t=\(timestamp),v1=" + Hex.string(Array(mac))
    }

    /// An endpoint's URL: `https://host/…`, or `http://` to a host the operator named; at most
    /// 2,048 characters, no user or password (INVALID_ARGUMENT `invalid_url`).
    func validate(_ url: String) throws {
        func refuse(_ why: String) -> ServiceError { ServiceError.invalid("invalid_url", "url \(why)", param: "url") }
        guard url.utf8.count <= 2_048 else { throw refuse("is at most 2,048 characters") }
        guard let components = URLComponents(string: url), let scheme = components.scheme?.lowercased(),
            let host = HostPolicy.host(of: components), components.user == nil, components.password == nil
        else { throw refuse("must be an http(s) URL with a host and no user or password") }
        let (allowed, publicOnly) = hosts.admits(host)
        guard allowed else { throw refuse("is on a host the operator does not allow (--alert-webhook-hosts)") }
        guard scheme == "https" || (scheme == "http" && !publicOnly) else {
            throw refuse("must be https:// (http:// only to a host the operator lists in --alert-webhook-hosts)")
        }
    }
}

/// Sends recorded alerts to their endpoints: every due delivery, once a second or as soon as
/// alerts are recorded; at least once (a receiver tells repeats by `Lumen-Webhook-Id`), retried
/// after 1, 2, 4 … seconds, at most an hour apart, until it is delivered (any 2xx) or a day has
/// passed since the alert (then `failed`). Attempts are recorded through the group commit.
struct AlertDeliverer: Sendable {
    let settings: AlertSettings
    let client: UpstreamClient

    /// A day of retries.
    static let giveUpAfter: Int64 = 86_400_000
    /// Deliveries sent at once, at most.
    static let batch = 20

    /// The delay before attempt `attempts + 1`, after `attempts` failed: 1 s, doubling, at most an hour.
    static func backoff(afterAttempts attempts: Int) -> Int64 {
        let doublings = min(max(attempts - 1, 0), 12)
        return min(Int64(1_000) << Int64(doublings), 3_600_000)
    }

    struct Due {
        var eventID: String
        var endpointID: String
        var url: String
        var format: Lumen_Ledger_V1_AlertFormat
        var attempts: Int
        var createdAt: Int64
        var event: AlertEvent
    }

    /// Sends what is due now; how many were delivered.
    @discardableResult
    func deliverDue(_ ledger: LedgerService) async throws -> Int {
        let now = ledger.clock.nowMillis
        let due = try await ledger.read { db in
            try await db.rows(
                """
                SELECT delivery.event_id, delivery.endpoint_id, endpoint.url, endpoint.format, delivery.attempts, delivery.created_at,
                    event.organization_id, event.owner_type, event.owner_id, event.threshold, event.balance_micros,
                    event.reference_micros, event.created_at
                FROM alert_deliveries AS delivery
                JOIN alert_events AS event ON event.id = delivery.event_id
                JOIN alert_endpoints AS endpoint ON endpoint.id = delivery.endpoint_id
                WHERE delivery.status = 1 AND delivery.next_attempt_at <= ?
                ORDER BY delivery.next_attempt_at LIMIT ?
                """, [.integer(now), .of(Self.batch)])
        }.map { row in
            Due(
                eventID: try row[0], endpointID: try row[1], url: try row[2], format: .init(rawValue: try row[3]) ?? .json,
                attempts: try row[4], createdAt: try row[5],
                event: AlertEvent(
                    id: try row[0], organizationID: try row[6], ownerType: try row[7], ownerID: try row[8], threshold: try row[9],
                    balanceMicros: try row[10], referenceMicros: try row[11], createdAt: try row[12]))
        }
        guard !due.isEmpty else { return 0 }
        let results = await withTaskGroup(of: (Due, Int, String).self) { group in
            for delivery in due {
                group.addTask {
                    let (status, error) = await send(delivery, now: now)
                    return (delivery, status, error)
                }
            }
            var results: [(Due, Int, String)] = []
            for await result in group { results.append(result) }
            return results
        }
        var delivered = 0
        let rows: [[SQLValue]] = results.map { delivery, status, error in
            let attempts = delivery.attempts + 1
            let ok = (200..<300).contains(status)
            if ok { delivered += 1 }
            let expired = now - delivery.createdAt >= Self.giveUpAfter
            let outcome: Lumen_Ledger_V1_AlertDeliveryStatus = ok ? .delivered : expired ? .failed : .pending
            if !ok {
                ledger.logger.warning(
                    "alert delivery failed", metadata: ["alert_id": "\(delivery.eventID)", "endpoint_id": "\(delivery.endpointID)",
                        "attempts": "\(attempts)", "error": "\(error)", "gave_up": "\(expired)"])
            }
            return [
                .text(delivery.eventID), .text(delivery.endpointID), .of(outcome.rawValue), .of(attempts),
                .integer(ok || expired ? 0 : now + Self.backoff(afterAttempts: attempts)), .of(status), .text(String(error.prefix(500))),
                ok ? .integer(now) : .null,
            ]
        }
        _ = try await ledger.meter(.write([.init(statement: AlertRules.recordAttempt, rows: rows)], audit: nil))
        return delivered
    }

    /// One attempt: the HTTP status (0 when none came) and why it failed.
    func send(_ delivery: Due, now: Int64) async -> (Int, String) {
        let body = delivery.format == .slack ? delivery.event.slack : delivery.event.json
        guard let components = URLComponents(string: delivery.url), let host = HostPolicy.host(of: components) else {
            return (0, "the endpoint's URL cannot be read")
        }
        let port = components.port ?? (components.scheme?.lowercased() == "http" ? 80 : 443)
        let address: SocketAddress
        do {
            address = try await settings.hosts.address(of: host, port: port)
        } catch .notAllowed {
            return (0, "the host \(host) is not allowed (--alert-webhook-hosts)")
        } catch .doesNotResolve {
            return (0, "the host \(host) does not resolve")
        } catch {
            return (0, "the host \(host) is at a private or reserved address (the operator may list it in --alert-webhook-hosts)")
        }
        let timestamp = now / 1000
        var headers = HTTPHeaders()
        headers.add(name: "content-type", value: "application/json")
        headers.add(name: "user-agent", value: "Lumen-Alerts")
        headers.add(name: "lumen-webhook-id", value: delivery.eventID)
        headers.add(name: "lumen-webhook-timestamp", value: "\(timestamp)")
        headers.add(name: "lumen-signature", value: settings.signature(body, timestamp: timestamp, endpointID: delivery.endpointID))
        do {
            let response = try await client.execute(
                UpstreamHTTPRequest(url: delivery.url, method: .POST, headers: headers, body: ByteBuffer(bytes: body), address: address),
                headTimeout: .seconds(10))
            _ = try? await response.body.collect(upTo: 64 * 1024)
            let status = Int(response.status.code)
            return (status, (200..<300).contains(status) ? "" : "the endpoint answered \(status)")
        } catch {
            return (0, "\(error)")
        }
    }

    /// Delivers until shutdown: every second, and whenever alerts are recorded.
    func run(_ ledger: LedgerService, monitor: AlertMonitor) async {
        await withTaskGroup(of: Void.self) { group in
            let (tick, ticker) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
            group.addTask {
                for await _ in monitor.recorded { ticker.yield() }
            }
            group.addTask {
                while !Task.isCancelled {
                    try? await Task.sleep(for: .seconds(1))
                    ticker.yield()
                }
            }
            group.addTask {
                for await _ in tick {
                    do {
                        try await deliverDue(ledger)
                    } catch {
                        ledger.logger.error("alert deliveries could not be read or recorded", metadata: ["error": "\(error)"])
                    }
                }
            }
            await withGracefulShutdownHandler {
                await group.next()
            } onGracefulShutdown: {
                ticker.finish()
            }
            group.cancelAll()
        }
    }
}

/// An alert as its receivers see it.
struct AlertEvent: Sendable {
    var id: String
    var organizationID: String
    var ownerType: Int
    var ownerID: String
    var threshold: Int
    var balanceMicros: Int64
    var referenceMicros: Int64
    var createdAt: Int64

    var owner: Lumen_Common_V1_PrincipalRef { LedgerStore.principal(type: ownerType, id: ownerID) }

    /// Lumen's JSON event: `budget.threshold_crossed`, money in USD.
    var json: [UInt8] {
        struct Body: Encodable {
            struct Pool: Encodable {
                var owner_type: String
                var owner_id: String
                var balance: Decimal
                var reference: Decimal
            }
            var id: String
            var type = "budget.threshold_crossed"
            var created_at: String
            var organization_id: String
            var threshold_percent: Int
            var pool: Pool
        }
        let body = Body(
            id: id, created_at: RFC3339.format(millis: createdAt), organization_id: organizationID, threshold_percent: threshold,
            pool: .init(
                owner_type: owner.type.publicName, owner_id: ownerID, balance: USD.amount(balanceMicros),
                reference: USD.amount(referenceMicros)))
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return Array((try? encoder.encode(body)) ?? Data("{}".utf8))
    }

    /// A Slack incoming webhook's message.
    var slack: [UInt8] {
        let whose =
            switch owner.type {
            case .organization: "The organisation's pool"
            case .user: "The pool of user \(ownerID)"
            case .client: "The pool of client \(ownerID)"
            case .key: "The pool of key \(ownerID)"
            default: "A pool"
            }
        let text = ":warning: Lumen budget alert: \(whose) has spent \(threshold)% of its budget — $\(USD.amount(balanceMicros)) left of $\(USD.amount(referenceMicros)) (alert \(id))."
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.withoutEscapingSlashes]
        return Array((try? encoder.encode(["text": text])) ?? Data("{}".utf8))
    }
}
