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
