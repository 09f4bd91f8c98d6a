import Foundation
import Synchronization

/// The bearer token sources a gateway's operator names (`--token-sources`), by name: where an
/// azure backend that names one (`token_source`) gets its Entra ID token — a file that a
/// managed identity's sidecar keeps fresh (read again whenever it changes), or a command
/// (`az account get-access-token …`: run without a shell, its output the token, kept until 5
/// minutes before the token's `exp`, or for 5 minutes when it is not a JWT). The registry names
/// a source, never the file or the command: those are the gateway operator's alone.
public struct TokenSources: Sendable, Equatable {
    public enum Source: Sendable, Equatable {
        case file(String)
        case command([String])
    }

    public private(set) var sources: [String: Source] = [:]

    public static let none = TokenSources()

    init() {}

    /// `NAME=file:/path` or `NAME=command:program arg …`, entries separated by commas (a
    /// command's arguments hold none: put such a command in a script).
    public init(list: String) throws(TokenSourcesError) {
        for entry in list.split(separator: ",") {
            let entry = entry.trimmingCharacters(in: .whitespaces)
            if entry.isEmpty { continue }
            guard let equals = entry.firstIndex(of: "=") else {
                throw TokenSourcesError("\"\(entry)\" is not NAME=file:PATH or NAME=command:PROGRAM ARGS")
            }
            let name = entry[..<equals].trimmingCharacters(in: .whitespaces)
            let characters = CharacterSet.alphanumerics.union(CharacterSet(charactersIn: "._-"))
            guard !name.isEmpty, name.count <= 64, name.unicodeScalars.allSatisfy({ $0.isASCII && characters.contains($0) }) else {
                throw TokenSourcesError("\"\(name)\" is not a token source name (letters, digits, ., _, -)")
            }
            guard sources[name] == nil else { throw TokenSourcesError("token source \(name) is named twice") }
            let spec = entry[entry.index(after: equals)...].trimmingCharacters(in: .whitespaces)
            if spec.hasPrefix("file:"), case let path = String(spec.dropFirst(5)), path.hasPrefix("/") {
                sources[name] = .file(path)
            } else if spec.hasPrefix("command:"), case let words = spec.dropFirst(8).split(separator: " ").map(String.init), !words.isEmpty {
                sources[name] = .command(words)
            } else {
                throw TokenSourcesError("token source \(name): give file:/absolute/path or command:program arg …, not \"\(spec)\"")
            }
        }
    }
}

public struct TokenSourcesError: Error, CustomStringConvertible, Sendable {
    public let description: String
    init(_ description: String) { self.description = description }
}

/// Reads the tokens of `TokenSources`, caching each.
final class TokenReader: Sendable {
    let sources: TokenSources
    let now: @Sendable () -> Date
    /// The token read last per source, and until when it serves (a file's: its modification date).
    private let cache = Mutex<[String: (token: String, until: Date)]>([:])
    /// How long before its `exp` a command's token is fetched anew, and how long one without `exp` serves.
    static let margin: TimeInterval = 300
    static let commandTimeout: Duration = .seconds(30)

    init(sources: TokenSources, now: @escaping @Sendable () -> Date = Date.init) {
        self.sources = sources
        self.now = now
    }

    /// What is wrong with naming `name` here; empty when nothing.
    func problem(_ name: String) -> String {
        sources.sources[name] == nil ? "token_source \(name) is not one of this gateway's --token-sources" : ""
    }

    /// The token of source `name`; an error saying why there is none.
    func token(_ name: String) async throws -> String {
        guard let source = sources.sources[name] else { throw TokenSourceFailure(problem(name)) }
        switch source {
        case .file(let path):
            guard let modified = (try? FileManager.default.attributesOfItem(atPath: path))?[.modificationDate] as? Date else {
                throw TokenSourceFailure("token source \(name): cannot read \(path)")
            }
            if let cached = cache.withLock({ $0[name] }), cached.until == modified { return cached.token }
            guard let text = try? String(contentsOfFile: path, encoding: .utf8), case let token = Self.trimmed(text), !token.isEmpty else {
                throw TokenSourceFailure("token source \(name): \(path) holds no token")
            }
            cache.withLock { $0[name] = (token, modified) }
            return token
        case .command(let words):
            if let cached = cache.withLock({ $0[name] }), cached.until > now() { return cached.token }
            let token = try await Self.run(words, name: name)
            let expiry = Self.expiry(ofJWT: token).map { $0.addingTimeInterval(-Self.margin) } ?? now().addingTimeInterval(Self.margin)
            cache.withLock { $0[name] = (token, expiry) }
            return token
        }
    }

    static func trimmed(_ text: String) -> String { text.trimmingCharacters(in: .whitespacesAndNewlines) }

    /// A JWT's `exp`, if `token` is one.
    static func expiry(ofJWT token: String) -> Date? {
        let parts = token.split(separator: ".")
        guard parts.count == 3 else { return nil }
        var payload = parts[1].replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        payload += String(repeating: "=", count: (4 - payload.count % 4) % 4)
        guard let data = Data(base64Encoded: payload), let claims = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
            let exp = claims["exp"] as? NSNumber
        else { return nil }
        return Date(timeIntervalSince1970: exp.doubleValue)
    }

    /// Runs `words` (the program found on `PATH` when not a path), its standard output the token.
    static func run(_ words: [String], name: String) async throws -> String {
        let process = Process()
        if words[0].contains("/") {
            process.executableURL = URL(fileURLWithPath: words[0])
            process.arguments = Array(words.dropFirst())
        } else {
            process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            process.arguments = words
        }
        let output = Pipe()
        let errors = Pipe()
        process.standardOutput = output
        process.standardError = errors
        process.standardInput = FileHandle.nullDevice
        let finished = AsyncStream<Int32>.makeStream()
        process.terminationHandler = { finished.continuation.yield($0.terminationStatus) }
        do {
            try process.run()
        } catch {
            throw TokenSourceFailure("token source \(name): cannot run \(words[0]): \(error)")
        }
        // Read while it runs, so that a full pipe cannot stall it.
        async let out = Task.detached { output.fileHandleForReading.readDataToEndOfFile() }.value
        async let err = Task.detached { errors.fileHandleForReading.readDataToEndOfFile() }.value
        let status = try await withThrowingTaskGroup(of: Int32?.self) { group in
            group.addTask {
                for await status in finished.stream { return status }
                return nil
            }
            group.addTask {
                try await Task.sleep(for: commandTimeout)
                return nil
            }
            let first = try await group.next() ?? nil
            group.cancelAll()
            return first
        }
        guard let status else {
            process.terminate()
            throw TokenSourceFailure("token source \(name): \(words[0]) did not finish within \(commandTimeout)")
        }
        let (stdout, stderr) = await (out, err)
        guard status == 0 else {
            let why = trimmed(String(decoding: stderr, as: UTF8.self)).split(whereSeparator: \.isNewline).first.map(String.init) ?? ""
            throw TokenSourceFailure("token source \(name): \(words[0]) exited with \(status)\(why.isEmpty ? "" : ": " + why)")
        }
        let token = trimmed(String(decoding: stdout, as: UTF8.self))
        guard !token.isEmpty, !token.contains(where: \.isNewline) else {
            throw TokenSourceFailure("token source \(name): \(words[0]) printed \(token.isEmpty ? "nothing" : "more than one line"), not a token")
        }
        return token
    }
}

/// Why a token source gave no token (the backend's call fails over; the operator sees why).
struct TokenSourceFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
