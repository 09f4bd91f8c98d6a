import Foundation
import Logging
import LumenTesting
import Testing

@testable import LumenServer

/// The log's sink: what an operator reads in the file is every line, whole, in order, in
/// swift-log's stream format; an error is on disk when the call returns.
@Suite("Log sink")
struct LogSinkTests {
    func logger(_ sink: LogSink, level: Logger.Level = .info) -> Logger {
        Logger(label: "lumen") { label in SinkLogHandler(label: label, sink: sink, level: level) }
    }

    func lines(_ path: String) throws -> [String] {
        try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n").map(String.init)
    }

    @Test("A line reads as swift-log's stream handler writes it: time, level, label, sorted metadata, module, message")
    func format() throws {
        let path = temporaryDirectory() + ".log"
        defer { try? FileManager.default.removeItem(atPath: path) }
        let sink = try LogSink.file(path)
        var logger = logger(sink)
        logger[metadataKey: "component"] = "gateway"
        logger.info("inference", metadata: ["request_id": "req_1", "input_tokens": .stringConvertible(12), "b": ["x", "y"]])
        logger.debug("below the level")
        sink.flush()
        let written = try lines(path)
        #expect(written.count == 1)
        let pattern = #/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d{4} info lumen: b=\["x", "y"\] component=gateway input_tokens=12 request_id=req_1 \[lumenTests\] inference$/#
        #expect(try pattern.wholeMatch(in: written[0]) != nil, "\(written[0])")
    }

    @Test("Lines from many threads at once are all written, whole; an error is written before the call returns")
    func concurrentAndUrgent() async throws {
        let path = temporaryDirectory() + ".log"
        defer { try? FileManager.default.removeItem(atPath: path) }
        let sink = try LogSink.file(path)
        let logger = logger(sink)
        await withTaskGroup(of: Void.self) { group in
            for writer in 0..<8 {
                group.addTask {
                    for line in 0..<2_000 { logger.info("line", metadata: ["writer": "\(writer)", "n": "\(line)"]) }
                }
            }
        }
        logger.error("broken", metadata: ["n": "last"])
        // Written already: no flush, no wait.
        let written = try lines(path)
        #expect(written.count == 16_001)
        #expect(written.last?.hasSuffix("[lumenTests] broken") == true)
        for writer in 0..<8 {
            let numbers = written.filter { $0.contains(" writer=\(writer) ") }.compactMap { line in
                line.split(separator: " ").first { $0.hasPrefix("n=") }.flatMap { Int($0.dropFirst(2)) }
            }
            #expect(numbers == Array(0..<2_000), "writer \(writer)'s lines in order")
        }
    }

    @Test("A line logged and left reaches the file within moments, without a flush")
    func background() async throws {
        let path = temporaryDirectory() + ".log"
        defer { try? FileManager.default.removeItem(atPath: path) }
        let sink = try LogSink.file(path)
        logger(sink).info("quiet")
        var written: [String] = []
        for _ in 0..<500 where written.isEmpty {
            try await Task.sleep(for: .milliseconds(10))
            written = try lines(path)
        }
        #expect(written.count == 1 && written[0].hasSuffix("] quiet"))
    }

    @Test("A log file that cannot be opened stops the start with its path")
    func unopenable() {
        #expect(throws: ConfigurationError.self) { try LogSink.file("/nonexistent-directory/lumen.log") }
    }
}
