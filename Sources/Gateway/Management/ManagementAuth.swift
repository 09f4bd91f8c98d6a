import GRPCCore
import HTTPTypes
import Hummingbird
import RPCSupport
import SharedRules

/// Reads the management token of a request and forwards it to the services, which decide
/// what it may do. Only `mt-` tokens are accepted here: the deployment's internal token is
/// never valid on the public REST API.
enum ManagementAuth {
    static func metadata(_ request: Request) throws(APIError) -> Metadata {
        guard let header = request.headers[.authorization] else {
            throw APIError(
                .unauthorized, code: "missing_authorization",
                message: "send a management token: `Authorization: Bearer mt-…`")
        }
        guard let token = AuthInterceptor.bearerToken(header) else {
            throw APIError(.unauthorized, code: "invalid_management_token", message: AuthorizationHeader.problem(header, prefix: "mt-"))
        }
        guard token.hasPrefix("mt-") else {
            throw APIError(
                .unauthorized, code: "invalid_management_token",
                message: "the management API takes `Authorization: Bearer mt-…`; sk- keys are for the model endpoints")
        }
        return .bearer(token)
    }
}
