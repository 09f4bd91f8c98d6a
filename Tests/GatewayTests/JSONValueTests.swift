import Foundation
import NIOCore
import Testing
import WireFormats

@testable import Gateway

@Suite("JSON text to JSONValue and back")
struct JSONValueTests {
    static func parse(_ text: String) throws -> JSONValue { try JSONValue.parse(Array(text.utf8)) }

    @Test("Every kind of value parses, numbers exactly, strings with every escape")
    func parsesValues() throws {
        let value = try Self.parse(#"""
             {"a": [1, -2, 0.7, 1.5e3, -0, 12345678901234567890123],
              "s": "tab\tquote\" slash\/ back\\ nl\n \u00e9 \ud83d\ude00 raw é😀",
              "t": true, "f": false, "n": null, "o": {}, "e": []}
            """#)
        #expect(value["a"] == .array([
            .number(1), .number(-2), .number(Decimal(string: "0.7")!), .number(1500), .number(0),
            .number(Decimal(string: "12345678901234567890123")!),
        ]))
        #expect(value["s"] == .string("tab\tquote\" slash/ back\\ nl\n é 😀 raw é😀"))
        #expect(value["t"] == .bool(true) && value["f"] == .bool(false) && value["n"] == .null)
        #expect(value["o"] == .object([:]) && value["e"] == .array([]))
        #expect(try Self.parse("  42  ") == .number(42))
    }

    @Test("A request's measure bounds what goes upstream: decoded text bytes, numbers as written, attachments counted")
    func measureBoundsTheText() throws {
        let text = #"{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"h\u00e9 q"},{"type":"image_url","image_url":{"url":"https://x.test/a.png"}},{"type":"input_image","file_id":"file_1"}]}],"n":1e100,"t":0.5,"tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object"}}}]}"#
        let value = try Self.parse(text)
        let measure = value.measure
        #expect(measure.attachments == 2)
        // At least the bytes of the compact text Lumen writes upstream (1e100 as 101 digits; no
        // string here needs an escape, which adds bytes but no tokens).
        #expect(measure.textBytes >= Int64(value.bytes.readableBytes))
        #expect(measure.textBytes >= 101)
        // Strings count their decoded bytes, not their escapes: "hé \"q\"" is 7 bytes, not 17.
        #expect(JSONValue.string("h\u{e9} \"q\"").measure.textBytes == 7 + 2)
    }

    @Test("What is not JSON is refused, with where", arguments: [
        "", "{", "[1,]", "{\"a\":1,}", "01", "1.", ".5", "-", "1e", "+1", "NaN", "tru", "nul",
        "\"unterminated", "\"bad \\x escape\"", "\"lone \\ud800 surrogate\"", "\"lone \\udc00\"",
        "\"control \u{01} char\"", "{\"a\" 1}", "{1: 2}", "[1 2]", "1 2", "{} x", "1e400",
    ])
    func refusesInvalid(_ text: String) {
        #expect(throws: JSONValue.SyntaxError.self) { try Self.parse(text) }
    }

    @Test("Invalid UTF-8 inside a string is refused")
    func invalidUTF8() {
        #expect(throws: JSONValue.SyntaxError.self) { try JSONValue.parse([0x22, 0xFF, 0xFE, 0x22]) }
    }

    @Test("Nesting deeper than the limit is refused, not a crash")
    func depth() throws {
        let deep = String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000)
        #expect(throws: JSONValue.SyntaxError.self) { try Self.parse(deep) }
        let fine = String(repeating: "[", count: 200) + String(repeating: "]", count: 200)
        _ = try Self.parse(fine)
    }

    @Test("Serialising and parsing again gives the same value; Foundation reads the text the same way")
    func roundTrip() throws {
        let value: JSONValue = .object([
            "model": .string("gpt \"quoted\" \\ back\n\u{01}\u{1F} é 😀"),
            "max_tokens": .number(16),
            "temperature": .number(Decimal(string: "0.7")!),
            "big": .number(Decimal(string: "-12345678901234567890.5")!),
            "stream": .bool(false),
            "stop": .null,
            "messages": .array([.object(["role": .string("user"), "content": .string("hi")])]),
        ])
        let buffer = value.bytes
        #expect(try JSONValue.parse(buffer) == value)
        let foundation = try JSONSerialization.jsonObject(with: Data(buffer.readableBytesView)) as? [String: Any]
        #expect(foundation?["model"] as? String == "gpt \"quoted\" \\ back\n\u{01}\u{1F} é 😀")
        #expect(foundation?["max_tokens"] as? Int == 16)
    }

    @Test("A number's Int64 is exact: whole numbers in range only, whatever their spelling", arguments: [
        ("0", Int64(0)), ("-0", 0), ("42", 42), ("-42", -42), ("1e3", 1000), ("12300", 12300), ("1.0", 1), ("2.50e1", 25),
        ("9007199254740993", 9_007_199_254_740_993), ("-9007199254740993", -9_007_199_254_740_993),
        ("9223372036854775807", Int64.max), ("-9223372036854775808", Int64.min),
        ("9223372036854775808", nil), ("1.5", nil), ("-0.001", nil), ("1e30", nil), ("123456789012345678901234567890", nil),
    ] as [(String, Int64?)])
    func exactIntegers(_ text: String, _ expected: Int64?) throws {
        let value = try JSONValue.parse(Array(text.utf8))
        #expect(value.int64Value == expected)
        #expect((try? JSONValue.wholeNumber(value, in: Int.min...Int.max, else: CancellationError())) == expected.map(Int.init))
    }

    @Test("A request body must be an object; an empty body is {}")
    func requestBody() throws {
        #expect(try JSONValue.object(from: Array("  ".utf8)) == [:])
        #expect(throws: APIError.self) { try JSONValue.object(from: Array("[1]".utf8)) }
        #expect(throws: APIError.self) { try JSONValue.object(from: Array("{\"a\":".utf8)) }
    }

    @Test("Only an event whose data names a usage object is parsed as a stream passes", arguments: [
        (#"{"choices":[],"usage":{"prompt_tokens":1,"completion_tokens":2}}"#, true),
        (#"{"type":"response.completed","response":{"usage" : {"input_tokens":5}}}"#, true),
        (#"{"choices":[{"delta":{"content":"hi"}}],"usage":null}"#, false),
        (#"{"choices":[{"delta":{"content":"the \"usage\": {x} of it"}}]}"#, false),
        (#"{"choices":[{"delta":{"content":"usage"}}]}"#, false),
    ])
    func mayReportUsage(_ data: String, _ expected: Bool) {
        #expect(MeteredPayload.mayReportUsage(data) == expected)
    }

    @Test("Metering reads usage and text from every response shape")
    func meteredPayload() throws {
        let chat = MeteredPayload.decode(Array(#"""
            {"choices":[{"message":{"content":"Hello"}}],"usage":{"prompt_tokens":10,"completion_tokens":3,"prompt_tokens_details":{"cached_tokens":4}}}
            """#.utf8))
        #expect(chat?.text == "Hello")
        #expect(chat?.reported == .init(input: 6, cachedInput: 4, output: 3))
        let chunk = MeteredPayload.decode(Array(#"{"choices":[],"usage":{"prompt_tokens":1,"completion_tokens":2}}"#.utf8))
        #expect(chunk?.hasNoChoices == true)
        let responses = MeteredPayload.decode(Array(#"""
            {"type":"response.completed","response":{"usage":{"input_tokens":5,"output_tokens":6,"input_tokens_details":{"cached_tokens":1}}}}
            """#.utf8))
        #expect(responses?.reported == .init(input: 4, cachedInput: 1, output: 6))
        let delta = MeteredPayload.decode(Array(#"{"type":"response.output_text.delta","delta":"Hi"}"#.utf8))
        #expect(delta?.text == "Hi" && delta?.reported == nil)
        #expect(MeteredPayload.decode(Array("not json".utf8)) == nil)
        #expect(MeteredPayload.decode(Array("[]".utf8)) == nil)
    }

    @Test("A whole answer's usage, read from its usage member alone, is what parsing all of it reads", arguments: [
        #"{"id":"c1","choices":[{"message":{"content":"a \"usage\": {\"prompt_tokens\":99} inside"}}],"usage":{"prompt_tokens":10,"completion_tokens":3,"prompt_tokens_details":{"cached_tokens":4}}}"#,
        #" { "usage" : { "input_tokens" : 5, "output_tokens" : 6, "input_tokens_details" : {"cached_tokens":1} } , "output" : [] } "#,
        #"{"type":"response.completed","response":{"id":"r","usage":{"input_tokens":7,"output_tokens":2}}}"#,
        #"{"choices":[{"message":{"content":"no usage"}}],"usage":null}"#,
        #"{"choices":[{"message":{"content":"no usage at all"}}]}"#,
        #"{"usage":{"prompt_tokens":1,"completion_tokens":1},"usage":{"prompt_tokens":2,"completion_tokens":3}}"#,
        #"{"usage":{"completion_tokens":3}}"#,
        #"[{"usage":{"prompt_tokens":1}}]"#,
        #"{"\u0075sage":{"prompt_tokens":8,"completion_tokens":1}}"#,
    ])
    func reportedUsage(_ answer: String) {
        let whole = MeteredPayload.decode(Array(answer.utf8))?.reported
        #expect(MeteredPayload.reportedUsage(in: ByteBuffer(string: answer)) == whole)
        #expect(answer.contains("no usage") || answer.hasPrefix("[") || answer.contains(#"{"completion_tokens":3}}"#) || whole != nil)
    }
}
