import Foundation
import Yams

/// How every command reads a YAML file (`serve --config`, `admin models apply --file`): a file
/// that cannot be read or parsed is a `ConfigurationError` naming the file, and a syntax
/// error says where, in words, with the line it is on.
enum YAMLFile {
    /// The text of `path`; `what` names the file in the message ("the configuration file").
    static func read(_ path: String, what: String) throws -> String {
        do {
            return try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            let reason =
                switch (error as NSError).code {
                case NSFileReadNoSuchFileError: "no such file"
                case NSFileReadNoPermissionError: "permission denied"
                case NSFileReadInapplicableStringEncodingError: "not UTF-8 text"
                default: error.localizedDescription
                }
            throw ConfigurationError("cannot read \(what) \(path): \(reason)")
        }
    }

    /// Parses `text`, a syntax error becoming a `ConfigurationError` that names `path`.
    static func parse<Result>(_ text: String, path: String, _ body: (String) throws -> Result) throws -> Result {
        do {
            return try body(text)
        } catch let error as YamlError {
            throw problem(error, path: path)
        }
    }

    /// `file.yaml:3:1: not valid YAML: did not find expected ',' or ']' (while parsing a flow
    /// sequence at 2:9)`, then the line and a caret.
    static func problem(_ error: YamlError, path: String) -> ConfigurationError {
        func located(_ context: YamlError.Context?, _ problem: String, _ mark: Mark, _ yaml: String) -> ConfigurationError {
            let within = context.map { " (\($0.text) at \($0.mark))" } ?? ""
            return ConfigurationError("\(path):\(mark): not valid YAML: \(problem)\(within)\n\(mark.snippet(from: yaml))")
        }
        switch error {
        case .scanner(let context, let problem, let mark, let yaml),
            .parser(let context, let problem, let mark, let yaml),
            .composer(let context, let problem, let mark, let yaml):
            return located(context, problem, mark, yaml)
        case .duplicatedKeysInMapping(let duplicates, let context):
            return ConfigurationError(
                "\(path):\(context.mark): not valid YAML: a key appears twice in one mapping: \(duplicates.sorted().joined(separator: ", "))")
        default:
            return ConfigurationError("\(path): not valid YAML: \(error)")
        }
    }
}
