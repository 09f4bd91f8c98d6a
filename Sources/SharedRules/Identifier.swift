#if canImport(Glibc)
import Glibc
#endif

/// Random identifiers and secrets.
///
/// Uses `SystemRandomNumberGenerator`, which reads the operating system's cryptographically
/// secure generator (getrandom on Linux), so the same function serves ids and secrets.
public enum Identifier {
    static let alphabet = Array("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ".utf8)
    static let lowercase = Array("0123456789abcdefghijklmnopqrstuvwxyz".utf8)

    /// A new identifier such as `key_3kq9x0c2m1z8b7aa`: `prefix`, an underscore and 16
    /// lower-case alphanumerics (about 82 bits).
    public static func make(_ prefix: String) -> String {
        prefix + "_" + random(count: 16, from: lowercase)
    }

    /// A new identifier that sorts by the time it was made, such as
    /// `req_0mifx3k2a7q9x0c2m1z8b`: `prefix`, an underscore, the milliseconds since 1970 in 9
    /// lower-case base-36 digits (fixed width, so the text sorts as the time does, until the
    /// year 5188) and 12 random lower-case alphanumerics (about 62 bits). The ids a database
    /// indexes in the order they come (a request's usage line, its hold) then land at the end
    /// of the index — the same few pages for a whole batch — instead of one random page each.
    public static func ordered(_ prefix: String, now: Int64 = WallClock.system.nowMillis) -> String {
        var time = [UInt8](repeating: UInt8(ascii: "0"), count: 9)
        var remaining = max(0, now)
        for index in time.indices.reversed() {
            time[index] = lowercase[Int(remaining % 36)]
            remaining /= 36
        }
        return prefix + "_" + String(decoding: time, as: UTF8.self) + random(count: 12, from: lowercase)
    }

    /// `count` characters drawn uniformly from the 62 ASCII letters and digits.
    public static func secret(count: Int) -> String {
        random(count: count, from: alphabet)
    }

    /// Each random byte below the largest multiple of the alphabet's size picks one
    /// character (the rest are skipped, so every character is equally likely). The bytes come
    /// from the system's generator in one read of twice what is needed (more only in the rare
    /// case that too many are skipped): one system call an id, not one per eight bytes.
    static func random(count: Int, from alphabet: [UInt8]) -> String {
        precondition(!alphabet.isEmpty && alphabet.count <= 256)
        let usable = 256 / alphabet.count * alphabet.count
        return String(unsafeUninitializedCapacity: count) { buffer in
            var filled = 0
            var bytes = [UInt8](repeating: 0, count: 2 * count)
            while filled < count {
                fillRandom(&bytes)
                for byte in bytes where filled < count && Int(byte) < usable {
                    buffer[filled] = alphabet[Int(byte) % alphabet.count]
                    filled += 1
                }
            }
            return count
        }
    }

    /// Fills `bytes` from the operating system's cryptographically secure generator: on Linux
    /// glibc's `arc4random_buf`, one `getrandom` call for the whole buffer.
    static func fillRandom(_ bytes: inout [UInt8]) {
        #if canImport(Glibc)
        bytes.withUnsafeMutableBytes { arc4random_buf($0.baseAddress!, $0.count) }
        #else
        var generator = SystemRandomNumberGenerator()
        for index in bytes.indices { bytes[index] = generator.next() }
        #endif
    }
}
