import GRPCCore
import Testing

@testable import RPCSupport

/// What the audit log records of where a call came from: the facade's request id and client
/// address, and — when a caller names an address of its own over the network — the address
/// the call really came from beside it.
@Suite("Call origin")
struct CallOriginTests {
    @Test("A facade's origin travels in the metadata; a claim from afar is shown with the peer it came from")
    func origin() async {
        let sent = CallOrigin.$current.withValue(CallOrigin(requestID: "req_1", clientAddress: "203.0.113.5")) { Metadata.bearer("mt-x") }
        #expect(CallOrigin.of(sent, peer: "in-process:1") == CallOrigin(requestID: "req_1", clientAddress: "203.0.113.5"))
        #expect(CallOrigin.of(sent, peer: "ipv4:127.0.0.1:5000").clientAddress == "203.0.113.5", "a facade on this machine")
        #expect(CallOrigin.of(sent, peer: "ipv4:198.51.100.7:5000").clientAddress == "203.0.113.5 via 198.51.100.7")
        #expect(CallOrigin.of(Metadata.bearer("mt-x"), peer: "ipv6:[2001:db8::1]:443") == CallOrigin(clientAddress: "2001:db8::1"))
        #expect(Metadata.bearer("mt-x")[stringValues: "lumen-request-id"].first(where: { _ in true }) == nil, "no origin, no entry")
    }
}
