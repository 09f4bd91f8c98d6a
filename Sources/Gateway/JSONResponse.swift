import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

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
