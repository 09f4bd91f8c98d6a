import Foundation
import Logging
import OTel
import RPCSupport
import ServiceLifecycle
import Synchronization

/// `--otlp-endpoint` and `--otlp-protocol`: where this process sends its traces (README,
/// "Tracing"), through swift-otel's OTLP exporter. Without an endpoint nothing is bootstrapped
/// and `Traces` stays off.
///
/// The standard `OTEL_*` variables refine what the flags set — the sampler
/// (`OTEL_TRACES_SAMPLER`, `OTEL_TRACES_SAMPLER_ARG`), headers (`OTEL_EXPORTER_OTLP_HEADERS`),
/// TLS files, the batch sizes (`OTEL_BSP_*`), the service name (`OTEL_SERVICE_NAME`, `lumen` by
/// default) — as the OpenTelemetry specification says; swift-otel reads them.
public enum TraceExport {
    /// The wire OTLP is sent over.
    public enum WireProtocol: String, Sendable, CaseIterable {
        /// OTLP/gRPC, conventionally to port 4317.
        case grpc
        /// OTLP/HTTP with protobuf bodies, conventionally to port 4318, path `/v1/traces`.
        case http = "http/protobuf"

        /// `grpc`, `http/protobuf` or its short form `http`.
        public init(_ text: String, _ name: String) throws {
            switch text.lowercased() {
            case "grpc": self = .grpc
            case "http", "http/protobuf": self = .http
            default: throw ConfigurationError("\(name) must be grpc or http/protobuf, not \"\(text)\"")
            }
        }
    }

    /// An endpoint as given: `http(s)://host[:port]`, with a path for OTLP/HTTP only.
    public static func endpoint(_ text: String, _ name: String) throws -> String {
        guard let url = URLComponents(string: text), let scheme = url.scheme?.lowercased(), ["http", "https"].contains(scheme),
            let host = url.host, !host.isEmpty, url.query == nil, url.fragment == nil, url.user == nil, url.password == nil,
            !text.contains(where: { $0.isWhitespace })
        else {
            throw ConfigurationError(
                "\(name) must be an OTLP collector's address, http(s)://host:port such as http://127.0.0.1:4317 (https: over TLS), not \"\(text)\"")
        }
        return text
    }

    /// swift-otel's configuration for `endpoint` over `wire`: traces only (Lumen's metrics stay
    /// on `/metrics`, its logs on stderr), named after the components this process runs.
    static func configuration(endpoint: String, wire: WireProtocol, components: String, logger: Logger) throws -> OTel.Configuration {
        var configuration = OTel.Configuration.default
        configuration.serviceName = "lumen"
        configuration.resourceAttributes = ["service.version": LumenVersion.current, "lumen.components": components]
        configuration.diagnosticLogger = .custom(logger)
        configuration.diagnosticLogLevel = .warning
        configuration.logs.enabled = false
        configuration.metrics.enabled = false
        configuration.traces.enabled = true
        configuration.traces.exporter = .otlp
        // An export every quarter of a second (the default is five): the processor sends one
        // batch a tick, so this carries some 16,000 spans a second — about 2,000 traced requests
        // — in messages of at most 4,096 spans (a collector takes 4 MiB by default); beyond, the
        // queue fills and spans are dropped, with a warning. Sample above that.
        configuration.traces.batchSpanProcessor.scheduleDelay = .milliseconds(250)
        configuration.traces.batchSpanProcessor.maxQueueSize = 16_384
        configuration.traces.batchSpanProcessor.maxExportBatchSize = 4_096
        switch wire {
        case .grpc:
            guard let url = URLComponents(string: endpoint), url.path.isEmpty || url.path == "/" else {
                throw ConfigurationError(
                    "--otlp-endpoint \(endpoint) has a path; OTLP/gRPC takes http(s)://host:port (a path is for --otlp-protocol http/protobuf)")
            }
            configuration.traces.otlpExporter.protocol = .grpc
            configuration.traces.otlpExporter.endpoint = endpoint
        case .http:
            configuration.traces.otlpExporter.protocol = .httpProtobuf
            // Given without a path, the collector's standard one.
            let path = URLComponents(string: endpoint)?.path ?? ""
            configuration.traces.otlpExporter.endpoint =
                path.isEmpty || path == "/" ? (endpoint.hasSuffix("/") ? endpoint : endpoint + "/") + "v1/traces" : endpoint
        }
        return configuration
    }

    private static let bootstrapped = Atomic<Bool>(false)

    /// Bootstraps the process's tracer to export to `endpoint` and turns `Traces` on; the
    /// service that exports (and, when stopped, flushes what is left). Once per process.
    static func start(endpoint: String, wire: WireProtocol, components: String, logger: Logger) throws -> any Service {
        let configuration = try configuration(endpoint: endpoint, wire: wire, components: components, logger: logger)
        guard bootstrapped.compareExchange(expected: false, desired: true, ordering: .relaxed).exchanged else {
            throw ConfigurationError("traces are already exported by this process")
        }
        let service: any Service
        do {
            service = try OTel.bootstrap(configuration: configuration)
        } catch {
            throw ConfigurationError("--otlp-endpoint: \(error)")
        }
        Traces.turnOn()
        logger.notice("exporting traces", metadata: ["endpoint": "\(endpoint)", "protocol": "\(wire.rawValue)"])
        return service
    }
}
