import GRPCCore
import RPCSupport
import SharedRules
import Storage

/// How a command reports what went wrong once its arguments parsed: the user's to fix (shown
/// with the command's usage) or refused by a service (its message and code, as the API says it).
public enum CommandFailure: Equatable, Sendable {
    /// A bad option value, a configuration file or data directory that cannot be used.
    case usage(String)
    /// What a service refused, a server that cannot be reached, or a file the command was given
    /// that cannot be used (the command line was right): `error: …`, exit 1.
    case refused(String)

    /// The failure `error` is, or nil for an error of another kind.
    public init?(_ error: any Error) {
        switch error {
        case let error as ConfigurationError: self = .usage(error.description)
        case let error as StorageError: self = .usage(error.description)
        case let error as AdminConnection.Unreachable: self = .refused(error.description)
        case let error as FileProblem: self = .refused(error.description)
        case let error as RPCError:
            let cause = ServiceError(error)
            // A failure the server does not explain to callers (a store failure, a bug): say so,
            // and where the cause is, rather than an empty message.
            self = .refused(
                cause.message.isEmpty
                    ? "the server failed this call (\(cause.code), gRPC \(error.code)); its log names the cause"
                    : "\(cause.message) (\(cause.code))")
        default: return nil
        }
    }
}

/// A file a command was given that cannot be read or used — not a mistake on the command line,
/// so no usage follows the message.
public struct FileProblem: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}
