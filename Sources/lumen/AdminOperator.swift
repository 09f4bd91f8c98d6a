import ArgumentParser
import Foundation
import LumenAPI
import LumenServer

/// The data directory the commands that work on the databases directly take.
struct DataDirectoryOptions: ParsableArguments {
    @Option(help: "Directory of the SQLite databases. (LUMEN_DATA_DIR, default: the configuration's data_dir, else ./data)")
    var dataDir: String?

    @Option(help: "The YAML configuration file of `lumen serve --config`, to read its data_dir and database. (LUMEN_CONFIG)")
    var config: String?

    var path: String {
        get throws { try resolve(environment: ProcessInfo.processInfo.environment) }
    }

    /// The directory `lumen serve` with the same flag, variables and file would use.
    func resolve(environment: [String: String]) throws -> String {
        try ServeConfiguration.dataDirectory(flag: dataDir, file: config, environment: environment)
    }
}

/// Where the keys service keeps its table when not in the data directory: the commands that
/// write keys directly (bootstrap, operator tokens).
struct DatabaseOptions: ParsableArguments {
    @Option(help: "The PostgreSQL URL of `lumen serve --database`, where the services keep their tables. (LUMEN_DATABASE, default: the configuration's database, else none)")
    var database: String?

    /// The URL `lumen serve` with the same flag, variables and file (`config`) would use.
    func url(config: String?) throws -> String? {
        try ServeConfiguration.database(flag: database, file: config, environment: ProcessInfo.processInfo.environment)
    }
}

/// `lumen admin operator-token`: the deployment operator's credentials, made on the machine.
struct OperatorTokenAdmin: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "operator-token",
        abstract: "Create, list or revoke deployment operator tokens (op-…).",
        discussion: """
            An operator token changes what every organisation shares — models, backends and \
            prices — through `lumen admin models` on the gRPC port. An organisation's management \
            token never can. These commands work on the keys database directly (like bootstrap), \
            so only someone on the machine can make one; they may run while `lumen serve` runs, \
            and a revocation takes effect at the next call.
            """,
        subcommands: [OperatorTokenCreate.self, OperatorTokenList.self, OperatorTokenRevoke.self])
}

struct OperatorTokenCreate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "create",
        abstract: "Create an operator token and print it once.",
        usage: "lumen admin operator-token create [--name <name>] [<options>]",
        discussion: #"Prints JSON {"id", "name", "operator_token"}. The secret is shown this once: store it now."#)

    @Option(help: "A name to recognise the token by (default: Operator token).")
    var name: String?

    @OptionGroup var data: DataDirectoryOptions
    @OptionGroup var database: DatabaseOptions

    func run() async throws {
        let name = self.name
        let response = try await DataDirectory.withKeys(in: try data.path, database: try database.url(config: data.config)) { keys, metadata in
            try await keys.createOperatorToken(.with { if let name { $0.name = name } }, metadata: metadata)
        }
        try printJSON(["id": response.key.id, "name": response.key.name, "operator_token": response.secret] as [String: String])
    }
}

struct OperatorTokenList: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list",
        abstract: "List the operator tokens, revoked ones too (never a secret).",
        usage: "lumen admin operator-token list [<options>]",
        discussion: #"Prints JSON [{"id", "name", "hint", "status", "created_at"}], oldest first."#)

    @OptionGroup var data: DataDirectoryOptions
    @OptionGroup var database: DatabaseOptions

    func run() async throws {
        let response = try await DataDirectory.withKeys(in: try data.path, database: try database.url(config: data.config)) { keys, metadata in
            try await keys.listOperatorTokens(.init(), metadata: metadata)
        }
        try printJSON(response.keys.map(OperatorTokenOutput.init))
    }
}

