import Testing

@testable import Ledger

@Suite("Per-key rate limits over a sliding minute")
struct RateLimiterTests {
    @Test("Requests per minute: the limit admits that many, then tells when the oldest leaves the minute")
    func requestsPerMinute() {
        let limiter = RateLimiter()
        let limits = RateLimiter.Limits(requestsPerMinute: 3, tokensPerMinute: 0)
        #expect(limiter.acquire(key: "k", limits: limits, tokens: 10, nowMillis: 1_000_000) == .admitted(second: 1_000))
        #expect(limiter.acquire(key: "k", limits: limits, tokens: 10, nowMillis: 1_010_000) == .admitted(second: 1_010))
        #expect(limiter.acquire(key: "k", limits: limits, tokens: 10, nowMillis: 1_020_500) == .admitted(second: 1_020))
        guard case .limited(let retry, _) = limiter.acquire(key: "k", limits: limits, tokens: 10, nowMillis: 1_030_000) else {
            Issue.record("the fourth request in a minute was admitted")
            return
        }
        #expect(retry == 30)  // the request of second 1000 leaves the minute at 1060
        #expect(limiter.acquire(key: "other", limits: limits, tokens: 10, nowMillis: 1_030_000) == .admitted(second: 1_030))
        #expect(limiter.acquire(key: "k", limits: limits, tokens: 10, nowMillis: 1_060_000) == .admitted(second: 1_060))
    }

    @Test("Tokens per minute count the estimate, corrected to the actual use once settled")
    func tokensPerMinute() {
        let limiter = RateLimiter()
        let limits = RateLimiter.Limits(requestsPerMinute: 0, tokensPerMinute: 1_000)
        #expect(limiter.acquire(key: "k", limits: limits, tokens: 800, nowMillis: 0) == .admitted(second: 0))
        // 800 + 300 is over the 1,000 of the minute: refused until second 0's tokens leave it.
        #expect(limiter.acquire(key: "k", limits: limits, tokens: 300, nowMillis: 1_000) == .limited(retryAfter: 59, reason: "this key may use 1000 tokens per minute"))
        limiter.adjust(key: "k", second: 0, tokens: 150 - 800)  // it used 150
        #expect(limiter.acquire(key: "k", limits: limits, tokens: 300, nowMillis: 2_000) == .admitted(second: 2))
        // A request larger than the whole limit can never fit.
        guard case .limited(60, let reason) = limiter.acquire(key: "k", limits: limits, tokens: 1_001, nowMillis: 3_000) else {
            Issue.record("an oversized request was not refused")
            return
        }
        #expect(reason.contains("max_tokens"))
        #expect(limiter.acquire(key: "k", limits: .init(requestsPerMinute: 0, tokensPerMinute: 0), tokens: 5, nowMillis: 0) == .unlimited)
    }
}
