import SharedRules
import Testing

@testable import Ledger

@Suite("Per-key rate limits over a sliding minute")
struct RateLimiterTests {
    static func requests(_ remaining: Int64, reset: Int64) -> RateWindow {
        RateWindow(limitRequests: 3, remainingRequests: remaining, resetRequestsSeconds: reset)
    }

    static func tokens(_ remaining: Int64, reset: Int64) -> RateWindow {
        RateWindow(limitTokens: 1_000, remainingTokens: remaining, resetTokensSeconds: reset)
    }

    @Test("Requests per minute: the limit admits that many, then tells when the oldest leaves the minute; each answer says what is left")
    func requestsPerMinute() {
        let limiter = RateLimiter()
        let limits = RateLimiter.Limits(requestsPerMinute: 3, tokensPerMinute: 0)
        #expect(limiter.acquire(key: "k", limits: limits, tokens: 10, nowMillis: 1_000_000) == .admitted(second: 1_000, window: Self.requests(2, reset: 60)))
        #expect(limiter.acquire(key: "k", limits: limits, tokens: 10, nowMillis: 1_010_000) == .admitted(second: 1_010, window: Self.requests(1, reset: 50)))
        #expect(limiter.acquire(key: "k", limits: limits, tokens: 10, nowMillis: 1_020_500) == .admitted(second: 1_020, window: Self.requests(0, reset: 40)))
        // The request of second 1000 leaves the minute at 1060.
        #expect(
            limiter.acquire(key: "k", limits: limits, tokens: 10, nowMillis: 1_030_000)
                == .limited(retryAfter: 30, reason: "this key may make 3 requests per minute", window: Self.requests(0, reset: 30)))
        #expect(limiter.acquire(key: "other", limits: limits, tokens: 10, nowMillis: 1_030_000) == .admitted(second: 1_030, window: Self.requests(2, reset: 60)))
        #expect(limiter.acquire(key: "k", limits: limits, tokens: 10, nowMillis: 1_060_000) == .admitted(second: 1_060, window: Self.requests(0, reset: 10)))
    }

    @Test("Tokens per minute count the estimate, corrected to the actual use once settled")
    func tokensPerMinute() {
        let limiter = RateLimiter()
        let limits = RateLimiter.Limits(requestsPerMinute: 0, tokensPerMinute: 1_000)
        #expect(limiter.acquire(key: "k", limits: limits, tokens: 800, nowMillis: 0) == .admitted(second: 0, window: Self.tokens(200, reset: 60)))
        // 800 + 300 is over the 1,000 of the minute: refused until second 0's tokens leave it.
        #expect(
            limiter.acquire(key: "k", limits: limits, tokens: 300, nowMillis: 1_000)
                == .limited(retryAfter: 59, reason: "this key may use 1000 tokens per minute", window: Self.tokens(200, reset: 59)))
        limiter.adjust(key: "k", second: 0, tokens: 150 - 800)  // it used 150
        #expect(limiter.acquire(key: "k", limits: limits, tokens: 300, nowMillis: 2_000) == .admitted(second: 2, window: Self.tokens(550, reset: 58)))
        // A request larger than the whole limit can never fit.
        guard case .limited(60, let reason, let window) = limiter.acquire(key: "k", limits: limits, tokens: 1_001, nowMillis: 3_000) else {
            Issue.record("an oversized request was not refused")
            return
        }
        #expect(reason.contains("max_tokens") && window == Self.tokens(550, reset: 57))
        #expect(limiter.acquire(key: "k", limits: .init(requestsPerMinute: 0, tokensPerMinute: 0), tokens: 5, nowMillis: 0) == .unlimited)
    }

    @Test("The headers as OpenAI names them, for the limits a key has")
    func headers() {
        let both = RateWindow(
            limitRequests: 60, remainingRequests: 59, resetRequestsSeconds: 60, limitTokens: 1_000, remainingTokens: 900,
            resetTokensSeconds: 7)
        #expect(both.headers.map { "\($0.name): \($0.value)" } == [
            "x-ratelimit-limit-requests: 60", "x-ratelimit-remaining-requests: 59", "x-ratelimit-reset-requests: 1m0s",
            "x-ratelimit-limit-tokens: 1000", "x-ratelimit-remaining-tokens: 900", "x-ratelimit-reset-tokens: 7s",
        ])
        #expect(Self.requests(1, reset: 5).headers.count == 3)
        #expect(RateWindow(text: both.text) == both && RateWindow(text: "1,2") == nil)
    }
}
