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
}
