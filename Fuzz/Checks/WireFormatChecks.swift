import Foundation
import NIOCore
import WireFormats

/// What must hold for any input to the inference path's parsers: no crash, and what Lumen
/// makes of a body is stable. The fuzzers (scripts/fuzz.sh) call these with libFuzzer's inputs;
/// `WireFormatsTests` replays the committed corpus (Fuzz/Corpus) through them, so a crash
/// once found stays a regression test.
public enum WireFormatChecks {
    /// JSON: parsing never crashes; what parses writes back to text that parses to the same
    /// value, under both number policies; measuring it for a hold's bound never crashes; and an
    /// object spliced as a request goes upstream (`JSONSplice`: `model` replaced,
    /// `stream_options` added or replaced) parses to the object with exactly those changes.
    public static func json(_ input: UnsafeRawBufferPointer) {
        for policy in [JSONValue.NumberPolicy.refuseHugeNumbers, .clampingHugeNumbers] {
            guard let value = try? JSONValue.parse(input, numbers: policy) else { continue }
            let written = value.bytes
            let again: JSONValue
            do {
                again = try JSONValue.parse(written.readableBytesView, numbers: policy)
            } catch {
                fatalError("written JSON does not parse (\(error)): \(String(buffer: written))")
            }
            precondition(again == value, "JSON changed on the way back: \(String(buffer: written))")
            // Measuring a value for a hold's bound never crashes and never counts below zero (its
            // numbers' bounds follow their spelling: `1.000` may count more than the `1` written).
            let measure = value.measure
            precondition(measure.textBytes > 0 && measure.attachments >= 0, "a measure below zero: \(measure)")
        }
        guard case .object(var object)? = try? JSONValue.parse(input, numbers: .clampingHugeNumbers) else { return }
        var original = ByteBuffer()
        original.writeBytes(input)
        let options = JSONValue.object(["include_usage": .bool(true)])
        let spliced = JSONSplice.apply(
            original, replace: ["model": JSONValue.string("upstream-model").bytes, "stream_options": options.bytes],
            insert: [("stream_options", options.bytes)])
        guard case .object(let after)? = try? JSONValue.parse(spliced.readableBytesView, numbers: .clampingHugeNumbers) else {
            fatalError("a spliced object does not parse: \(String(buffer: spliced))")
        }
        if object["model"] != nil { object["model"] = .string("upstream-model") }
        object["stream_options"] = options
        precondition(after == object, "splicing changed more than it should: \(String(buffer: spliced))")
    }

    /// SSE: the events of a stream do not depend on how it is cut into chunks (one chunk, or
    /// pieces of a size taken from the input's first byte).
    public static func sse(_ input: UnsafeRawBufferPointer) {
        let bytes = Array(input)
        let whole = events(of: [bytes[...]])
        let size = 1 + Int(bytes.first ?? 0) % 13
        let pieces = stride(from: 0, to: bytes.count, by: size).map { bytes[$0..<min($0 + size, bytes.count)] }
        let chunked = events(of: pieces)
        precondition(whole == chunked, "SSE events depend on chunking: \(whole) vs \(chunked)")
        // What is relayed is what came, in order (only blank lines between events are dropped).
        precondition(whole.flatMap(\.raw).count <= bytes.count, "SSE made up bytes")
    }

    struct Event: Equatable, CustomStringConvertible {
        var raw: [UInt8]
        var data: String?
        var description: String { "\(raw.count) bytes, data \(data ?? "nil")" }
    }

    static func events(of chunks: [ArraySlice<UInt8>]) -> [Event] {
        var parser = SSEParser()
        var events: [Event] = []
        for chunk in chunks {
            events += parser.feed(ByteBuffer(bytes: chunk)).map { Event(raw: Array($0.raw.readableBytesView), data: $0.data) }
        }
        if let last = parser.finish() { events.append(Event(raw: Array(last.raw.readableBytesView), data: last.data)) }
        return events
    }

