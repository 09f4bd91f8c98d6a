import GRPCCore
import GRPCNIOTransportHTTP2
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// The collector of the benchmark's "tracing on" runs: an OTLP/gRPC trace receiver
/// (`opentelemetry.proto.collector.trace.v1.TraceService/Export`) that takes each export, counts
/// it and its bytes without decoding them, and answers with the empty response — so that what
/// the run measures is Lumen making and sending its spans, not a collector's work.
///
/// Usage: bench-otlp-sink <port>   (loopback only; prints "exports N bytes B" each second that changed them)
@main
struct OTLPSink {
    static func main() async throws {
        let arguments = CommandLine.arguments.dropFirst()
        guard arguments.count == 1, let port = Int(arguments.first!) else {
            print("usage: bench-otlp-sink <port>")
            return
        }
        let sink = TraceSink()
        let transport = HTTP2ServerTransport.Posix(address: .ipv4(host: "127.0.0.1", port: port), transportSecurity: .plaintext)
        let server = GRPCServer(transport: transport, services: [sink])
        try await withThrowingDiscardingTaskGroup { group in
            group.addTask { try await server.serve() }
            group.addTask {
                var last = (0, 0)
                while true {
                    try await Task.sleep(for: .seconds(1))
                    let now = sink.counts.withLock { $0 }
                    // Written at once (print would hold it in a buffer when stdout is a file).
                    if now != last { _ = "exports \(now.0) bytes \(now.1)\n".withCString { write(1, $0, strlen($0)) } }
                    last = now
                }
            }
        }
    }
}

/// The one method, registered by hand with the bytes as they came.
final class TraceSink: RegistrableRPCService, Sendable {
    let counts = Mutex((0, 0))

    func registerMethods<Transport: ServerTransport>(with router: inout RPCRouter<Transport>) {
        router.registerHandler(
            forMethod: MethodDescriptor(fullyQualifiedService: "opentelemetry.proto.collector.trace.v1.TraceService", method: "Export"),
            deserializer: RawBytes(), serializer: RawBytes()
        ) { request, _ in
            let export = try await ServerRequest(stream: request)
            self.counts.withLock { $0 = ($0.0 + 1, $0.1 + export.message.count) }
            return StreamingServerResponse(single: ServerResponse(message: []))
        }
    }
}

/// A message as its bytes (the empty `ExportTraceServiceResponse` is no bytes).
struct RawBytes: MessageSerializer, MessageDeserializer {
    func serialize<Bytes: GRPCContiguousBytes>(_ message: [UInt8]) throws -> Bytes { Bytes(message) }
    func deserialize<Bytes: GRPCContiguousBytes>(_ serializedMessageBytes: Bytes) throws -> [UInt8] {
        serializedMessageBytes.withUnsafeBytes { Array($0) }
    }
}
