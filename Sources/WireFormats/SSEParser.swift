import NIOCore

/// One server-sent event: its raw bytes (to relay unchanged) and its `data` field.
public struct SSEEvent: Sendable {
    /// The event as received, including the blank line that ends it.
    public var raw: ByteBuffer
    /// The `data:` lines joined by newlines; nil for an event without data (a comment).
    public var data: String?

    public init(raw: ByteBuffer, data: String?) {
        self.raw = raw
        self.data = data
    }

    public var isDone: Bool { data == "[DONE]" }
}

/// Splits an SSE byte stream into events, whatever the chunk boundaries are (an event may
/// arrive in pieces, several may arrive in one chunk). Lines end in LF or CRLF.
public struct SSEParser: Sendable {
    private var pending = ByteBuffer()
    /// Bytes of `pending` (from its reader index) already scanned without finding an event's
    /// end, and where the unfinished line among them starts: each byte is looked at once,
    /// however small the chunks (one-byte chunks were quadratic in the event's size).
    private var scanned = 0
    private var lineStartOffset = 0

    public init() {}

    /// The events completed by `chunk`.
    public mutating func feed(_ chunk: ByteBuffer) -> [SSEEvent] {
        var chunk = chunk
        pending.writeBuffer(&chunk)
        var events: [SSEEvent] = []
        while let event = nextEvent() { events.append(event) }
        if pending.readerIndex > 4096 { pending.discardReadBytes() }
        return events
    }

    /// What is left when the stream ends without a final blank line.
    public mutating func finish() -> SSEEvent? {
        (scanned, lineStartOffset) = (0, 0)
        guard pending.readableBytes > 0 else { return nil }
        let raw = pending.readSlice(length: pending.readableBytes)!
        return SSEEvent(raw: raw, data: Self.data(of: raw))
    }

    private mutating func nextEvent() -> SSEEvent? {
        let view = pending.readableBytesView
        var lineStart = view.startIndex + lineStartOffset
        var index = view.startIndex + scanned
        while index < view.endIndex {
            if view[index] == UInt8(ascii: "\n") {
                var lineEnd = index
                if lineEnd > lineStart, view[lineEnd - 1] == UInt8(ascii: "\r") { lineEnd -= 1 }
                if lineEnd == lineStart {
                    // A blank line ends the event (blank lines before any field are skipped).
                    let length = index + 1 - view.startIndex
                    let raw = pending.readSlice(length: length)!
                    (scanned, lineStartOffset) = (0, 0)
                    if length <= 2 { return nextEvent() }
                    return SSEEvent(raw: raw, data: Self.data(of: raw))
                }
                lineStart = index + 1
            }
            index += 1
        }
        (scanned, lineStartOffset) = (index - view.startIndex, lineStart - view.startIndex)
        return nil
    }

    /// The event's `data:` lines (a line ends at LF, CRLF or CR), each without the field name
    /// and one leading space, joined by LF; nil when it has none. Read on the bytes: one
    /// String made at the end (one data line, as every upstream sends, is not copied twice).
    static func data(of raw: ByteBuffer) -> String? {
        raw.withUnsafeReadableBytes { bytes -> String? in
            let (lf, cr) = (UInt8(ascii: "\n"), UInt8(ascii: "\r"))
            var first: Range<Int>?
            var joined: [UInt8]?
            var lineStart = 0
            while lineStart < bytes.count {
                var end = lineStart
                while end < bytes.count, bytes[end] != lf, bytes[end] != cr { end += 1 }
                if end - lineStart >= 5, bytes[lineStart] == UInt8(ascii: "d"), bytes[lineStart + 1] == UInt8(ascii: "a"),
                    bytes[lineStart + 2] == UInt8(ascii: "t"), bytes[lineStart + 3] == UInt8(ascii: "a"),
                    bytes[lineStart + 4] == UInt8(ascii: ":")
                {
                    var valueStart = lineStart + 5
                    if valueStart < end, bytes[valueStart] == UInt8(ascii: " ") { valueStart += 1 }
                    if let earlier = first {
                        if joined == nil { joined = Array(UnsafeRawBufferPointer(rebasing: bytes[earlier])) }
                        joined!.append(lf)
                        joined!.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[valueStart..<end]))
                    } else {
                        first = valueStart..<end
                    }
                }
                if end < bytes.count, bytes[end] == cr, end + 1 < bytes.count, bytes[end + 1] == lf { end += 1 }
                lineStart = end + 1
            }
            if let joined { return String(decoding: joined, as: UTF8.self) }
            return first.map { String(decoding: UnsafeRawBufferPointer(rebasing: bytes[$0]), as: UTF8.self) }
        }
    }
}
