/// Tokens in a text as Lumen counts them when an upstream reports none (and as the built-in
/// mock model counts its own): about four characters each, at least one for non-empty text.
public enum TokenEstimate {
    public static func count(_ text: String) -> Int {
        text.isEmpty ? 0 : max(1, (text.unicodeScalars.count + 3) / 4)
    }
}
