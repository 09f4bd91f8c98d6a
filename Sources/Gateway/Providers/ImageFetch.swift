import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import UpstreamClient
import WireFormats

/// An image for a provider that takes images inline: its media type and its bytes in base64.
struct FetchedImage: Sendable, Equatable {
    var mediaType: String
    var base64: String
}

/// The images of an OpenAI chat request (`image_url` parts), as the providers that take images
/// inline only (Anthropic, Gemini, Bedrock) read them.
enum ChatImages {
    /// The images of `request`'s messages given by URL (not `data:`), with the field each is in.
    static func urls(_ request: [String: JSONValue]) -> [(url: String, param: String)] {
        var found: [(url: String, param: String)] = []
        for (index, message) in (request["messages"]?.arrayValue ?? []).enumerated() {
            for (part, content) in (message["content"]?.arrayValue ?? []).enumerated() where content["type"]?.stringValue == "image_url" {
                if let url = content["image_url"]?["url"]?.stringValue, !url.hasPrefix("data:"), !found.contains(where: { $0.url == url }) {
                    found.append((url, "messages[\(index)].content[\(part)]"))
                }
            }
        }
        return found
    }

    /// The image of an `image_url` part: inline (`data:image/png;base64,…`), or by URL as Lumen
    /// fetched it (`fetched`); else refused (400 `image_url_not_supported`) for `provider`.
    static func inline(_ url: String, param: String, provider: String, fetched: [String: FetchedImage]) throws(APIError) -> FetchedImage {
        if let image = fetched[url] { return image }
        guard url.hasPrefix("data:"), let comma = url.firstIndex(of: ","), url[..<comma].hasSuffix(";base64") else {
            throw APIError.invalid(
                "image_url_not_supported",
                "this model's provider (\(provider)) takes images inline: send it as a data: URL (data:image/png;base64,…); this gateway does not fetch image URLs (its operator may allow hosts: --image-url-hosts)",
                param: param)
        }
        let mediaType = String(url[url.index(url.startIndex, offsetBy: 5)..<comma].dropLast(";base64".count))
        return FetchedImage(mediaType: mediaType, base64: String(url[url.index(after: comma)...]))
    }
}

/// Fetches images by URL as `HostPolicy` allows: `http` or `https`, one GET, no
/// redirects, connected to the very address that was checked (a name that resolves anew to a
/// private address cannot slip through), within `timeout`, at most `maxBytes`, of a media type
/// the providers take (JPEG, PNG, GIF, WebP). Every refusal is a 400 naming the URL's part.
struct ImageFetcher: Sendable {
    let policy: HostPolicy
    let client: UpstreamClient

    /// Anthropic's limit for one image.
    static let maxBytes = 5 * 1024 * 1024
    /// Images by URL fetched for one request.
    static let maxImages = 20
    static let timeout: Duration = .seconds(10)
    static let mediaTypes: Set<String> = ["image/jpeg", "image/png", "image/gif", "image/webp"]

    init(policy: HostPolicy) {
        self.policy = policy
        var configuration = UpstreamClient.Configuration()
        configuration.connectTimeout = .seconds(5)
        configuration.readTimeout = .seconds(10)
        configuration.maximumIdlePerLoop = 0
        self.client = UpstreamClient(configuration: configuration)
    }

    /// Each URL of `urls` (with the request field it came from) fetched, at most `maxImages`
    /// at once.
    func fetch(_ urls: [(url: String, param: String)], provider: String) async throws(APIError) -> [String: FetchedImage] {
        guard urls.count <= Self.maxImages else {
            throw APIError.invalid(
                "too_many_image_urls", "Lumen fetches at most \(Self.maxImages) images by URL for one request; send the others inline as data: URLs",
                param: urls[Self.maxImages].param)
        }
        do {
            return try await withThrowingTaskGroup(of: (String, FetchedImage).self) { group in
                for (url, param) in urls {
                    group.addTask { (url, try await self.fetch(url, param: param, provider: provider)) }
                }
                var fetched: [String: FetchedImage] = [:]
                for try await (url, image) in group { fetched[url] = image }
                return fetched
            }
        } catch let error as APIError {
            throw error
        } catch {
            throw APIError.invalid("image_url_unreachable", "an image could not be fetched: \(error)", param: urls.first?.param)
        }
    }

