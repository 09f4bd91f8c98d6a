import Foundation
import Logging
import ServiceLifecycle
import Storage

/// The audit retention of the services running in this process (`--audit-retention-days`):
/// once shortly after start and then every hour, each prunes its entries past retention behind
/// a checkpoint signed with the deployment's key (`pruneAudit`). A failure is logged and tried
/// again at the next round.
struct AuditPruning: Service {
    /// Each service's pruning, by name.
    let services: [(name: String, prune: @Sendable () async throws -> Int64)]
    let logger: Logger
    var interval: Duration = .seconds(3600)

    func run() async throws {
        var delay: Duration = .seconds(5)
        while !Task.isShuttingDownGracefully {
            do {
                try await cancelWhenGracefulShutdown { [delay] in try await Task.sleep(for: delay) }
            } catch {
                return
            }
            delay = interval
            for service in services {
                do {
                    let pruned = try await service.prune()
                    if pruned > 0 {
                        logger.info("audit entries past retention pruned", metadata: ["service": "\(service.name)", "entries": "\(pruned)"])
                    }
                } catch {
                    logger.error(
                        "pruning the audit log failed; will retry", metadata: ["service": "\(service.name)", "error": "\(error)"])
                }
            }
        }
    }
}

extension ServeConfiguration {
    /// Where the audit signing key is: `--audit-signing-key`, or `audit-signing.key` in the data directory.
    public var auditSigningKeyPath: String {
        auditSigningKey ?? (dataDirectory as NSString).appendingPathComponent("audit-signing.key")
    }
}
