import Logging

public enum LogSetup {
    /// The process's sink, once `bootstrap` has run.
    nonisolated(unsafe) private static var sink: LogSink?

    /// Sends every log line at `level` or above to standard error, or appended to the file at
    /// `file`, through a `LogSink` (buffered, written by a thread of its own; errors at once),
    /// and returns the root logger.
    public static func bootstrap(level: String, file: String = "") throws -> Logger {
        guard let parsed = Logger.Level(rawValue: level.lowercased()) else {
            throw ConfigurationError(
                "unknown log level \"\(level)\"; choose trace, debug, info, notice, warning, error or critical")
        }
        let sink = file.isEmpty ? LogSink.standardError() : try LogSink.file(file)
        Self.sink = sink
        LoggingSystem.bootstrap { label in SinkLogHandler(label: label, sink: sink, level: parsed) }
        var logger = Logger(label: "lumen")
        logger.logLevel = parsed
        return logger
    }

    /// Writes every line logged so far; returns once they are written (before the process ends).
    public static func flush() { sink?.flush() }
}
