import Foundation
import SwiftProtobuf

extension Google_Protobuf_Timestamp {
    /// A timestamp from milliseconds since 1970 (the unit Lumen's tables store).
    public init(millis: Int64) {
        let seconds = millis >= 0 ? millis / 1000 : (millis - 999) / 1000
        self.init(seconds: seconds, nanos: Int32((millis - seconds * 1000) * 1_000_000))
    }

    /// Milliseconds since 1970, rounded down.
    public var millis: Int64 {
        seconds * 1000 + Int64(nanos / 1_000_000)
    }
}

extension Duration {
    /// Whole milliseconds, rounded toward zero.
    public var wholeMilliseconds: Int64 { components.seconds * 1_000 + components.attoseconds / 1_000_000_000_000_000 }

    /// Whole nanoseconds, rounded toward zero.
    public var wholeNanoseconds: Int64 { components.seconds * 1_000_000_000 + components.attoseconds / 1_000_000_000 }
}