    /// AWS event stream: the messages, and whether the stream fails, do not depend on how the
    /// bytes are cut into chunks; whatever is malformed (a length, a header, a CRC, a message
    /// cut off) is an error after the messages before it, never a crash, and
    /// re-encoding a message decoded gives its bytes again (string headers only).
    public static func eventStream(_ input: UnsafeRawBufferPointer) {
        let bytes = Array(input)
        let whole = messages(of: [bytes[...]])
        let size = 1 + Int(bytes.first ?? 0) % 13
        let pieces = stride(from: 0, to: bytes.count, by: size).map { bytes[$0..<min($0 + size, bytes.count)] }
        let chunked = messages(of: pieces)
        precondition(whole.messages == chunked.messages, "event stream messages depend on chunking")
        precondition(whole.failed == chunked.failed, "an event stream fails or not depending on chunking")
        for message in whole.messages {
            var again = EventStreamDecoder()
            let encoded = EventStreamEncoder.message(headers: message.headers.sorted { $0.key < $1.key }, payload: message.payload)
            precondition((try? again.feed(encoded)) == [message], "an event stream message does not survive re-encoding")
        }
    }

    static func messages(of chunks: [ArraySlice<UInt8>]) -> (messages: [EventStreamMessage], failed: Bool) {
        var decoder = EventStreamDecoder()
        var messages: [EventStreamMessage] = []
        do {
            for chunk in chunks { messages += try decoder.feed(ByteBuffer(bytes: chunk)) }
            try decoder.finish()
        } catch {
            return (messages, true)
        }
        return (messages, false)
    }

    /// Multipart: the first line of the input is the Content-Type, the rest the body; reading
    /// the `model` field or counting the parts never crashes, and a field found is text the
    /// body contains.
    public static func multipart(_ input: UnsafeRawBufferPointer) {
        let bytes = Array(input)
        let newline = bytes.firstIndex(of: UInt8(ascii: "\n")) ?? bytes.count
        let contentType = String(decoding: bytes[..<newline], as: UTF8.self)
        let body = ByteBuffer(bytes: bytes[min(newline + 1, bytes.count)...])
        _ = MultipartForm.boundary(of: contentType)
        // Every part is counted at most once: no more delimiters than the body has bytes.
        precondition(MultipartForm.partCount(in: body, contentType: contentType) <= body.readableBytes, "parts out of thin air")
        if let model = MultipartForm.field("model", in: body, contentType: contentType), !model.isEmpty {
            precondition(String(buffer: body).contains(model), "a field that is not in the body: \(model)")
        }
    }
}

extension WireFormatChecks {
    /// Runs `check` on every input of `paths` (a fuzz target built without libFuzzer replays
    /// the files it is given, to reproduce a crash).
    public static func replay(_ paths: some Sequence<String>, _ check: (UnsafeRawBufferPointer) -> Void) throws {
        for input in try inputs(paths) { input.withUnsafeBytes(check) }
    }

    /// The contents of `paths`: files as they are, folders as their files (sorted by name).
    public static func inputs(_ paths: some Sequence<String>) throws -> [Data] {
        var inputs: [Data] = []
        let files = FileManager.default
        for path in paths {
            var isFolder: ObjCBool = false
            guard files.fileExists(atPath: path, isDirectory: &isFolder) else { throw CocoaError(.fileNoSuchFile) }
            let members = isFolder.boolValue ? try files.contentsOfDirectory(atPath: path).sorted().map { "\(path)/\($0)" } : [path]
            for member in members where !member.hasSuffix("/README.md") {
                inputs.append(try Data(contentsOf: URL(fileURLWithPath: member)))
            }
        }
        return inputs
    }
}

#if FUZZING
/// libFuzzer's driver, for a binary whose `main` is its own.
@_silgen_name("LLVMFuzzerRunDriver")
private func LLVMFuzzerRunDriver(
    _ argc: UnsafeMutablePointer<CInt>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
    _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt
) -> CInt

extension WireFormatChecks {
    /// Runs libFuzzer with the command line, feeding `callback`.
    public static func runFuzzer(
        _ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?,
        _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt
    ) -> CInt {
        var count = argc
        var arguments = argv
        return LLVMFuzzerRunDriver(&count, &arguments, callback)
    }
}
#endif
