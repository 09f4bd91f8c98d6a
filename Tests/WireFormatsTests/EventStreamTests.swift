import Foundation
import NIOCore
import Testing
import WireFormats

/// AWS's binary event stream (Bedrock's streaming answers), read from frames another
/// implementation wrote (Python's zlib CRC, in the committed corpus): messages whole however
/// the bytes are cut, both CRCs checked, every header type skipped correctly.
@Suite("Wire formats: AWS event stream")
struct EventStreamTests {
    static func corpus(_ name: String) throws -> ByteBuffer {
        let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../Fuzz/Corpus/eventstream/\(name)")
        return ByteBuffer(bytes: try Data(contentsOf: path.standardized))
    }

    @Test("A Converse stream: seven messages, their event types and payloads, one byte at a time or whole")
    func converseStream() throws {
        let bytes = try Self.corpus("converse-stream.bin")
        var whole = EventStreamDecoder()
        let messages = try whole.feed(bytes)
        #expect(messages.map { $0.headers[":event-type"] } == [
            "messageStart", "contentBlockDelta", "contentBlockStart", "contentBlockDelta", "contentBlockStop", "messageStop", "metadata",
        ])
        #expect(messages.allSatisfy { $0.headers[":message-type"] == "event" && $0.headers[":content-type"] == "application/json" })
        #expect(String(buffer: messages[0].payload) == #"{"role": "assistant"}"#)
        #expect(!whole.hasPartialMessage)
        var byByte = EventStreamDecoder()
        var again: [EventStreamMessage] = []
        for byte in bytes.readableBytesView { again += try byByte.feed(ByteBuffer(bytes: [byte])) }
        #expect(again == messages)
    }

    @Test("Headers of every type are read past; only strings are kept")
    func headerTypes() throws {
        var decoder = EventStreamDecoder()
        let message = try #require(try decoder.feed(try Self.corpus("header-types.bin")).first)
        #expect(message.headers == [":event-type": "messageStart"])
        #expect(String(buffer: message.payload) == "{}")
    }

    @Test("A bad prelude CRC, a bad message CRC and a cut-off message are told apart")
    func damage() throws {
        var prelude = EventStreamDecoder()
        let badPrelude = try Self.corpus("bad-prelude.bin")
        let preludeError = try #require(throws: EventStreamError.self) { try prelude.feed(badPrelude) }
        #expect(preludeError.description == "an event stream message's prelude fails its CRC")
        var message = EventStreamDecoder()
        let badMessage = try Self.corpus("bad-crc.bin")
        let messageError = try #require(throws: EventStreamError.self) { try message.feed(badMessage) }
        #expect(messageError.description == "an event stream message fails its CRC")
        var truncated = EventStreamDecoder()
        #expect(try truncated.feed(try Self.corpus("truncated.bin")).count == 6)
        let cut = try #require(throws: EventStreamError.self) { try truncated.finish() }
        #expect(cut.description == "the event stream ended inside a message")
        // A good message, then a damaged one in the same chunk: the good one first, the error next.
        var stream = try #require(try Self.corpus("converse-stream.bin").getSlice(at: 0, length: 119))
        var damaged = try Self.corpus("bad-crc.bin")
        let good = stream.readableBytes
        stream.writeBuffer(&damaged)
        var mixed = EventStreamDecoder()
        let first = try mixed.feed(stream)
        #expect(first.count == 1 && good == 119 && first.first?.headers[":event-type"] == "messageStart")
        #expect(throws: EventStreamError.self) { try mixed.feed(ByteBuffer()) }
        #expect(throws: EventStreamError.self) { try mixed.finish() }
    }

    @Test("What the encoder writes, the decoder reads back; CRC-32 as zlib computes it")
    func roundTrip() throws {
        #expect(CRC32.checksum(Array("123456789".utf8)) == 0xCBF4_3926)
        let written = EventStreamEncoder.message(
            headers: [(":event-type", "metadata"), (":message-type", "event")], payload: ByteBuffer(string: #"{"usage":{}}"#))
        var decoder = EventStreamDecoder()
        #expect(try decoder.feed(written) == [
            EventStreamMessage(headers: [":event-type": "metadata", ":message-type": "event"], payload: ByteBuffer(string: #"{"usage":{}}"#))
        ])
    }
}
