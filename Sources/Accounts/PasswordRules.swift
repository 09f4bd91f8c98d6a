import Foundation
import Logging
import RPCSupport
import SharedRules

/// What a password must be: 10 to 72 bytes' worth (bcrypt reads no further than 72) of at least
/// 10 characters, no control characters (a NUL would end it early in bcrypt), and not easy to
/// guess — not a word of the dictionary (Debian's cracklib list, with digits and symbols around
/// it or not), not a keyboard or alphabet run, not four characters or fewer used over and over.
enum PasswordRules {
    static let minimumCharacters = 10

    /// Where the word list is read from: Debian's `cracklib-runtime` (scripts/setup.sh installs
    /// it). Without it, a short list of the most common choices is all that is checked, and a
    /// warning says so once.
    static let dictionaryPath = "/usr/share/dict/cracklib-small"

    /// The dictionary's words, lower-cased, read once per process.
    static let dictionary: Set<String> = {
        guard let text = try? String(contentsOfFile: dictionaryPath, encoding: .utf8) else {
            Logger(label: "lumen.accounts").warning(
                "no password dictionary at \(dictionaryPath) (Debian's cracklib-runtime): only the most common passwords are refused")
            return Set(fallback)
        }
        var words = Set<String>(minimumCapacity: 60_000)
        for line in text.split(whereSeparator: \.isNewline) where line.count >= 3 { words.insert(line.lowercased()) }
        words.formUnion(fallback)
        return words
    }()

    /// Common choices that may not be dictionary words.
    static let fallback = [
        "password", "passw0rd", "iloveyou", "sunshine", "princess", "welcome", "football", "baseball", "dragon", "monkey",
        "letmein", "trustno1", "superman", "starwars", "whatever", "qwerty", "qwertyuiop", "asdfghjkl", "zxcvbnm",
        "admin", "administrator", "changeme", "secret", "lumen",
    ]

    /// Runs a password must not be part of (either way round).
    static let runs = [
        "01234567890123456789", "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyz", "qwertyuiopasdfghjklzxcvbnm",
        "1qaz2wsx3edc4rfv5tgb6yhn7ujm8ik9ol0p", "qazwsxedcrfvtgbyhnujmikolp", "1q2w3e4r5t6y7u8i9o0p",
    ]

    static func check(_ password: String, param: String = "password") throws -> String {
        guard !password.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) else {
            throw ServiceError.invalid(
                "invalid_password", "a password may not hold control characters (a NUL, a tab, a line break)", param: param)
        }
        guard password.count >= minimumCharacters, password.utf8.count <= 72 else {
            throw ServiceError.invalid(
                "invalid_password", "a password has at least \(minimumCharacters) characters and at most 72 bytes", param: param)
        }
        if let reason = weakness(of: password) {
            throw ServiceError.invalid("weak_password", "this password is too easy to guess: \(reason); choose a longer phrase", param: param)
        }
        return password
    }

    /// Why a password is easy to guess, or nil.
    static func weakness(of password: String) -> String? {
        let lower = password.lowercased()
        if Set(lower).count < 5 { return "it uses fewer than five different characters" }
        let compact = lower.filter { !$0.isWhitespace }
        if runs.contains(where: { $0.contains(compact) || String($0.reversed()).contains(compact) }) {
            return "it is a run of the keyboard or the alphabet"
        }
        // The word inside: digits, symbols and spaces around it taken away.
        let core = lower.trimmingCharacters(in: CharacterSet.letters.inverted)
        if dictionary.contains(lower) || dictionary.contains(compact) || dictionary.contains(core)
            || dictionary.contains(core.filter { !$0.isWhitespace })
        {
            return "it is a dictionary word" + (core == lower ? "" : " with digits or symbols around it")
        }
        return nil
    }
}