    /// One image.
    func fetch(_ url: String, param: String, provider: String) async throws(APIError) -> FetchedImage {
        func refuse(_ code: String, _ why: String) -> APIError {
            APIError.invalid(code, "the image at \(url) \(why)", param: param)
        }
        guard let components = URLComponents(string: url), let scheme = components.scheme?.lowercased(),
            scheme == "https" || scheme == "http", let host = HostPolicy.host(of: components),
            components.user == nil, components.password == nil
        else {
            throw APIError.invalid("invalid_image_url", "an image URL is http(s)://host/path or a data: URL, not \(url.prefix(80))", param: param)
        }
        let port = components.port ?? (scheme == "https" ? 443 : 80)
        let address: SocketAddress
        do {
            address = try await policy.address(of: host, port: port)
        } catch .notAllowed {
            throw refuse(
                "image_url_not_allowed",
                "is on a host this gateway does not fetch from (its operator lists them: --image-url-hosts); \(provider) takes images inline: send it as a data: URL")
        } catch .doesNotResolve {
            throw refuse("image_url_unreachable", "could not be fetched: its host \(host) does not resolve")
        } catch {
            throw refuse("image_url_not_allowed", "is on a host at a private or reserved address, which this gateway does not fetch from")
        }
        let response: UpstreamHTTPResponse
        let body: ByteBuffer
        do {
            (response, body) = try await Self.within(Self.timeout) {
                var headers = HTTPHeaders()
                headers.add(name: "accept", value: "image/jpeg, image/png, image/gif, image/webp")
                headers.add(name: "user-agent", value: "Lumen")
                let response = try await client.execute(
                    UpstreamHTTPRequest(url: url, headers: headers, address: address), headTimeout: .seconds(10))
                guard response.status == .ok else {
                    response.body.abort()
                    return (response, ByteBuffer())
                }
                if let length = response.headers.first(name: "content-length").flatMap(Int.init), length > Self.maxBytes {
                    response.body.abort()
                    throw UpstreamClientError.bodyTooLarge(limit: Self.maxBytes)
                }
                return (response, try await response.body.collect(upTo: Self.maxBytes))
            }
        } catch UpstreamClientError.bodyTooLarge {
            throw refuse("image_too_large", "is larger than \(Self.maxBytes / 1024 / 1024) MB, the most Lumen fetches for one image")
        } catch {
            throw refuse("image_url_unreachable", "could not be fetched: \(error)")
        }
        guard response.status == .ok else {
            throw refuse("image_url_unreachable", "could not be fetched: its server answered \(response.status.code)")
        }
        let mediaType = (response.headers.first(name: "content-type") ?? "").split(separator: ";").first
            .map { $0.trimmingCharacters(in: .whitespaces).lowercased() } ?? ""
        guard Self.mediaTypes.contains(mediaType) else {
            throw refuse(
                "image_url_unsupported_type",
                "is \(mediaType.isEmpty ? "of no stated type" : mediaType), not JPEG, PNG, GIF or WebP")
        }
        return FetchedImage(mediaType: mediaType, base64: Data(body.readableBytesView).base64EncodedString())
    }

    /// `body`, or a timeout after `limit`.
    static func within<T: Sendable>(_ limit: Duration, _ body: @escaping @Sendable () async throws -> T) async throws -> T {
        try await withThrowingTaskGroup(of: T?.self) { group in
            group.addTask { try await body() }
            group.addTask {
                try await Task.sleep(for: limit)
                return nil
            }
            defer { group.cancelAll() }
            guard let first = try await group.next(), let value = first else { throw UpstreamClientError.headTimeout }
            return value
        }
    }
}
