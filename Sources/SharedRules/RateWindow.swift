import LumenAPI

/// A key's sliding minute as its answers report it (OpenAI's `x-ratelimit-*` headers): for each
/// per-minute limit the key has, the limit, what is left of it, and the seconds until the oldest
/// request counted leaves the minute. A limit of 0 is none (its figures are not reported).
public struct RateWindow: Sendable, Equatable {
    public var limitRequests: Int64 = 0
    public var remainingRequests: Int64 = 0
    public var resetRequestsSeconds: Int64 = 0
    public var limitTokens: Int64 = 0
    public var remainingTokens: Int64 = 0
    public var resetTokensSeconds: Int64 = 0

    public init(
        limitRequests: Int64 = 0, remainingRequests: Int64 = 0, resetRequestsSeconds: Int64 = 0, limitTokens: Int64 = 0,
        remainingTokens: Int64 = 0, resetTokensSeconds: Int64 = 0
    ) {
        self.limitRequests = limitRequests
        self.remainingRequests = remainingRequests
        self.resetRequestsSeconds = resetRequestsSeconds
        self.limitTokens = limitTokens
        self.remainingTokens = remainingTokens
        self.resetTokensSeconds = resetTokensSeconds
    }

    public init(_ message: Lumen_Ledger_V1_RateLimitWindow) {
        self.init(
            limitRequests: message.limitRequests, remainingRequests: message.remainingRequests,
            resetRequestsSeconds: message.resetRequestsSeconds, limitTokens: message.limitTokens,
            remainingTokens: message.remainingTokens, resetTokensSeconds: message.resetTokensSeconds)
    }

    public var message: Lumen_Ledger_V1_RateLimitWindow {
        .with {
            $0.limitRequests = limitRequests
            $0.remainingRequests = remainingRequests
            $0.resetRequestsSeconds = resetRequestsSeconds
            $0.limitTokens = limitTokens
            $0.remainingTokens = remainingTokens
            $0.resetTokensSeconds = resetTokensSeconds
        }
    }

    /// The six figures, comma-separated: how an error's metadata carries them.
    public var text: String {
        [limitRequests, remainingRequests, resetRequestsSeconds, limitTokens, remainingTokens, resetTokensSeconds]
            .map(String.init).joined(separator: ",")
    }

    /// A window read from `text`, or nil for anything else.
    public init?(text: String) {
        let figures = text.split(separator: ",").compactMap { Int64($0) }
        guard figures.count == 6 else { return nil }
        self.init(
            limitRequests: figures[0], remainingRequests: figures[1], resetRequestsSeconds: figures[2], limitTokens: figures[3],
            remainingTokens: figures[4], resetTokensSeconds: figures[5])
    }

    /// The headers as OpenAI names them, for the limits the key has; a reset as OpenAI writes a
    /// duration (`17s`, `1m0s`).
    public var headers: [(name: String, value: String)] {
        func duration(_ seconds: Int64) -> String { seconds < 60 ? "\(seconds)s" : "\(seconds / 60)m\(seconds % 60)s" }
        var headers: [(String, String)] = []
        if limitRequests > 0 {
            headers += [
                ("x-ratelimit-limit-requests", "\(limitRequests)"), ("x-ratelimit-remaining-requests", "\(remainingRequests)"),
                ("x-ratelimit-reset-requests", duration(resetRequestsSeconds)),
            ]
        }
        if limitTokens > 0 {
            headers += [
                ("x-ratelimit-limit-tokens", "\(limitTokens)"), ("x-ratelimit-remaining-tokens", "\(remainingTokens)"),
                ("x-ratelimit-reset-tokens", duration(resetTokensSeconds)),
            ]
        }
        return headers
    }
}
