/// What a name people give (keys, users, clients, groups, organisations) may hold: no control
/// characters, no bidirectional controls — U+202E would show `gpj.exe` as `exe.jpg` in every
/// list it appears in — and at least one visible character (not only spaces, zero-width or
/// filler characters that render as nothing).
public enum NameText {
    /// Why `name` is refused, or nil when it is fine.
    public static func problem(_ name: String) -> String? {
        if name.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) {
            return "must not contain control characters"
        }
        if name.unicodeScalars.contains(where: { bidiControls.contains($0.value) }) {
            return "must not contain bidirectional control characters (U+202A–U+202E, U+2066–U+2069, U+200E, U+200F, U+061C)"
        }
        if !name.unicodeScalars.contains(where: isVisible) {
            return "must contain a visible character"
        }
        return nil
    }

    static let bidiControls: Set<UInt32> = [
        0x061C, 0x200E, 0x200F, 0x202A, 0x202B, 0x202C, 0x202D, 0x202E, 0x2066, 0x2067, 0x2068, 0x2069,
    ]

    /// Characters that render as nothing although they are not spaces or format characters.
    static let blanks: Set<UInt32> = [0x115F, 0x1160, 0x180E, 0x2800, 0x3164, 0xFFA0, 0x034F]

    static func isVisible(_ scalar: Unicode.Scalar) -> Bool {
        if scalar.properties.isWhitespace || blanks.contains(scalar.value) { return false }
        switch scalar.properties.generalCategory {
        case .control, .format, .spaceSeparator, .lineSeparator, .paragraphSeparator, .nonspacingMark, .enclosingMark,
            .unassigned, .surrogate, .privateUse:
            return false
        default:
            return true
        }
    }
}
