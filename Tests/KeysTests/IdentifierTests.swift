import Foundation
import SharedRules
import Testing

@Suite("Random ids and secrets")
struct IdentifierTests {
    @Test("Ids are the prefix and 16 lower-case alphanumerics, secrets the 62 letters and digits; none repeats, every character comes up")
    func alphabetLengthAndSpread() {
        let lowercase = Set("0123456789abcdefghijklmnopqrstuvwxyz")
        let alphabet = Set("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
        var ids = Set<String>()
        var seen = Set<Character>()
        for _ in 0..<2_000 {
            let id = Identifier.make("key")
            #expect(id.hasPrefix("key_") && id.count == 20)
            #expect(id.dropFirst(4).allSatisfy(lowercase.contains))
            ids.insert(id)
            let secret = Identifier.secret(count: 48)
            #expect(secret.count == 48 && secret.allSatisfy(alphabet.contains))
            seen.formUnion(secret)
        }
        #expect(ids.count == 2_000)
        #expect(seen == alphabet, "each of the 62 characters appears in 96,000 drawn")
    }
}
