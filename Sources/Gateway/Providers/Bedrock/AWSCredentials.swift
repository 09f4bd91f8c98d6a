import Foundation
import Synchronization

/// Where a bedrock backend's AWS keys come from, as the AWS SDKs look for them: the gateway's
/// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and `AWS_SESSION_TOKEN`, or — for a backend
/// that names an `aws_profile` — that profile of the shared credentials file
/// (`AWS_SHARED_CREDENTIALS_FILE`, else `~/.aws/credentials`), read again whenever the file
/// changes, so that keys a tool rotates there are used at once.
final class AWSCredentialStore: Sendable {
    let environment: @Sendable (String) -> String?
    private let file = Mutex<(path: String, modified: Date, profiles: [String: AWSCredentials])?>(nil)

    init(environment: @escaping @Sendable (String) -> String? = UpstreamHTTP.credential) {
        self.environment = environment
    }

    /// The keys for `profile` (empty: the variables); nil when there are none.
    func credentials(profile: String) -> AWSCredentials? {
        if profile.isEmpty {
            guard let id = nonEmpty("AWS_ACCESS_KEY_ID"), let secret = nonEmpty("AWS_SECRET_ACCESS_KEY") else { return nil }
            return AWSCredentials(accessKeyID: id, secretAccessKey: secret, sessionToken: nonEmpty("AWS_SESSION_TOKEN"))
        }
        return profiles()[profile]
    }

    /// What is missing for `profile`, in words; empty when its keys are there.
    func problem(profile: String) -> String {
        guard credentials(profile: profile) == nil else { return "" }
        if profile.isEmpty {
            return "no AWS credentials: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not set in the gateway's environment"
        }
        return "no AWS credentials: profile \(profile) is not in \(path()) with aws_access_key_id and aws_secret_access_key"
    }

    private func nonEmpty(_ name: String) -> String? {
        guard let value = environment(name), !value.isEmpty else { return nil }
        return value
    }

    func path() -> String {
        if let path = nonEmpty("AWS_SHARED_CREDENTIALS_FILE") { return path }
        return (nonEmpty("HOME") ?? NSHomeDirectory()) + "/.aws/credentials"
    }

    private func profiles() -> [String: AWSCredentials] {
        let path = path()
        guard let attributes = try? FileManager.default.attributesOfItem(atPath: path),
            let modified = attributes[.modificationDate] as? Date
        else { return [:] }
        if let cached = file.withLock({ $0 }), cached.path == path, cached.modified == modified { return cached.profiles }
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return [:] }
        let profiles = Self.parse(text)
        file.withLock { $0 = (path, modified, profiles) }
        return profiles
    }

    /// The profiles of a credentials file (INI: `[name]` or `[profile name]`, `key = value`,
    /// `#` and `;` comments) that have both keys.
    static func parse(_ text: String) -> [String: AWSCredentials] {
        var values: [String: [String: String]] = [:]
        var section: String?
        for raw in text.split(whereSeparator: \.isNewline) {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.isEmpty || line.hasPrefix("#") || line.hasPrefix(";") { continue }
            if line.hasPrefix("["), line.hasSuffix("]") {
                var name = line.dropFirst().dropLast().trimmingCharacters(in: .whitespaces)
                if name.hasPrefix("profile ") { name = name.dropFirst("profile ".count).trimmingCharacters(in: .whitespaces) }
                section = name
                continue
            }
            guard let section, let equals = line.firstIndex(of: "=") else { continue }
            let key = line[..<equals].trimmingCharacters(in: .whitespaces).lowercased()
            values[section, default: [:]][key] = line[line.index(after: equals)...].trimmingCharacters(in: .whitespaces)
        }
        return values.compactMapValues { keys in
            guard let id = keys["aws_access_key_id"], !id.isEmpty, let secret = keys["aws_secret_access_key"], !secret.isEmpty else { return nil }
            return AWSCredentials(accessKeyID: id, secretAccessKey: secret, sessionToken: keys["aws_session_token"].flatMap { $0.isEmpty ? nil : $0 })
        }
    }
}
