/// Lumen's built-in deterministic model (provider `mock`): it answers by echoing the last user
/// message, counts tokens the same way every time and streams word by word. No network, so
/// `lumen serve --demo` and the tests work anywhere.
import Crypto
import SharedRules

enum MockModel {
    /// A unit vector derived from the text's SHA-256: the same text always embeds the same.
    static func embedding(_ text: String, dimensions: Int) -> [Float] {
        var bytes: [UInt8] = []
        var block = 0
        while bytes.count < dimensions {
            bytes += SHA256.hash(data: Array("\(block):\(text)".utf8))
            block += 1
        }
        let raw = bytes.prefix(dimensions).map { Float($0) / 127.5 - 1 }
        let norm = raw.reduce(0) { $0 + $1 * $1 }.squareRoot()
        return norm > 0 ? raw.map { $0 / norm } : raw
    }

    /// The answer to a conversation, at most `maxTokens` tokens long, split into the pieces a
    /// stream sends (one word each, with its leading space).
    static func reply(to prompt: String, maxTokens: Int?) -> (pieces: [String], finishReason: String) {
        let words = "You said: \(prompt.isEmpty ? "nothing" : prompt)".split(separator: " ", omittingEmptySubsequences: true)
        var pieces: [String] = []
        var used = 0
        for (index, word) in words.enumerated() {
            let piece = index == 0 ? String(word) : " " + word
            let cost = TokenEstimate.count(piece)
            if let maxTokens, used + cost > maxTokens { return (pieces, "length") }
            pieces.append(piece)
            used += cost
        }
        return (pieces, "stop")
    }
}
