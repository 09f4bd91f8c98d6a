import Foundation
import HTTPTypes
import Hummingbird
import LumenAPI
import NIOCore
import RPCSupport


/// The OpenAI-compatible endpoints: `GET /v1/models` and the metered ones,
/// `POST /v1/chat/completions`, `/v1/completions`, `/v1/embeddings` and `/v1/responses`, and
/// the pass-through paths (images, audio, moderations, rerank) billed per request.
struct OpenAIController<Context: RequestContext>: Sendable {
    let pipeline: InferencePipeline

    var admission: InferenceAdmission { pipeline.admission }

    func addRoutes(to group: RouterGroup<Context>) {
        group.get("models", use: models)
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

