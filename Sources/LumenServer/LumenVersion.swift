/// Which Lumen this is: `lumen --version` prints it, and `gateway/openapi.yaml`'s
/// `info.version` says the same (a test holds them together).
public enum LumenVersion {
    public static let current = "0.4.0"
}