struct OperatorTokenRevoke: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "revoke", abstract: "Revoke an operator token at once.",
        usage: "lumen admin operator-token revoke <id> [<options>]", discussion: "Prints the token as JSON.")

    @Argument(help: "The token's id (key_…), as `list` shows it.")
    var id: String

    @OptionGroup var data: DataDirectoryOptions
    @OptionGroup var database: DatabaseOptions

    func run() async throws {
        let id = self.id
        let response = try await DataDirectory.withKeys(in: try data.path, database: try database.url(config: data.config)) { keys, metadata in
            try await keys.revokeOperatorToken(.with { $0.keyID = id }, metadata: metadata)
        }
        try printJSON(OperatorTokenOutput(response.key))
    }
}

/// Where the running server's gRPC port is, and the operator token to act with.
struct OperatorServerOptions: ParsableArguments {
    @Option(help: "host:port of the gRPC port of `lumen serve` (the process running the registry). (LUMEN_GRPC_ADDRESS, default 127.0.0.1:9090)")
    var server: String?

    @Option(help: "An operator token (op-…, from `lumen admin operator-token create`). (LUMEN_OPERATOR_TOKEN)")
    var token: String?

    var connection: AdminConnection {
        get throws {
            try AdminConnection(server: server, token: token, credential: .operatorToken, environment: ProcessInfo.processInfo.environment)
        }
    }
}

/// `lumen admin models`: the deployment's models and backends, changed by its operator.
struct ModelsAdmin: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "models",
        abstract: "List, apply or remove models and backends (operator token).",
        subcommands: [ModelsList.self, ModelsApply.self, BackendRemove.self])
}

struct ModelsList: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list",
        abstract: "Print every model, disabled ones too, with its backends and their health, as JSON.",
        usage: "lumen admin models list [<options>]",
        discussion: """
            Prints {"object": "list", "data": [model, …]}, indented; each model with the keys and \
            units of the YAML `models:` section (prices in USD per million tokens, `scenes`, \
            `provider`), its `status`, and each backend's `health`, `consecutive_failures`, \
            `problem` (its configuration) and `last_failure` with `last_failure_at` (the latest \
            failed call: what went wrong and the request id its log lines carry).
            """)

    @OptionGroup var server: OperatorServerOptions

    func run() async throws {
        let response = try await server.connection.withRegistry { registry, metadata in
            try await registry.listModels(.with { $0.includeDisabled = true }, metadata: metadata)
        }
        print(try AdminOutput.json(ListOutput(response.models.map(ModelOutput.init)), indented: true))
    }
}

struct ModelsApply: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "apply",
        abstract: "Create or replace the models and backends a YAML file lists.",
        usage: "lumen admin models apply --file <file> [<options>]",
        discussion: """
            The file has the configuration file's `models:` section (a whole configuration file \
            will do; other sections are ignored). Each model and each backend it lists is created \
            or replaced, through the registry's own rules; models and backends it does not list \
            are left alone (`lumen admin models remove-backend` removes one). Gateways route by \
            the change at once. Prints {"models": N, "backends": N}.
            """)

    @Option(name: .shortAndLong, help: "The YAML file.")
    var file: String

    @OptionGroup var server: OperatorServerOptions

    func run() async throws {
        let catalog = try ModelCatalog.load(file: file)
        try await server.connection.withRegistry { registry, metadata in
            for model in catalog.models {
                _ = try await registry.upsertModel(.with { $0.model = model }, metadata: metadata)
            }
            for backend in catalog.backends {
                _ = try await registry.upsertBackend(.with { $0.backend = backend }, metadata: metadata)
            }
        }
        try printJSON(["models": catalog.models.count, "backends": catalog.backends.count])
    }
}

struct BackendRemove: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "remove-backend", abstract: "Remove one backend of a model.",
        usage: "lumen admin models remove-backend --model <m> --backend <id> [<options>]")

    @Option(help: "The logical model.")
    var model: String

    @Option(help: "The backend's id.")
    var backend: String

    @OptionGroup var server: OperatorServerOptions

    func run() async throws {
        let (model, backend) = (self.model, self.backend)
        try await server.connection.withRegistry { registry, metadata in
            _ = try await registry.removeBackend(
                .with {
                    $0.model = model
                    $0.backendID = backend
                }, metadata: metadata)
        }
        try printJSON(["removed": backend, "model": model])
    }
}
