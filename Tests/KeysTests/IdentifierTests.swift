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

    @Test("Ordered ids sort as the times they were made, across digit carries and centuries; made in the same millisecond they still differ")
    func orderedIdsSortByTime() {
        let lowercase = Set("0123456789abcdefghijklmnopqrstuvwxyz")
        // 0, one carry of the last digit, a day, today, the year 2100 and the last millisecond
        // nine base-36 digits hold (36^9 - 1, in the year 5188).
        let times: [Int64] = [0, 35, 36, 1_295, 86_400_000, 1_796_601_600_000, 4_102_444_800_000, 101_559_956_668_415]
        let ids = times.map { Identifier.ordered("req", now: $0) }
        #expect(ids == ids.sorted(), "text order is time order")
        #expect(ids.allSatisfy { $0.hasPrefix("req_") && $0.count == 25 && $0.dropFirst(4).allSatisfy(lowercase.contains) })
        #expect(ids.first!.hasPrefix("req_000000000") && ids.last!.hasPrefix("req_zzzzzzzzz"))
        #expect(Identifier.ordered("req", now: 86_400_000).hasPrefix("req_0001ffuo0"), "a day is 1ffuo0 milliseconds in base 36")
        let sameMillisecond = Set((0..<1_000).map { _ in Identifier.ordered("req", now: 1_796_601_600_000) })
        #expect(sameMillisecond.count == 1_000, "twelve random characters keep ids of one millisecond apart")
        let now = Identifier.ordered("req")
        let later = WallClock.system.nowMillis + 1
        #expect(now < Identifier.ordered("req", now: later), "the clock's own time sorts before the next millisecond")
    }
}
