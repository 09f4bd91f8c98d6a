import Foundation
import LumenAPI
import NIOCore
import SharedRules
import Testing

@testable import Gateway

@Suite("JSON written without a tree equals what the encoder writes")
struct JSONWriterTests {
    static func written(_ value: some JSONWritable) -> String {
        var buffer = ByteBuffer()
        value.writeJSON(to: &buffer)
        return String(buffer: buffer)
    }

    static func encoded(_ value: some Encodable) throws -> String {
        String(decoding: try JSONBody.encoder.encode(value), as: UTF8.self)
    }

    static let full = APIKeyObject(
        .with {
            $0.id = "key_1"
            $0.name = "Ops \"night\" / é 😀 back\\slash\ttab\nline\u{01}"
            $0.keyPrefix = "sk-lumen"
            $0.hint = "…a1b2"
            $0.status = .active
            $0.limitMicros = 1_500_000
            $0.models = ["gpt-4o", "meta/llama-3"]
            $0.expiresAt = .init(millis: 1_767_225_600_123)
            $0.createdAt = .init(millis: 1_764_547_200_000)
            $0.rpmLimit = 60
            $0.tpmLimit = 100_000
        },
        totals: .with {
            $0.keyID = "key_1"
            $0.costMicros = 123
            $0.lastUsedAt = .init(millis: 1_764_633_600_500)
        },
        secret: "sk-lumen-secret")
    static let bare = APIKeyObject(.with {
        $0.id = "key_2"
        $0.name = "x"
        $0.status = .revoked
        $0.createdAt = .init(millis: 0)
    })

    @Test("A key, with every field or none, and lists of keys, plain and paged")
    func keys() throws {
        #expect(Self.written(Self.full) == (try Self.encoded(Self.full)))
        #expect(Self.written(Self.bare) == (try Self.encoded(Self.bare)))
        let list = ListObject(data: [Self.full, Self.bare])
        #expect(Self.written(list) == (try Self.encoded(list)))
        let page = ListObject(data: [Self.bare], page: .with { $0.page = 2; $0.limit = 1; $0.total = 3; $0.hasMore_p = true })
        #expect(Self.written(page) == (try Self.encoded(page)))
        #expect(Self.written(ListObject<APIKeyObject>(data: [])) == #"{"data":[],"object":"list"}"#)
    }

    @Test("Micro-USD as text has the digits of the decimal amount", arguments: [
        Int64(0), 1, 10, 100_000, 500_000, 1_000_000, 1_500_000, 1_234_567, 120_000_000, -1, -2_500_000, Int64.max, Int64.min + 1,
    ])
    func usdText(_ micros: Int64) {
        #expect(USD.text(micros) == USD.amount(micros).description)
    }
}
