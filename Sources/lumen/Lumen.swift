import ArgumentParser
import LumenServer

@main
struct Lumen: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lumen",
        abstract: "Lumen, an organisation's gateway to language models.",
        discussion: """
            `lumen serve` runs the gateway, its dashboard and its services: all in one process by \
            default, on SQLite under ./data. `lumen admin` manages a running deployment or its \
            data directory.
            """,
        version: LumenVersion.current,
        subcommands: [Serve.self, Admin.self]
    )

    /// ArgumentParser's own `main`, except that an error a subcommand throws while running is
    /// reported with that subcommand's usage, not the top-level one.
    static func main() async {
        let command: any ParsableCommand
        do {
            command = try parseAsRoot()
        } catch {
            exit(withError: error)
        }
        do {
            if var command = command as? any AsyncParsableCommand {
                try await command.run()
            } else {
                var command = command
                try command.run()
            }
        } catch let error as ValidationError {
            refuse(error.message, by: type(of: command))
        } catch {
            switch CommandFailure(error) {
            case .usage(let message)?:
                // A bad value, file or data directory is the user's to fix, like a bad option.
                refuse(message, by: type(of: command))
            case .refused(let message)?:
                // What a service refused, in the API's words and code; a server not reached.
                var standardError = FileHandleOutputStream.standardError
                print("error: \(message)", to: &standardError)
                exit(withError: ExitCode.failure)
            case nil:
                exit(withError: error)
            }
        }
    }

    /// What a subcommand refuses once parsed: the message, then that subcommand's usage.
    static func refuse(_ message: String, by command: any ParsableCommand.Type) -> Never {
        let path = commandPath(to: command).joined(separator: " ")
        var standardError = FileHandleOutputStream.standardError
        print(
            """
            Error: \(message)
            Usage: \(usageString(for: command))
              See '\(path) --help' for more information.
            """, to: &standardError)
        exit(withError: ExitCode.validationFailure)
    }

    /// The command names from `lumen` down to `target` (just `lumen` when it is not found).
    static func commandPath(to target: any ParsableCommand.Type) -> [String] {
        func search(_ command: any ParsableCommand.Type, _ path: [String]) -> [String]? {
            let path = path + [command._commandName]
            if command == target { return path }
            for subcommand in command.configuration.subcommands {
                if let found = search(subcommand, path) { return found }
            }
            return nil
        }
        return search(Lumen.self, []) ?? [_commandName]
    }
}
