import LumenAPI
import Synchronization

/// Counts the committed changes that can alter what a management token resolves to: a key
/// updated or revoked (the keys service), a user created or changed — deactivated, demoted —
/// (the accounts service). Each service counts in its writer, after the commit and before the
/// write returns, so a resolver in the same process that kept a resolution made at count N
/// may reuse it for as long as the count is still N (`KeysTokenResolver`), and sees any
/// change at once.
public final class CredentialChanges: Sendable {
    private let count = Atomic<UInt64>(0)

    public init() {}

    /// One more change committed.
    public func record() {
        count.wrappingAdd(1, ordering: .sequentiallyConsistent)
    }

    /// Changes so far.
    public var value: UInt64 { count.load(ordering: .sequentiallyConsistent) }
}

/// A service in this process whose committed changes can alter what a management token
/// resolves to (the keys service, the accounts service), for `KeysTokenResolver`.
public protocol CredentialChangeSource: Sendable {
    /// Its committed changes of keys or users, counted.
    var credentialChanges: CredentialChanges { get }
    /// Whether a key that resolved may still be used now — the keys service's rule (status and
    /// expiry); nil from a service that has no say.
    func stillAdmits(_ key: Lumen_Keys_V1_Key) -> Bool?
}
