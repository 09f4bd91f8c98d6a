import Foundation

/// The current time as the services and the gateway see it; injected so tests can move time.
public struct WallClock: Sendable {
    private let read: @Sendable () -> Date

    public init(_ read: @escaping @Sendable () -> Date) {
        self.read = read
    }

    /// The system clock.
    public static let system = WallClock { Date() }

    public var now: Date { read() }

    /// Now as milliseconds since 1970, the unit every Lumen table stores times in.
    public var nowMillis: Int64 { Self.millis(read()) }

    public static func millis(_ date: Date) -> Int64 {
        Int64((date.timeIntervalSince1970 * 1000).rounded(.down))
    }
}
