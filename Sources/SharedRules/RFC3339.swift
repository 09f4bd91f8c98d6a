import Foundation

/// RFC 3339 timestamps as the management API reads and writes them (and UTC days as billing names them).
///
/// Why not Foundation's ISO 8601 parsing (`ISO8601DateFormatter`, `Date.ISO8601FormatStyle`),
/// measured with Swift 6.3's Foundation on Linux: it accepts `2026-02-30T00:00:00Z` (as March 2nd)
/// and `24:00:00`, so a typo would silently filter another day, and it refuses the lowercase
/// `t`/`z` and the space separator that RFC 3339 allows. The usage filter's contract (seed 003)
/// needs the exact rule, so it is written here, digit by digit.
public enum RFC3339 {
    /// Parses `2026-04-30T00:00:00Z`, `2026-04-30T02:00:00.5+02:00` and the like: a date, `T`
    /// (or `t` / space), a time with optional fraction, and `Z` or a numeric offset. Returns
    /// milliseconds since 1970, or nil for anything else (including impossible dates such as
    /// February 30th).
    public static func parseMillis(_ text: String) -> Int64? {
        let bytes = Array(text.utf8)
        func digits(_ start: Int, _ count: Int) -> Int? {
            guard start + count <= bytes.count else { return nil }
            var value = 0
            for byte in bytes[start..<start + count] {
                guard byte >= 48, byte <= 57 else { return nil }
                value = value * 10 + Int(byte - 48)
            }
            return value
        }
        guard bytes.count >= 20,
            let year = digits(0, 4), bytes[4] == UInt8(ascii: "-"),
            let month = digits(5, 2), bytes[7] == UInt8(ascii: "-"),
            let day = digits(8, 2),
            [UInt8(ascii: "T"), UInt8(ascii: "t"), UInt8(ascii: " ")].contains(bytes[10]),
            let hour = digits(11, 2), bytes[13] == UInt8(ascii: ":"),
            let minute = digits(14, 2), bytes[16] == UInt8(ascii: ":"),
            let second = digits(17, 2)
        else { return nil }
        var index = 19
        var fractionMillis = 0
        if index < bytes.count, bytes[index] == UInt8(ascii: ".") {
            index += 1
            var scale = 100
            let start = index
            while index < bytes.count, bytes[index] >= 48, bytes[index] <= 57 {
                fractionMillis += Int(bytes[index] - 48) * scale
                scale /= 10
                index += 1
            }
            guard index > start else { return nil }
        }
        guard index < bytes.count else { return nil }
        var offsetSeconds = 0
        switch bytes[index] {
        case UInt8(ascii: "Z"), UInt8(ascii: "z"):
            index += 1
        case UInt8(ascii: "+"), UInt8(ascii: "-"):
            let sign = bytes[index] == UInt8(ascii: "-") ? -1 : 1
            guard let offsetHours = digits(index + 1, 2), index + 3 < bytes.count,
                bytes[index + 3] == UInt8(ascii: ":"), let offsetMinutes = digits(index + 4, 2),
                offsetHours < 24, offsetMinutes < 60
            else { return nil }
            offsetSeconds = sign * (offsetHours * 3600 + offsetMinutes * 60)
            index += 6
        default:
            return nil
        }
        guard index == bytes.count,
            let days = daysSinceEpoch(year: year, month: month, day: day),
            hour < 24, minute < 60, second < 61
        else { return nil }
        let seconds = Int64(days) * 86_400 + Int64(hour * 3600 + minute * 60 + min(second, 59)) - Int64(offsetSeconds)
        return seconds * 1000 + Int64(fractionMillis)
    }

    /// `YYYY-MM-DD` → milliseconds at 00:00:00 UTC that day, or nil.
    public static func parseDateMillis(_ text: String) -> Int64? {
        let parts = text.split(separator: "-", omittingEmptySubsequences: false)
        guard text.utf8.count == 10, parts.count == 3, parts[0].count == 4, parts[1].count == 2, parts[2].count == 2,
            text.utf8.allSatisfy({ ($0 >= 48 && $0 <= 57) || $0 == UInt8(ascii: "-") }),
            let year = Int(parts[0]), let month = Int(parts[1]), let day = Int(parts[2]),
            let days = daysSinceEpoch(year: year, month: month, day: day)
        else { return nil }
        return Int64(days) * 86_400_000
    }

    /// Days from 1970-01-01 to a valid proleptic Gregorian date (Howard Hinnant's algorithm).
    public static func daysSinceEpoch(year: Int, month: Int, day: Int) -> Int? {
        guard (1...12).contains(month), day >= 1 else { return nil }
        let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
        let lengths = [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]
        guard day <= lengths[month - 1] else { return nil }
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yearOfEra = y - era * 400
        let dayOfYear = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        return era * 146_097 + dayOfEra - 719_468
    }

    /// `2026-04-30T00:00:00.000Z`: UTC, always with milliseconds.
    public static func format(millis: Int64) -> String {
        let seconds = millis >= 0 ? millis / 1000 : (millis - 999) / 1000
        let milliseconds = Int(millis - seconds * 1000)
        var days = Int(seconds >= 0 ? seconds / 86_400 : (seconds - 86_399) / 86_400)
        let secondOfDay = Int(seconds - Int64(days) * 86_400)
        // civil_from_days (Howard Hinnant)
        days += 719_468
        let era = (days >= 0 ? days : days - 146_096) / 146_097
        let dayOfEra = days - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let mp = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        let year = yearOfEra + era * 400 + (month <= 2 ? 1 : 0)
        func pad(_ value: Int, _ width: Int) -> String {
            let text = String(value)
            return String(repeating: "0", count: max(0, width - text.count)) + text
        }
        return "\(pad(year, 4))-\(pad(month, 2))-\(pad(day, 2))T\(pad(secondOfDay / 3600, 2)):"
            + "\(pad(secondOfDay / 60 % 60, 2)):\(pad(secondOfDay % 60, 2)).\(pad(milliseconds, 3))Z"
    }

    /// `2026-04-30`: the UTC day of a time.
    public static func formatDay(millis: Int64) -> String {
        String(format(millis: millis).prefix(10))
    }
}
