import GRDB
import GRPCCore
import Logging
import LumenAPI
import RPCSupport
import Storage

/// The model registry: models, backends, access, consents and status.
///
/// Served and reachable today, but every call answers UNIMPLEMENTED: the registry arrives
/// with the inference issue, and nothing here pretends to work before then.
public struct ModelRegistryService: Sendable {
    let writer: any DatabaseWriter
    let logger: Logger

    /// Opens the registry database at `location` (its tables arrive with the registry itself).
    public init(location: ServiceDatabase.Location, logger: Logger) throws {
        self.writer = try ServiceDatabase.open(name: "registry", at: location, migrator: DatabaseMigrator())
        self.logger = logger
    }

    private func unimplemented(_ method: String) throws -> Never {
        _ = try Caller.require()
        throw ServiceError.unimplemented("ModelRegistryService.\(method)")
    }
}

extension ModelRegistryService: Lumen_Registry_V1_ModelRegistryService.SimpleServiceProtocol {
    public func listModels(request: Lumen_Registry_V1_ListModelsRequest, context: ServerContext) async throws -> Lumen_Registry_V1_ListModelsResponse {
        try unimplemented("ListModels")
    }
    public func getModel(request: Lumen_Registry_V1_GetModelRequest, context: ServerContext) async throws -> Lumen_Registry_V1_GetModelResponse {
        try unimplemented("GetModel")
    }
    public func upsertModel(request: Lumen_Registry_V1_UpsertModelRequest, context: ServerContext) async throws -> Lumen_Registry_V1_UpsertModelResponse {
        try unimplemented("UpsertModel")
    }
    public func upsertBackend(request: Lumen_Registry_V1_UpsertBackendRequest, context: ServerContext) async throws -> Lumen_Registry_V1_UpsertBackendResponse {
        try unimplemented("UpsertBackend")
    }
    public func removeBackend(request: Lumen_Registry_V1_RemoveBackendRequest, context: ServerContext) async throws -> Lumen_Registry_V1_RemoveBackendResponse {
        try unimplemented("RemoveBackend")
    }
    public func getModelAccess(request: Lumen_Registry_V1_GetModelAccessRequest, context: ServerContext) async throws -> Lumen_Registry_V1_GetModelAccessResponse {
        try unimplemented("GetModelAccess")
    }
    public func grantConsent(request: Lumen_Registry_V1_GrantConsentRequest, context: ServerContext) async throws -> Lumen_Registry_V1_GrantConsentResponse {
        try unimplemented("GrantConsent")
    }
    public func revokeConsent(request: Lumen_Registry_V1_RevokeConsentRequest, context: ServerContext) async throws -> Lumen_Registry_V1_RevokeConsentResponse {
        try unimplemented("RevokeConsent")
    }
    public func listConsents(request: Lumen_Registry_V1_ListConsentsRequest, context: ServerContext) async throws -> Lumen_Registry_V1_ListConsentsResponse {
        try unimplemented("ListConsents")
    }
    public func getModelStatus(request: Lumen_Registry_V1_GetModelStatusRequest, context: ServerContext) async throws -> Lumen_Registry_V1_GetModelStatusResponse {
        try unimplemented("GetModelStatus")
    }
    public func reportBackendHealth(request: Lumen_Registry_V1_ReportBackendHealthRequest, context: ServerContext) async throws -> Lumen_Registry_V1_ReportBackendHealthResponse {
        try unimplemented("ReportBackendHealth")
    }
    public func watchRegistry(
        request: Lumen_Registry_V1_WatchRegistryRequest,
        response: RPCWriter<Lumen_Registry_V1_RegistryEvent>,
        context: ServerContext
    ) async throws {
        try unimplemented("WatchRegistry")
    }
}
