import Logging

public enum LogSetup {
    /// Sends every log line to standard error (unbuffered) at `level` and returns the root logger.
    public static func bootstrap(level: String) throws -> Logger {
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
