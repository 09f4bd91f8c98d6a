import Foundation
import FuzzChecks
import Testing

/// The fuzzers' committed corpus (seeds and every crash they ever found) through the same
/// checks the fuzzers run: a crash once found stays fixed.
@Suite("Wire formats: the fuzz corpus replayed")
struct CorpusTests {
    static let corpus = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../../Fuzz/Corpus").standardized.path

    @Test("JSON: every corpus input parses or is refused, and what parses writes back to the same value")
    func json() throws {
        let inputs = try WireFormatChecks.inputs(["\(Self.corpus)/json"])
        #expect(inputs.count >= 10)
        for input in inputs { input.withUnsafeBytes(WireFormatChecks.json) }
    }

    @Test("SSE: every corpus stream gives the same events however it is chunked")
    func sse() throws {
        let inputs = try WireFormatChecks.inputs(["\(Self.corpus)/sse"])
        #expect(inputs.count >= 5)
        for input in inputs { input.withUnsafeBytes(WireFormatChecks.sse) }
    }

    @Test("Multipart: every corpus body is read without a crash")
    func multipart() throws {
        let inputs = try WireFormatChecks.inputs(["\(Self.corpus)/multipart"])
        #expect(inputs.count >= 3)
        for input in inputs { input.withUnsafeBytes(WireFormatChecks.multipart) }
    }

    @Test("AWS event stream: every corpus stream gives the same messages however it is chunked, or fails the same way")
    func eventStream() throws {
        let inputs = try WireFormatChecks.inputs(["\(Self.corpus)/eventstream"])
        #expect(inputs.count >= 4)
        for input in inputs { input.withUnsafeBytes(WireFormatChecks.eventStream) }
    }
}
