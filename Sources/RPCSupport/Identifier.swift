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

    static func random(count: Int, from alphabet: [UInt8]) -> String {
        var generator = SystemRandomNumberGenerator()
        let bytes = (0..<count).map { _ in alphabet[Int.random(in: 0..<alphabet.count, using: &generator)] }
        return String(decoding: bytes, as: UTF8.self)
    }
}
