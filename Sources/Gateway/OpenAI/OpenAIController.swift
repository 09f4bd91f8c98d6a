import Foundation
import HTTPTypes
import Hummingbird
import LumenAPI
import NIOCore
import RPCSupport
import SharedRules


/// The OpenAI-compatible endpoints: `GET /v1/models` and the metered ones,
/// `POST /v1/chat/completions`, `/v1/completions`, `/v1/embeddings` and `/v1/responses`, and
/// the pass-through paths (images, audio, moderations, rerank) billed per request.
struct OpenAIController<Context: RequestContext>: Sendable {
    let pipeline: InferencePipeline

    var admission: InferenceAdmission { pipeline.admission }

    func addRoutes(to group: RouterGroup<Context>) {
        group.get("models", use: models)
        // Model names may hold slashes (`meta-llama/Llama-3.1-8B` on vLLM or OpenRouter).
        group.get("models/**", use: model)
        for endpoint in InferenceEndpoint.allCases {
            group.post(RouterPath(endpoint.rawValue)) { request, _ in
                try await pipeline.handle(endpoint, request)
            }
        }
    }

    @Sendable func models(_ request: Request, context: Context) async throws -> JSONResponse<ListObject<ModelObject>> {
        let key = try admission.key(request)
        let usable = admission.registry.models.filter { model in
            model.enabled && admission.permits(key, model) && admission.consented(key, model)
        }
        return JSONResponse(ListObject(data: usable.map { ModelObject(id: $0.name, ownedBy: $0.vendor) }))
    }

    /// `GET /v1/models/{model}` (the SDKs' `models.retrieve`): the model object when the list
    /// above holds it, 404 `model_not_found` otherwise — as OpenAI answers for a model that
    /// does not exist or that the key may not use, so that nothing tells the two apart.
    @Sendable func model(_ request: Request, context: Context) async throws -> JSONResponse<ModelObject> {
        let key = try admission.key(request)
        let raw = context.parameters.getCatchAll().joined(separator: "/")
        let name = raw.removingPercentEncoding ?? raw
        guard let model = admission.registry.model(name),
            model.enabled && admission.permits(key, model) && admission.consented(key, model)
        else {
            throw APIError(
                .notFound, code: "model_not_found",
                message: "the model \(name) does not exist or this API key may not use it", param: "model")
        }
        return JSONResponse(ModelObject(id: model.name, ownedBy: model.vendor))
    }
}

struct ModelObject: Encodable {
    var id: String
    var object = "model"
    var created = 0
    var ownedBy: String

    enum CodingKeys: String, CodingKey {
        case id, object, created
        case ownedBy = "owned_by"
    }
}

