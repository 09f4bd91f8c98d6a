import SharedRules
import Synchronization

/// Per-key requests and tokens per minute, over a sliding minute of one-second buckets, in the
/// ledger's memory: the ledger sees the reserves of every gateway, so a key's limits hold in
/// total across gateway replicas (`Metering.reserve`). Keys without limits are not tracked; a
/// restarted ledger starts every minute afresh.
///
/// Tokens are counted at admission as the request's most (prompt plus the most output it
/// may produce) and corrected to the actual count once it is settled.
final class RateLimiter: Sendable {
    struct Limits: Sendable, Equatable {
        var requestsPerMinute: Int64
        var tokensPerMinute: Int64
        var isUnlimited: Bool { requestsPerMinute <= 0 && tokensPerMinute <= 0 }
    }

    enum Verdict: Sendable, Equatable {
        /// Admitted in the bucket of `second`; the minute with it counted.
        case admitted(second: Int64, window: RateWindow)
        /// Refused; a retry after this many seconds fits (60 when the request alone is too large).
        case limited(retryAfter: Int64, reason: String, window: RateWindow)
        /// The key has no limits.
        case unlimited
    }

    private struct Bucket {
        var second: Int64 = .min
        var requests: Int64 = 0
        var tokens: Int64 = 0
    }

    private struct Window {
        var buckets = [Bucket](repeating: Bucket(), count: RateLimiter.span)
    }

    static let span = 60
    private let windows = Mutex<[String: Window]>([:])

    /// Counts a request of `tokens` for `key` at `nowMillis` if it fits both limits.
    func acquire(key: String, limits: Limits, tokens: Int64, nowMillis: Int64) -> Verdict {
        guard !limits.isUnlimited else { return .unlimited }
        let now = nowMillis / 1000
        return windows.withLock { windows in
            var window = windows[key] ?? Window()
            defer { windows[key] = window }
            // Live buckets, oldest first.
            let live = window.buckets.filter { $0.second > now - Int64(Self.span) }.sorted { $0.second < $1.second }
            var requests = live.reduce(0) { $0 + $1.requests }
            var used = live.reduce(0) { $0 + $1.tokens }
            /// The minute as its answers report it: what is left of each limit with `requests` and
            /// `used` counted, and when the oldest second that counted some leaves the minute (`now`
            /// when only this request does).
            func report(admitted: Bool) -> RateWindow {
                func reset(_ limit: Int64, _ counted: (Bucket) -> Bool) -> Int64 {
                    guard limit > 0 else { return 0 }
                    let oldest = live.first(where: counted)?.second ?? (admitted ? now : nil)
                    return oldest.map { max(1, $0 + Int64(Self.span) - now) } ?? 0
                }
                return RateWindow(
                    limitRequests: max(0, limits.requestsPerMinute), remainingRequests: max(0, limits.requestsPerMinute - requests),
                    resetRequestsSeconds: reset(limits.requestsPerMinute) { $0.requests > 0 }, limitTokens: max(0, limits.tokensPerMinute),
                    remainingTokens: max(0, limits.tokensPerMinute - used), resetTokensSeconds: reset(limits.tokensPerMinute) { $0.tokens > 0 })
            }
            if limits.tokensPerMinute > 0, tokens > limits.tokensPerMinute {
                return .limited(
                    retryAfter: 60,
                    reason: "this request may use \(tokens) tokens, more than the key's \(limits.tokensPerMinute) tokens per minute; lower max_tokens",
                    window: report(admitted: false))
            }
            func fits() -> Bool {
                (limits.requestsPerMinute <= 0 || requests + 1 <= limits.requestsPerMinute)
                    && (limits.tokensPerMinute <= 0 || used + tokens <= limits.tokensPerMinute)
            }
            if fits() {
                let index = Int(((now % Int64(Self.span)) + Int64(Self.span)) % Int64(Self.span))
                if window.buckets[index].second != now { window.buckets[index] = Bucket(second: now) }
                window.buckets[index].requests += 1
                window.buckets[index].tokens += tokens
                requests += 1
                used += tokens
                return .admitted(second: now, window: report(admitted: true))
            }
            let refused = report(admitted: false)
            let reason = limits.requestsPerMinute > 0 && requests + 1 > limits.requestsPerMinute
                ? "this key may make \(limits.requestsPerMinute) requests per minute"
                : "this key may use \(limits.tokensPerMinute) tokens per minute"
            // The earliest moment enough old buckets have left the minute.
            for bucket in live {
                requests -= bucket.requests
                used -= bucket.tokens
                if fits() { return .limited(retryAfter: max(1, bucket.second + Int64(Self.span) - now), reason: reason, window: refused) }
            }
            return .limited(retryAfter: 60, reason: reason, window: refused)
        }
    }

    /// Corrects the tokens counted for a request admitted in `second` by `delta`, or takes the
    /// whole request back (`request: true`) when it was refused later.
    func adjust(key: String, second: Int64, tokens delta: Int64, request: Bool = false) {
        windows.withLock { windows in
            guard var window = windows[key] else { return }
            let index = Int(((second % Int64(Self.span)) + Int64(Self.span)) % Int64(Self.span))
            guard window.buckets[index].second == second else { return }
            window.buckets[index].tokens = max(0, window.buckets[index].tokens + delta)
            if request { window.buckets[index].requests = max(0, window.buckets[index].requests - 1) }
            windows[key] = window
        }
    }
}
