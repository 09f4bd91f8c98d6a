import Foundation

extension JSONValue {
    /// What a request's hold bounds its input by (README, "Budgets"): the bytes of its text and
    /// how many attachments it carries.
    public struct Measure: Sendable, Equatable {
        /// The length of the value's compact JSON text with every string counted by its UTF-8
        /// content (what a provider decodes and tokenizes; escapes only add bytes) and every
        /// number by the most Lumen may write of it upstream (`1e100` is sent as 101 digits).
        public var textBytes: Int64 = 0
        /// Objects whose `type` names an image, a file or a document part, in any API's
        /// spelling: their tokens are not their bytes (an image given by URL or file id has no
        /// bytes here at all).
        public var attachments: Int64 = 0

        public init(textBytes: Int64 = 0, attachments: Int64 = 0) {
            self.textBytes = textBytes
            self.attachments = attachments
        }
    }

    /// The `type`s of the parts counted as attachments: OpenAI's chat (`image_url`, `file`),
    /// responses (`input_image`, `input_file`) and assistants (`image_file`) parts, Anthropic's
    /// and Gemini's (`image`, `document`, `file_data`).
    static let attachmentTypes: Set<String> = [
        "image_url", "input_image", "image_file", "image", "file", "input_file", "document", "file_data",
    ]

    /// Measures the value in one walk of its tree.
    public var measure: Measure {
        var measure = Measure()
        Self.measure(self, into: &measure)
        return measure
    }

    private static func measure(_ value: JSONValue, into measure: inout Measure) {
        switch value {
        case .null: measure.textBytes += 4
        case .bool(let flag): measure.textBytes += flag ? 4 : 5
        // What Lumen writes of it has at most the significand's 39 digits, a sign and a point,
        // and a zero for each power of ten of the exponent (`1e100` is sent as 101 digits):
        // bounded without writing it.
        case .number(let number): measure.textBytes += 41 + Int64(abs(number.exponent))
        case .string(let string): measure.textBytes += Int64(string.utf8.count) + 2
        case .array(let elements):
            measure.textBytes += 2 + Int64(max(0, elements.count - 1))
            for element in elements { Self.measure(element, into: &measure) }
        case .object(let members):
            measure.textBytes += 2 + Int64(max(0, members.count - 1))
            for (key, member) in members {
                measure.textBytes += Int64(key.utf8.count) + 3
                Self.measure(member, into: &measure)
            }
            if case .string(let type)? = members["type"], attachmentTypes.contains(type) { measure.attachments += 1 }
        }
    }
}
