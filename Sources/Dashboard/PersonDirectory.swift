import GRPCCore
import LumenAPI
import RPCSupport

/// Who a session's user is now, asked of the accounts service at each request (so that a
/// change of role, of managed clients or a deactivation counts at once).
struct PersonDirectory: Sendable {
    let accounts: any Lumen_Accounts_V1_AccountsService.ClientProtocol
    let internalToken: String

    /// The person signed in with `session`, or nil when the user is gone or inactive.
    func person(_ session: DashboardSession) async throws -> SignedInPerson? {
        let response: Lumen_Accounts_V1_GetUserResponse
        do {
            response = try await accounts.getUser(
                .with {
                    $0.organizationID = session.organizationID
                    $0.userID = session.userID
                }, metadata: .bearer(internalToken))
        } catch let error as RPCError where error.code == .notFound {
            return nil
        }
        guard response.user.active else { return nil }
        return SignedInPerson(
            person: Person(
                organizationID: response.user.organizationID, userID: response.user.id, isAdmin: response.user.isAdmin,
                managedClientIDs: Set(response.managedClientIds)),
            displayName: response.user.displayName)
    }
}

/// Who a request's session belongs to: the `Person` the services judge, and the name the pages
/// show.
public struct SignedInPerson: Sendable, Equatable {
    public var person: Person
    public var displayName: String
}
