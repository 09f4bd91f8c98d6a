import NIOCore
import Testing
import WireFormats

@Suite("JSONSplice: top-level members changed on the bytes, the rest as it came")
struct JSONSpliceTests {
    func splice(_ text: String, replace: [String: String], insert: [(String, String)] = []) -> String {
        String(
            buffer: JSONSplice.apply(
                ByteBuffer(string: text), replace: replace.mapValues { ByteBuffer(string: $0) },
                insert: insert.map { ($0.0, ByteBuffer(string: $0.1)) }))
    }

    @Test("Only the top-level member is replaced; nested ones, strings that mention it and spacing stay")
    func topLevelOnly() {
        let body = #"{ "messages": [{"role": "user", "content": "\"model\": \"x\""}], "tools": [{"function": {"parameters": {"model": "keep"}}}], "model" : "my-gpt", "n": 1.50 }"#
        #expect(
            splice(body, replace: ["model": #""gpt-4o-2024""#])
                == #"{ "messages": [{"role": "user", "content": "\"model\": \"x\""}], "tools": [{"function": {"parameters": {"model": "keep"}}}], "model" : "gpt-4o-2024", "n": 1.50 }"#)
    }

    @Test("A key written with escapes is the same key; a member absent is inserted first, present replaced")
    func escapesAndInsertion() {
        #expect(splice(#"{"mod\u0065l":"a"}"#, replace: ["model": #""b""#]) == #"{"mod\u0065l":"b"}"#)
        let usage = #"{"include_usage":true}"#
        #expect(
            splice(#"{"model":"a","stream":true}"#, replace: ["stream_options": usage], insert: [("stream_options", usage)])
                == #"{"stream_options":{"include_usage":true},"model":"a","stream":true}"#)
        #expect(
            splice(#"{"stream_options":{"include_usage":false},"model":"a"}"#, replace: ["stream_options": usage], insert: [("stream_options", usage)])
                == #"{"stream_options":{"include_usage":true},"model":"a"}"#)
        #expect(splice("{}", replace: [:], insert: [("a", "1")]) == #"{"a":1}"#)
        #expect(splice(" { } ", replace: [:], insert: [("a", "1")]) == #" {"a":1 } "#)
    }

    @Test("Members are found with their values' ranges, whatever the values")
    func members() {
        let text = #"{"a": [1, {"b": "}"}], "c": -1.5e3, "d": null, "e": "\\\""}"#
        let members = ByteBuffer(string: text).withUnsafeReadableBytes { JSONSplice.members(of: $0) }
        let values = members.map { String(text.utf8.dropFirst($0.value.lowerBound).prefix($0.value.count))! }
        #expect(members.map(\.key) == ["a", "c", "d", "e"])
        #expect(values == [#"[1, {"b": "}"}]"#, "-1.5e3", "null", #""\\\"""#])
    }
}
