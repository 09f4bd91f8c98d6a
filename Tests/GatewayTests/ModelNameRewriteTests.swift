import NIOCore
import Testing

@testable import Gateway

@Suite("Answers carry the logical model name")
struct ModelNameRewriteTests {
    func rewrite(_ text: String, to name: String = "my-gpt") -> String {
        String(buffer: ModelNameRewrite.rewrite(ByteBuffer(string: text), to: name))
    }

    @Test("Every model member's value becomes the logical name; everything else is the upstream's bytes")
    func members() {
        #expect(
            rewrite(#"{"id":"c1","created":1733000000,"model":"fake-model","usage":{"total_tokens":1.0}}"#)
                == #"{"id":"c1","created":1733000000,"model":"my-gpt","usage":{"total_tokens":1.0}}"#)
        // Spacing as the upstream sent it, a responses event's nested model, SSE framing.
        #expect(
            rewrite("data: {\"type\":\"response.created\",\"response\":{ \"model\" :  \"gpt-4o-2024-08-06\" }}\n\n")
                == "data: {\"type\":\"response.created\",\"response\":{ \"model\" :  \"my-gpt\" }}\n\n")
        #expect(rewrite(#"[{"model":"a"},{"x":1,"model":"b\"q"}]"#) == #"[{"model":"my-gpt"},{"x":1,"model":"my-gpt"}]"#)
        // The name is written as JSON.
        #expect(rewrite(#"{"model":"x"}"#, to: "a\"b") == #"{"model":"a\"b"}"#)
    }

    @Test("JSON and event streams are rewritten, whatever the case of their content type; nothing else is")
    func contentTypes() {
        for type in ["application/json", "application/json; charset=utf-8", "Application/JSON", "application/vnd.api+json",
            "text/event-stream", "Text/Event-Stream;charset=UTF-8"]
        {
            #expect(ModelNameRewrite.applies(to: type), "\(type)")
        }
        for type in [nil, "", "text/plain", "application/jso", "text/event", "application/octet-stream"] {
            #expect(!ModelNameRewrite.applies(to: type), "\(type ?? "nil")")
        }
    }

    @Test("Text that mentions \"model\" and non-string values are left alone")
    func leftAlone() {
        let texts = [
            #"{"content":"the \"model\":\"x\" field"}"#,
            #"{"model":null,"models":"x","amodel":"y"}"#,
            #"{"model":42}"#,
            #"{"model":"unterminated"#,
            "",
            #"{"model":"my-gpt"}"#,
        ]
        for text in texts { #expect(rewrite(text) == text) }
    }
}
