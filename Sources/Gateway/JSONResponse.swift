import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import WireFormats

/// A JSON body with a status, encoded with the facade's one encoder configuration (or, for a
/// value that writes its own JSON text, `JSONWritable`, written directly: the same bytes).
public struct JSONResponse<Value: Encodable>: ResponseGenerator {
    public var value: Value
    public var status: HTTPResponse.Status

    public init(_ value: Value, status: HTTPResponse.Status = .ok) {
        self.value = value
        self.status = status
    }

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        if let writable = value as? any JSONWritable {
            var buffer = ByteBuffer()
            writable.writeJSON(to: &buffer)
            return Response(
                status: status, headers: [.contentType: "application/json; charset=utf-8"], body: .init(byteBuffer: buffer))
        }
        let data = try JSONBody.encoder.encode(value)
        return Response(
            status: status,
            headers: [.contentType: "application/json; charset=utf-8"],
            body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }
}

/// The facade's one JSON encoder configuration, built once (encoding with a shared encoder is
/// safe across threads).
enum JSONBody {
    static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }()
}

/// What writes its own JSON text, members in sorted order, byte for byte what the facade's
/// `JSONEncoder` (`JSONBody.encoder`) writes for it: long lists are written without
/// building a tree of them first.
protocol JSONWritable {
    func writeJSON(to buffer: inout ByteBuffer)
}

/// The members of one JSON object as they are written: `{`, then `"name":value` pairs with
/// commas between, then `}`.
struct JSONMembers {
    private var first = true

    init(opening buffer: inout ByteBuffer) {
        buffer.writeInteger(UInt8(ascii: "{"))
    }

    mutating func name(_ name: StaticString, in buffer: inout ByteBuffer) {
        let comma = !first
        first = false
        let count = name.utf8CodeUnitCount
        // One write for `,"name":` (a list of 20,000 keys writes 300,000 names).
        buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: count + 4) { out in
            var index = 0
            if comma {
                out[0] = UInt8(ascii: ",")
                index = 1
            }
            out[index] = UInt8(ascii: "\"")
            index += 1
            name.withUTF8Buffer { utf8 in
                UnsafeMutableRawBufferPointer(rebasing: out[index..<index + count]).copyMemory(from: UnsafeRawBufferPointer(utf8))
            }
            index += count
            out[index] = UInt8(ascii: "\"")
            out[index + 1] = UInt8(ascii: ":")
            return index + 2
        }
    }

    /// A string member (`nil`: null).
    mutating func string(_ name: StaticString, _ value: String?, in buffer: inout ByteBuffer) {
        self.name(name, in: &buffer)
        if let value { JSONValue.writeString(value, to: &buffer) } else { buffer.writeStaticString("null") }
    }

    /// A number member written as given (`nil`: null).
    mutating func number(_ name: StaticString, _ text: String?, in buffer: inout ByteBuffer) {
        self.name(name, in: &buffer)
        if let text { buffer.writeString(text) } else { buffer.writeStaticString("null") }
    }

    /// An array member, each element written by `write`.
    mutating func array<Element>(
        _ name: StaticString, _ elements: [Element], in buffer: inout ByteBuffer, _ write: (Element, inout ByteBuffer) -> Void
    ) {
        self.name(name, in: &buffer)
        buffer.writeInteger(UInt8(ascii: "["))
        for (index, element) in elements.enumerated() {
            if index > 0 { buffer.writeInteger(UInt8(ascii: ",")) }
            write(element, &buffer)
        }
        buffer.writeInteger(UInt8(ascii: "]"))
    }

    func close(_ buffer: inout ByteBuffer) {
        buffer.writeInteger(UInt8(ascii: "}"))
    }
}
