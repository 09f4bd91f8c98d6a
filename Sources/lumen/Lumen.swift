import ArgumentParser

@main
struct Lumen: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lumen",
        abstract: "Lumen, an organisation's gateway to language models.",
        discussion: """
            `lumen serve` runs the gateway and its services (all in one process by default, on
            SQLite under ./data). `lumen admin` manages a deployment from the command line.
            """,
        subcommands: [Serve.self, Admin.self]
    )
}
