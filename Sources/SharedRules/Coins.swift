import Foundation

/// The dashboard's unit of money: the ledger's micro-USD shown as coins, `perUSD` coins to the
/// dollar (`coins_per_usd`, 100 by default). Conversions are exact decimal arithmetic; an
/// amount of coins that is not a whole number of micro-dollars is refused, never rounded.
public struct Coins: Sendable, Equatable {
    public let perUSD: Int64

    /// 1 to 1,000,000 coins to the dollar.
    public static let range: ClosedRange<Int64> = 1...1_000_000

    public init(perUSD: Int64 = 100) {
        precondition(Self.range.contains(perUSD), "coins_per_usd out of range")
        self.perUSD = perUSD
    }

    /// The coins of an amount of micro-USD: micros × perUSD millionths, built as such (a
    /// `Decimal` division costs some 6 µs, and a table of 1,000 keys makes 1,000 of them).
    public func amount(micros: Int64) -> Decimal {
        let (scaled, overflow) = micros.multipliedReportingOverflow(by: perUSD)
        guard !overflow, scaled != .min else { return Decimal(micros) * Decimal(perUSD) / 1_000_000 }
        return Decimal(sign: scaled < 0 ? .minus : .plus, exponent: -6, significand: Decimal(scaled.magnitude))
    }

    /// Micro-USD for an amount of coins (a decimal number, at most six decimal places), or
    /// nil when it is not one or is not a whole number of micro-dollars.
    public func micros(_ coins: Decimal) -> Int64? {
        var scaled = coins * 1_000_000 / Decimal(perUSD)
        var rounded = Decimal()
        NSDecimalRound(&rounded, &scaled, 0, .plain)
        guard rounded == scaled, rounded.magnitude < Decimal(Int64.max / 2) else { return nil }
        return Int64(rounded.description)
    }
}
