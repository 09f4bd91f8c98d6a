import RPCSupport
import SharedRules
import Testing

@Suite("Authorization header parsing")
struct BearerTokenTests {
    @Test("The token of `Bearer <token>`, scheme in any case, surrounding spaces dropped")
    func tokens() {
        #expect(AuthInterceptor.bearerToken("Bearer sk-abc") == "sk-abc")
        #expect(AuthInterceptor.bearerToken("bearer   sk-abc  ") == "sk-abc")
        #expect(AuthInterceptor.bearerToken("BEARER mt-x") == "mt-x")
        #expect(AuthInterceptor.bearerToken("Bearer") == nil)
        #expect(AuthInterceptor.bearerToken("Bearer    ") == nil)
        #expect(AuthInterceptor.bearerToken("Bearersk-abc") == nil)
        #expect(AuthInterceptor.bearerToken("Basic dXNlcjpwYXNz") == nil)
        #expect(AuthInterceptor.bearerToken("sk-abc") == nil)
        #expect(AuthInterceptor.bearerToken("") == nil)
        #expect(AuthInterceptor.bearerToken("Béarer x") == nil)
    }
}
