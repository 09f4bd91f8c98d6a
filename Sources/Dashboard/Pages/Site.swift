import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import Mustache

/// The dashboard's templates and static files (`gateway/dashboard/`), built into the binary by
/// the `EmbedFiles` plugin: pages render from any working directory with nothing beside `lumen`.
struct Site: Sendable {
    struct Asset: Sendable {
        let body: ByteBuffer
        let contentType: String
        let etag: String
    }

    let library: MustacheLibrary
    let assets: [String: Asset]
    /// Changes with any static file: pages link `/static/…?v=<version>`.
    let version: String

    /// What every page says about itself: no caching of personal pages, no framing, nothing
    /// from elsewhere (but Gravatar's pictures when `--gravatar` shows them), no inline script.
    let pageHeaders: HTTPFields

    init(files: [String: Data] = EmbeddedFiles.files, gravatar: Bool = false) throws {
        let images = gravatar ? "'self' https://www.gravatar.com data:" : "'self' data:"
        pageHeaders = [
            .contentType: "text/html; charset=utf-8",
            .cacheControl: "no-store",
            HTTPField.Name("Content-Security-Policy")!:
                "default-src 'self'; img-src \(images); style-src 'self'; script-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'",
            HTTPField.Name("X-Content-Type-Options")!: "nosniff",
            HTTPField.Name("Referrer-Policy")!: "same-origin",
        ]
        var library = MustacheLibrary()
        var assets: [String: Asset] = [:]
        var digest = SHA256()
        for (path, data) in files.sorted(by: { $0.key < $1.key }) {
            if path.hasPrefix("templates/"), path.hasSuffix(".mustache") {
                let name = String(path.dropFirst("templates/".count).dropLast(".mustache".count))
                try library.register(String(decoding: data, as: UTF8.self), named: name)
            } else if path.hasPrefix("static/") {
                let name = String(path.dropFirst("static/".count))
                let hash = SHA256.hash(data: data).prefix(8).map { String(format: "%02x", $0) }.joined()
                assets[name] = Asset(body: ByteBuffer(bytes: data), contentType: Self.contentType(of: name), etag: "\"\(hash)\"")
                digest.update(data: data)
            }
        }
        self.library = library
        self.assets = assets
        self.version = digest.finalize().prefix(6).map { String(format: "%02x", $0) }.joined()
    }

    /// `template` rendered with `view` as an HTML response.
    func page(_ template: String, _ view: Any, status: HTTPResponse.Status = .ok) throws -> Response {
        guard let html = library.render(view, withTemplate: template) else {
            throw HTTPError(.internalServerError, message: "no page template \(template)")
        }
        return Response(status: status, headers: pageHeaders, body: .init(byteBuffer: ByteBuffer(string: html)))
    }

    /// A static file, revalidated by its ETag (304 when unchanged).
    func asset(_ name: String, request: Request) -> Response? {
        guard let asset = assets[name] else { return nil }
        var headers: HTTPFields = [
            .contentType: asset.contentType, .eTag: asset.etag, .cacheControl: "public, max-age=300",
            HTTPField.Name("X-Content-Type-Options")!: "nosniff",
        ]
        if request.headers[.ifNoneMatch] == asset.etag {
            headers[.contentType] = nil
            return Response(status: .notModified, headers: headers)
        }
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: asset.body))
    }

    static func contentType(of name: String) -> String {
        switch (name as NSString).pathExtension {
        case "css": "text/css; charset=utf-8"
        case "js": "text/javascript; charset=utf-8"
        case "svg": "image/svg+xml"
        case "png": "image/png"
        case "ico": "image/x-icon"
        default: "application/octet-stream"
        }
    }
}
