#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import Logging
import NIOConcurrencyHelpers

/// Where Lumen's log lines go: standard error or a file, written in batches by a thread of its
/// own, so that the line a request logs costs its formatting and an append to a buffer, never a
/// system call on the event loop that handled it.
///
/// A line is appended under a lock; the first line into an empty buffer wakes the writer, which
/// waits `interval` (lines gathered meanwhile join the batch), takes the buffer and writes it
/// with one `write`. A line at `error` or above is written at once, with everything before it,
/// before the call returns (it may be the last before a crash). `flush()` writes what is
/// buffered and returns once it is written: called when `lumen serve` ends, so a clean
/// shutdown loses no line; a `kill -9` loses at most the last `interval` of lines.
public final class LogSink: @unchecked Sendable {
    /// How long the writer gathers lines after the first one into an empty buffer.
    static let interval = 0.01
    /// A buffer this large is written at once.
    static let highWater = 64 * 1024

    private let descriptor: Int32
    /// Guards `pending` and `second`; its value is 1 while lines wait for the writer.
    private let buffer = ConditionLock(value: 0)
    private var pending: [UInt8] = []
    /// The timestamp of the last line, formatted, and its second: one `strftime` a second.
    private var second: (time: time_t, text: [UInt8]) = (-1, [])
    /// Held while a batch is written, so that batches reach the file in order.
    private let writing = NIOLock()

    /// Lines to standard error.
    public static func standardError() -> LogSink { LogSink(descriptor: STDERR_FILENO) }

    /// Lines appended to the file at `path` (created with mode 0640 if it does not exist).
    public static func file(_ path: String) throws -> LogSink {
        let descriptor = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o640)
        guard descriptor >= 0 else {
            throw ConfigurationError("cannot open the log file \(path): \(String(cString: strerror(errno)))")
        }
        return LogSink(descriptor: descriptor)
    }

    private init(descriptor: Int32) {
        self.descriptor = descriptor
        pending.reserveCapacity(Self.highWater)
        let thread = Thread { self.drain() }  // a sink lives as long as the process
        thread.name = "lumen-log"
        thread.start()
    }

    /// Appends one line (`body` writes it, without the timestamp and the newline); `urgent`
    /// writes it, and everything before it, before returning.
    func append(urgent: Bool, _ body: (inout [UInt8]) -> Void) {
        if urgent { writing.lock() }
        buffer.lock()
        let wasEmpty = pending.isEmpty
        stamp(&pending)
        body(&pending)
        pending.append(UInt8(ascii: "\n"))
        guard urgent else {
            // Only the first line of a batch (or a full buffer) wakes the writer.
            if wasEmpty || pending.count >= Self.highWater { buffer.unlock(withValue: 1) } else { buffer.unlock() }
            return
        }
        let batch = take()
        buffer.unlock(withValue: 0)
        write(batch)
        writing.unlock()
    }

    /// Writes every line appended before the call; returns once they are written.
    public func flush() {
        writing.lock()
        buffer.lock()
        let batch = take()
        buffer.unlock(withValue: 0)
        write(batch)
        writing.unlock()
    }

    /// The buffered lines, the buffer left empty (with its capacity); under `buffer`.
    private func take() -> [UInt8] {
        var batch: [UInt8] = []
        batch.reserveCapacity(Self.highWater)
        swap(&batch, &pending)
        return batch
    }

    private func drain() {
        while true {
            buffer.lock(whenValue: 1)
            let full = pending.count >= Self.highWater
            buffer.unlock()
            if !full { Thread.sleep(forTimeInterval: Self.interval) }
            flush()
        }
    }

    /// Writes `bytes` whole (a short write or an interruption is continued; a failing
    /// descriptor loses the batch: there is nowhere left to say so).
    private func write(_ bytes: [UInt8]) {
        guard !bytes.isEmpty else { return }
        bytes.withUnsafeBytes { raw in
            var offset = 0
            while offset < raw.count {
                let written = Glibc.write(descriptor, raw.baseAddress! + offset, raw.count - offset)
                if written < 0 {
                    if errno == EINTR { continue }
                    return
                }
                offset += written
            }
        }
    }

    /// The current second as `2026-12-07T04:09:24+0000 ` (local time, as swift-log's stream
    /// handler writes it), formatted once a second; under `buffer`.
    private func stamp(_ line: inout [UInt8]) {
        let now = time(nil)
        if now != second.time {
            var local = tm()
            var now = now
            localtime_r(&now, &local)
            var text = [Int8](repeating: 0, count: 64)
            let count = strftime(&text, text.count, "%Y-%m-%dT%H:%M:%S%z", &local)
            second = (now, text.prefix(count).map { UInt8(bitPattern: $0) } + [UInt8(ascii: " ")])
        }
        line.append(contentsOf: second.text)
    }
}

/// swift-log's handler over a `LogSink`: the line swift-log's `StreamLogHandler` writes
/// (`<time> <level> <label>: <key=value …> [<module>] <message>`, keys sorted), formatted
/// straight into the sink's buffer.
public struct SinkLogHandler: LogHandler {
    let sink: LogSink
    let label: String
    public var logLevel: Logger.Level
    public var metadataProvider: Logger.MetadataProvider?
    public var metadata = Logger.Metadata()

    public init(label: String, sink: LogSink, level: Logger.Level, metadataProvider: Logger.MetadataProvider? = nil) {
        self.label = label
        self.sink = sink
        self.logLevel = level
        self.metadataProvider = metadataProvider
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var merged = metadata
        if let provided = metadataProvider?.get(), !provided.isEmpty {
            merged.merge(provided) { _, new in new }
        }
        if let explicit = event.metadata, !explicit.isEmpty {
            merged.merge(explicit) { _, new in new }
        }
        if let error = event.error {
            merged["error.message"] = "\(error)"
            merged["error.type"] = "\(String(reflecting: type(of: error)))"
        }
        let pairs = merged.sorted { $0.key < $1.key }
        let (level, label, source, message) = (event.level, self.label, event.source, event.message.description)
        sink.append(urgent: level >= .error) { line in
            line.append(contentsOf: level.rawValue.utf8)
            if !label.isEmpty {
                line.append(UInt8(ascii: " "))
                line.append(contentsOf: label.utf8)
            }
            line.append(UInt8(ascii: ":"))
            for (key, value) in pairs {
                line.append(UInt8(ascii: " "))
                line.append(contentsOf: key.utf8)
                line.append(UInt8(ascii: "="))
                switch value {
                case .string(let text): line.append(contentsOf: text.utf8)
                default: line.append(contentsOf: value.description.utf8)
                }
            }
            line.append(contentsOf: " [".utf8)
            line.append(contentsOf: source.utf8)
            line.append(contentsOf: "] ".utf8)
            line.append(contentsOf: message.utf8)
        }
    }
}
