import Foundation
import LumenAPI
import RPCSupport
import SharedRules
import Tracing
import UpstreamClient

/// The spans of an inference request's calls upstream, after OpenTelemetry's semantic
/// conventions for generative AI: one client span per backend tried, named
/// `{gen_ai.operation.name} {gen_ai.request.model}` (`chat gpt-4o`), with the provider, the
/// model as the backend names it, the backend's address and, once the answer has ended, the
/// tokens it used. A backend that failed over ends its span as an error (`error.type`: the
/// status it answered, or `transport`). Prompts and answers are never recorded.
enum UpstreamSpan {
    /// A span for `call`, child of the current one; nil when tracing is off.
    static func start(_ call: UpstreamCall) -> (any Span)? {
        guard let span = Traces.start("\(operation(call.request)) \(call.upstreamModel)", kind: .client) else { return nil }
        let system = system(call.backend.provider)
        span.updateAttributes { attributes in
            attributes["gen_ai.operation.name"] = operation(call.request)
            attributes["gen_ai.system"] = system
            attributes["gen_ai.provider.name"] = system
            attributes["gen_ai.request.model"] = call.upstreamModel
            if let maxTokens = call.request.maxOutputTokens { attributes["gen_ai.request.max_tokens"] = maxTokens }
            if call.request.stream { attributes["lumen.stream"] = true }
            attributes["lumen.model"] = call.model.name
            attributes["lumen.backend"] = call.backend.id
            if let host = URLComponents(string: call.backend.baseURL).flatMap(HostPolicy.host(of:)) {
                attributes["server.address"] = host
            }
        }
        return span
    }

    /// Ends the span of a call that was answered, with the tokens it used (`estimated`: counted
    /// by Lumen, the upstream reported none).
    static func end(_ span: (any Span)?, tokens: Pricing.Tokens, estimated: Bool) {
        guard let span else { return }
        span.updateAttributes { attributes in
            // All the input, as the conventions count it; the cache's reads and writes also apart.
            attributes["gen_ai.usage.input_tokens"] = tokens.input + tokens.cachedInput + tokens.cacheWrite
            attributes["gen_ai.usage.output_tokens"] = tokens.output
            if tokens.cachedInput > 0 { attributes["gen_ai.usage.cache_read.input_tokens"] = tokens.cachedInput }
            if tokens.cacheWrite > 0 { attributes["gen_ai.usage.cache_creation.input_tokens"] = tokens.cacheWrite }
            if estimated { attributes["lumen.usage.estimated"] = true }
        }
        span.end()
    }

    /// Ends the span of a call that did not give an answer: `code` says why (`error.type`).
    static func fail(_ span: (any Span)?, code: String, message: String) {
        guard let span else { return }
        Traces.fail(span, code: code, message: message)
        span.end()
    }

    /// `gen_ai.operation.name` for what the caller asked.
    static func operation(_ request: InferenceRequest) -> String {
        if request.format == .anthropic { return "chat" }
        switch request.endpoint {
        case .chatCompletions, .responses: return "chat"
        case .completions: return "text_completion"
        case .embeddings: return "embeddings"
        default: return request.endpoint.rawValue
        }
    }

    /// `gen_ai.system` (and `gen_ai.provider.name`) for a backend's provider, as the conventions
    /// name the well-known ones.
    static func system(_ provider: Lumen_Registry_V1_ProviderKind) -> String {
        switch provider {
        case .openai: "openai"
        case .anthropic: "anthropic"
        case .azure: "azure.ai.openai"
        case .gemini: "gcp.gemini"
        case .bedrock: "aws.bedrock"
        default: provider.publicName
        }
    }
}
