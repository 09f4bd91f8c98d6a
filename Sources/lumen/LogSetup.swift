import RPCSupport
import Foundation
import Storage
import Logging

enum LogSetup {
    /// Sends every log line to standard error (unbuffered) at `level` and returns the root logger.
    static func bootstrap(level: String) throws -> Logger {
        guard let parsed = Logger.Level(rawValue: level.lowercased()) else {
            throw ConfigurationError(
                "unknown log level \"\(level)\"; choose trace, debug, info, notice, warning, error or critical")
        }
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = parsed
            return handler
        }
        var logger = Logger(label: "lumen")
        logger.logLevel = parsed
        return logger
    }
}

enum InternalToken {
    /// The secret the processes of a deployment authenticate each other with.
    ///
    /// All-in-one, a fresh random token serves the in-process calls. Split, every process
    /// must share the same LUMEN_INTERNAL_TOKEN, so it is required.
    static func resolve(_ value: String?, configuration: ServeConfiguration) throws -> String {
        if let value, !value.isEmpty {
            guard value.count >= 16 else { throw ConfigurationError("LUMEN_INTERNAL_TOKEN must be at least 16 characters") }
            guard !value.hasPrefix("mt-"), !value.hasPrefix("sk-") else {
                throw ConfigurationError("LUMEN_INTERNAL_TOKEN must not look like an mt- or sk- key")
            }
            return value
        }
        let split = configuration.components != Set(Component.allCases) || !configuration.addresses.isEmpty
        if split {
            throw ConfigurationError(
                "a split deployment needs LUMEN_INTERNAL_TOKEN, the same secret in every process (for example: openssl rand -hex 32)")
        }
        return "it-" + Identifier.secret(count: 48)
    }
}
