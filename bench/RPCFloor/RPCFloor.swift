import GRPCCore
import GRPCNIOTransportHTTP2
import GRPCProtobuf
import LumenAPI

/// The floor under Lumen's RPC figures: the same server stack as `lumen serve`'s gRPC port
/// (grpc-swift 2's HTTP/2 transport on SwiftNIO, protobuf) answering
/// `AccountsService/GetOrganization` with a fixed organisation — no token, no interceptor, no
/// store, no hop off the request's task. What Lumen's calls cost above this line is Lumen's own.
///
/// Usage: bench-rpc-floor <port>   (loopback only)
@main
struct RPCFloor {
    static func main() async throws {
        let arguments = CommandLine.arguments.dropFirst()
        guard arguments.count == 1, let port = Int(arguments.first!) else {
            print("usage: bench-rpc-floor <port>")
            return
        }
        let transport = HTTP2ServerTransport.Posix(address: .ipv4(host: "127.0.0.1", port: port), transportSecurity: .plaintext)
        let server = GRPCServer(transport: transport, services: [FixedOrganization()])
        try await server.serve()
    }
}

/// One unary method, registered by hand: the generated service would ask for every method.
struct FixedOrganization: RegistrableRPCService {
    let response = Lumen_Accounts_V1_GetOrganizationResponse.with {
        $0.organization = .with {
            $0.id = "org_benchfloor000000"
            $0.name = "Bench"
            $0.createdAt = .init(seconds: 1_764_633_600)
        }
    }

    func registerMethods<Transport: ServerTransport>(with router: inout RPCRouter<Transport>) {
        let response = self.response
        router.registerHandler(
            forMethod: Lumen_Accounts_V1_AccountsService.Method.GetOrganization.descriptor,
            deserializer: ProtobufDeserializer<Lumen_Accounts_V1_GetOrganizationRequest>(),
            serializer: ProtobufSerializer<Lumen_Accounts_V1_GetOrganizationResponse>()
        ) { request, _ in
            _ = try await ServerRequest(stream: request)
            return StreamingServerResponse(single: ServerResponse(message: response))
        }
    }
}
