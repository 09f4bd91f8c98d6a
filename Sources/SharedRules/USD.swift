import Foundation

/// Money at the edge of the API: JSON carries USD as decimal numbers, everything behind it
/// carries Int64 micro-USD. Conversions are exact (decimal arithmetic, never binary floats).
public enum USD {
    /// Micro-USD for a decimal amount, or nil when it has more than six decimal places.
    /// Amounts beyond what Int64 holds are clamped, so range rules stay with the services.
    public static func micros(_ amount: Decimal) -> Int64? {
        var scaled = amount * 1_000_000
        var rounded = Decimal()
        NSDecimalRound(&rounded, &scaled, 0, .plain)
        guard rounded == scaled else { return nil }
        if rounded > Decimal(Int64.max / 2) { return Int64.max }
        if rounded < Decimal(Int64.min / 2) { return Int64.min }
        return Int64(rounded.description)
    }

    /// The decimal amount of micro-USD (exact: a division by a power of ten).
    public static func amount(_ micros: Int64) -> Decimal {
        Decimal(micros) / 1_000_000
    }

    /// The decimal text of micro-USD as JSON carries it, the digits `amount(_:)` has
    /// (`12`, `0.5`, `-0.000001`): no trailing zeros, no exponent.
    public static func text(_ micros: Int64) -> String {
        let magnitude = micros.magnitude
        let whole = magnitude / 1_000_000
        var fraction = magnitude % 1_000_000
        var text = (micros < 0 ? "-" : "") + String(whole)
        guard fraction > 0 else { return text }
        var digits = 6
        while fraction % 10 == 0 {
            fraction /= 10
            digits -= 1
        }
        let written = String(fraction)
        text += "." + String(repeating: "0", count: digits - written.count) + written
        return text
    }

    /// Micro-USD for a decimal amount written as text (`12`, `-0.5`, `0.000001`), or nil when
    /// it is not a plain decimal number or has more than six decimal places. Read digit by
    /// digit, never through a binary float: `0.1` and `0.2` add up to exactly `0.3`.
    public static func micros(parsing text: String) -> Int64? {
        var bytes = Array(text.utf8)[...]
        let negative = bytes.first == UInt8(ascii: "-")
        if negative || bytes.first == UInt8(ascii: "+") { bytes = bytes.dropFirst() }
        let parts = bytes.split(separator: UInt8(ascii: "."), maxSplits: 1, omittingEmptySubsequences: false)
        guard parts.count <= 2, let whole = parts.first, !whole.isEmpty, whole.count <= 13,
            whole.allSatisfy({ (48...57).contains($0) })
        else { return nil }
        let fraction = parts.count == 2 ? parts[1] : []
        guard parts.count == 1 || (!fraction.isEmpty && fraction.count <= 6), fraction.allSatisfy({ (48...57).contains($0) }) else {
            return nil
        }
        var micros: Int64 = 0
        for digit in whole { micros = micros * 10 + Int64(digit - 48) }
        var places = 0
        for digit in fraction {
            micros = micros * 10 + Int64(digit - 48)
            places += 1
        }
        for _ in places..<6 { micros *= 10 }
        return negative ? -micros : micros
    }
}
