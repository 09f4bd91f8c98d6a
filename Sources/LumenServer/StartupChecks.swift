import Foundation
import NIOCore
import NIOPosix

#if canImport(Glibc)
import Glibc
#endif

/// What `lumen serve` makes sure of before it touches the data directory: every port it is
/// about to listen on is free, and no other live process runs the same services on the same
/// data directory. A failed check stops the start with a message naming the port and its
/// option, or the directory and the other process's PID — and nothing written.
enum StartupChecks {
    /// A port this process will listen on, with the option that sets it.
    struct PlannedListener: Sendable {
        var name: String
        var host: String
        var port: Int
        /// How to change it: the flag, the variable and the file key.
        var option: String
    }

    /// The listeners `configuration` asks for (the gateway's two when it runs here, the gRPC
    /// port when a service does).
    static func listeners(_ configuration: ServeConfiguration) -> [PlannedListener] {
        var result: [PlannedListener] = []
        if configuration.components.contains(.gateway) {
            result.append(
                .init(
                    name: "HTTP", host: configuration.httpHost, port: configuration.httpPort,
                    option: "--http-port (LUMEN_HTTP_PORT, http.port)"))
            result.append(
                .init(
                    name: "metrics", host: configuration.metricsHost, port: configuration.metricsPort,
                    option: "--metrics-port (LUMEN_METRICS_PORT, metrics.port)"))
        }
        if !configuration.components.subtracting([.gateway]).isEmpty {
            result.append(
                .init(
                    name: "gRPC", host: configuration.grpcHost, port: configuration.grpcPort,
                    option: "--grpc-port (LUMEN_GRPC_PORT, grpc.port)"))
        }
        return result
    }

    /// Binds each listener's address and lets it go again; port 0 (any free port) always passes.
    static func ensureFree(_ listeners: [PlannedListener]) async throws {
        var seen: [Int: PlannedListener] = [:]
        for listener in listeners where listener.port != 0 {
            if let other = seen[listener.port] {
                throw ConfigurationError(
                    "the \(other.name) and \(listener.name) listeners both ask for port \(listener.port): change \(listener.option)")
            }
            seen[listener.port] = listener
            do {
                let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                    .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
                    .bind(host: listener.host, port: listener.port).get()
                try await channel.close()
            } catch let error as IOError {
                let address = "\(listener.host):\(listener.port)"
                switch error.errnoCode {
                case EADDRINUSE:
                    throw ConfigurationError(
                        "the \(listener.name) port \(address) is already in use (another Lumen?): stop what listens there or choose another port with \(listener.option)")
                case EACCES:
                    throw ConfigurationError(
                        "the \(listener.name) port \(address) needs privileges this process lacks: choose a port above 1023 with \(listener.option)")
                default:
                    throw ConfigurationError(
                        "cannot listen for \(listener.name) on \(address) (\(error)): check the host and \(listener.option)")
                }
            } catch {
                throw ConfigurationError(
                    "cannot listen for \(listener.name) on \(listener.host):\(listener.port) (\(error)): check the host and \(listener.option)")
            }
        }
    }
}

/// Exclusive use of the data directory's databases by one live process: a lock file per
/// service (`keys.lock`…) holding the owner's PID, locked with `flock` for as long as the
/// process lives (the kernel lets go when it dies, `kill -9` included). Split deployments that
/// run different services on one directory do not collide; two processes running the same
/// service do.
final class DataDirectoryLock: Sendable {
    private let descriptors: [Int32]

    init(directory: String, services: [Component]) throws {
        var descriptors: [Int32] = []
        do {
            if !services.isEmpty {
                try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            }
            for service in services.sorted() {
                descriptors.append(try Self.lock((directory as NSString).appendingPathComponent("\(service.rawValue).lock"), directory))
            }
        } catch let error as ConfigurationError {
            descriptors.forEach { _ = close($0) }
            throw error
        } catch {
            descriptors.forEach { _ = close($0) }
            throw ConfigurationError("cannot use the data directory \(directory): \(error.localizedDescription)")
        }
        self.descriptors = descriptors
    }

    private static func lock(_ path: String, _ directory: String) throws -> Int32 {
        let descriptor = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else {
            throw ConfigurationError("cannot create \(path): \(String(cString: strerror(errno)))")
        }
        guard flock(descriptor, LOCK_EX | LOCK_NB) == 0 else {
            let holder = (try? String(contentsOfFile: path, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines)
            _ = close(descriptor)
            let who = holder.flatMap(Int32.init).map { "another Lumen process (PID \($0))" } ?? "another Lumen process"
            throw ConfigurationError(
                "the data directory \(directory) is in use by \(who): stop it, or give this one another --data-dir (LUMEN_DATA_DIR, data_dir)")
        }
        let pid = Array("\(getpid())\n".utf8)
        _ = ftruncate(descriptor, 0)
        _ = pid.withUnsafeBytes { pwrite(descriptor, $0.baseAddress, $0.count, 0) }
        return descriptor
    }

    /// Lets the directory go (the process's exit does it too).
    func release() {
        for descriptor in descriptors { _ = close(descriptor) }
    }
}
