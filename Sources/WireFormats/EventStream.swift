import NIOCore

/// One message of AWS's binary event stream (`application/vnd.amazon.eventstream`, Bedrock's
/// streaming answers): its string headers (`:event-type`, `:message-type`, `:exception-type`,
/// `:content-type`) and its payload.
public struct EventStreamMessage: Sendable, Equatable {
    /// The headers whose value is a string (type 7); the other types are read and skipped.
    public var headers: [String: String]
    public var payload: ByteBuffer

    public init(headers: [String: String], payload: ByteBuffer) {
        self.headers = headers
        self.payload = payload
    }
}

/// What is wrong with an event stream's bytes.
public struct EventStreamError: Error, Equatable, CustomStringConvertible, Sendable {
    public let description: String
    init(_ description: String) { self.description = description }
}

/// Splits an AWS event stream into messages, whatever the chunk boundaries are: each message
/// is a prelude (total length, headers length, the prelude's CRC-32), headers, a payload and
/// the message's CRC-32, both CRCs checked. A message longer than `maxLength` (16 MiB, AWS's
/// own bound) or with a bad CRC or malformed headers ends the stream with an error — after the
/// messages before it, however the bytes were cut.
public struct EventStreamDecoder: Sendable {
    public static let maxLength = 16 * 1024 * 1024
    private var pending = ByteBuffer()
    private var failure: EventStreamError?

    public init() {}

    /// The messages completed by `chunk`. The error of a damaged message is thrown once the
    /// messages before it were returned: by this call when there were none, else by the next
    /// (or by `finish`).
    public mutating func feed(_ chunk: ByteBuffer) throws(EventStreamError) -> [EventStreamMessage] {
        if let failure { throw failure }
        var chunk = chunk
        pending.writeBuffer(&chunk)
        var messages: [EventStreamMessage] = []
        do {
            while let message = try next() { messages.append(message) }
        } catch {
            failure = error
            if messages.isEmpty { throw error }
        }
        if pending.readerIndex > 4096 { pending.discardReadBytes() }
        return messages
    }

    /// The stream has ended: an error if a message was damaged or cut off.
    public func finish() throws(EventStreamError) {
        if let failure { throw failure }
        if hasPartialMessage { throw EventStreamError("the event stream ended inside a message") }
    }

    /// Bytes left that make no whole message yet.
    public var hasPartialMessage: Bool { pending.readableBytes > 0 }

    private mutating func next() throws(EventStreamError) -> EventStreamMessage? {
        guard pending.readableBytes >= 12,
            let total = pending.getInteger(at: pending.readerIndex, as: UInt32.self),
            let headersLength = pending.getInteger(at: pending.readerIndex + 4, as: UInt32.self),
            let preludeCRC = pending.getInteger(at: pending.readerIndex + 8, as: UInt32.self)
        else { return nil }
        let start = pending.readerIndex
        guard CRC32.checksum(pending.readableBytesView.prefix(8)) == preludeCRC else {
            throw EventStreamError("an event stream message's prelude fails its CRC")
        }
        guard total >= 16, total <= Self.maxLength, Int(headersLength) <= Int(total) - 16 else {
            throw EventStreamError("an event stream message claims \(total) bytes with \(headersLength) of headers")
        }
        guard pending.readableBytes >= Int(total) else { return nil }
        let body = pending.readableBytesView.prefix(Int(total) - 4)
        guard let messageCRC = pending.getInteger(at: start + Int(total) - 4, as: UInt32.self), CRC32.checksum(body) == messageCRC else {
            throw EventStreamError("an event stream message fails its CRC")
        }
        var headerBytes = pending.getSlice(at: start + 12, length: Int(headersLength)) ?? ByteBuffer()
        let payloadLength = Int(total) - 16 - Int(headersLength)
        let payload = pending.getSlice(at: start + 12 + Int(headersLength), length: payloadLength) ?? ByteBuffer()
        pending.moveReaderIndex(forwardBy: Int(total))
        return EventStreamMessage(headers: try Self.headers(&headerBytes), payload: payload)
    }

    private static func headers(_ bytes: inout ByteBuffer) throws(EventStreamError) -> [String: String] {
        var headers: [String: String] = [:]
        let malformed = EventStreamError("an event stream message's headers are malformed")
        while bytes.readableBytes > 0 {
            guard let nameLength = bytes.readInteger(as: UInt8.self), nameLength > 0,
                let name = bytes.readString(length: Int(nameLength)), let type = bytes.readInteger(as: UInt8.self)
            else { throw malformed }
            let fixed: [UInt8: Int] = [0: 0, 1: 0, 2: 1, 3: 2, 4: 4, 5: 8, 8: 8, 9: 16]
            if let size = fixed[type] {
                guard bytes.readableBytes >= size else { throw malformed }
                bytes.moveReaderIndex(forwardBy: size)
            } else if type == 6 || type == 7 {
                guard let length = bytes.readInteger(as: UInt16.self), let value = bytes.readSlice(length: Int(length)) else { throw malformed }
                if type == 7 { headers[name] = String(buffer: value) }
            } else {
                throw malformed
            }
        }
        return headers
    }
}

/// Writes AWS event stream messages (string headers only): what a mock Bedrock and the tests send.
public enum EventStreamEncoder {
    public static func message(headers: [(String, String)], payload: ByteBuffer) -> ByteBuffer {
        var headerBytes = ByteBuffer()
        for (name, value) in headers {
            headerBytes.writeInteger(UInt8(name.utf8.count))
            headerBytes.writeString(name)
            headerBytes.writeInteger(UInt8(7))
            headerBytes.writeInteger(UInt16(value.utf8.count))
            headerBytes.writeString(value)
        }
        var out = ByteBuffer()
        out.writeInteger(UInt32(16 + headerBytes.readableBytes + payload.readableBytes))
        out.writeInteger(UInt32(headerBytes.readableBytes))
        out.writeInteger(CRC32.checksum(out.readableBytesView))
        out.writeImmutableBuffer(headerBytes)
        out.writeImmutableBuffer(payload)
        out.writeInteger(CRC32.checksum(out.readableBytesView))
        return out
    }
}

/// CRC-32 (IEEE 802.3, the polynomial zlib and AWS's event stream use).
public enum CRC32 {
    private static let table: [UInt32] = (0..<256).map { index in
        var crc = UInt32(index)
        for _ in 0..<8 { crc = crc & 1 == 1 ? 0xEDB8_8320 ^ (crc >> 1) : crc >> 1 }
        return crc
    }

    public static func checksum(_ bytes: some Sequence<UInt8>) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        for byte in bytes { crc = table[Int((crc ^ UInt32(byte)) & 0xFF)] ^ (crc >> 8) }
        return crc ^ 0xFFFF_FFFF
    }
}
