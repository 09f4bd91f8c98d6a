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
    /// character (the rest are skipped, so every character is equally likely); one call to
    /// the generator yields eight bytes, so an id costs two or three system calls, not one
    /// per character.
    static func random(count: Int, from alphabet: [UInt8]) -> String {
        precondition(!alphabet.isEmpty && alphabet.count <= 256)
        var generator = SystemRandomNumberGenerator()
        let usable = 256 / alphabet.count * alphabet.count
        return String(unsafeUninitializedCapacity: count) { buffer in
            var filled = 0
            while filled < count {
                var word: UInt64 = generator.next()
                for _ in 0..<8 where filled < count {
                    let byte = Int(word & 0xff)
                    word >>= 8
                    if byte < usable {
                        buffer[filled] = alphabet[byte % alphabet.count]
                        filled += 1
                    }
                }
            }
            return count
        }
    }
}
