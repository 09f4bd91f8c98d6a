// swift-tools-version:6.2
import CompilerPluginSupport
import PackageDescription

// Every target of this package builds without a warning: a warning is an error here (and only
// here: SwiftPM applies this to the root package's targets, never to dependencies).
let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .treatAllWarnings(as: .error),
]

let package = Package(
    name: "lumen",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "lumen", targets: ["lumen"]),
        .executable(name: "bench-upstream", targets: ["bench-upstream"]),
        .executable(name: "bench-proxy-floor", targets: ["bench-proxy-floor"]),
        .executable(name: "bench-rpc-floor", targets: ["bench-rpc-floor"]),
        .executable(name: "bench-ledger", targets: ["bench-ledger"]),
        .executable(name: "bench-otlp-sink", targets: ["bench-otlp-sink"]),
        .executable(name: "bench-pages", targets: ["bench-pages"]),
        .executable(name: "fuzz-json", targets: ["fuzz-json"]),
        .executable(name: "fuzz-sse", targets: ["fuzz-sse"]),
        .executable(name: "fuzz-multipart", targets: ["fuzz-multipart"]),
        .executable(name: "fuzz-eventstream", targets: ["fuzz-eventstream"]),
    ],
    dependencies: [
        .package(url: "https://github.com/grpc/grpc-swift-2.git", from: "2.4.3"),
        .package(url: "https://github.com/grpc/grpc-swift-nio-transport.git", from: "2.9.2"),
        .package(url: "https://github.com/grpc/grpc-swift-protobuf.git", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-protobuf.git", from: "1.39.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/hummingbird-project/hummingbird-auth.git", from: "2.5.0"),
        .package(url: "https://github.com/groue/GRDB.swift.git", from: "7.10.0"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "4.5.2"),
        .package(url: "https://github.com/vapor/jwt-kit.git", from: "5.8.0"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.2.2"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        .package(url: "https://github.com/hummingbird-project/swift-mustache.git", from: "2.1.1"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-extras.git", from: "1.35.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-http-types.git", from: "1.8.0"),
        .package(url: "https://github.com/vapor/postgres-nio.git", from: "1.33.2"),
        .package(url: "https://github.com/swiftlang/swift-syntax.git", from: "603.0.1"),
        // Traces (`--otlp-endpoint`): the tracing API, and the OpenTelemetry SDK with its OTLP
        // exporters (gRPC and HTTP; the gRPC one over the grpc-swift already here).
        .package(url: "https://github.com/apple/swift-distributed-tracing.git", from: "1.7.3"),
        .package(url: "https://github.com/swift-otel/swift-otel.git", from: "1.6.0"),
    ],
    targets: [
        /// Generated protobuf messages and gRPC stubs (scripts/generate-proto.sh); nothing hand-written.
        .target(
            name: "LumenAPI",
            dependencies: [
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCProtobuf", package: "grpc-swift-protobuf"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ],
            swiftSettings: swiftSettings
        ),
        /// The stores' plumbing: SQLite (opening a file, pragmas, migrations, the group commit),
        /// PostgreSQL (a pool from a URL, migrations, serialised writes), and `SQLStore`: the same
        /// statements on either.
        .target(
            name: "Storage",
            dependencies: [
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        /// The RPC plumbing: who is calling (credentials in metadata, resolved once per call by an
        /// interceptor), event streams, in-process service calls, watch replication.
        .target(
            name: "RPCSupport",
            dependencies: [
                "LumenAPI", "SharedRules",
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCInProcessTransport", package: "grpc-swift-2"),
                .product(name: "GRPCProtobuf", package: "grpc-swift-protobuf"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
            ],
            swiftSettings: swiftSettings
        ),
        /// The rules the services and the gateway share: money (USD, prices), ids, time, key
        /// admission, model access, backend circuits, pages, the public names of enums, and the
        /// error contract (`ServiceError`: a refusal's status, code and field, as gRPC carries it).
        /// Below the RPC plumbing: it imports no Lumen module but the generated messages.
        .target(
            name: "SharedRules",
            dependencies: [
                "LumenAPI",
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCProtobuf", package: "grpc-swift-protobuf"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "Accounts",
            dependencies: [
                "Audit", "LumenAPI", "Storage", "RPCSupport", "SharedRules",
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "HummingbirdBcrypt", package: "hummingbird-auth"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "Conversations",
            dependencies: ["LumenAPI", "Storage", "RPCSupport", "SharedRules"],
            swiftSettings: swiftSettings
        ),
        /// What every service's audit log shares above its storage: entries naming the caller and
        /// the call's origin, who may read them, their API form.
        .target(
            name: "Audit",
            dependencies: ["LumenAPI", "Storage", "RPCSupport", "SharedRules"],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "Keys",
            dependencies: [
                "Audit", "LumenAPI", "Storage", "RPCSupport", "SharedRules",
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "Ledger",
            dependencies: [
                "Audit", "LumenAPI", "Storage", "RPCSupport", "SharedRules", "UpstreamClient",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "ModelRegistry",
            dependencies: [
                "Audit", "LumenAPI", "Storage", "RPCSupport", "SharedRules",
            ],
            swiftSettings: swiftSettings
        ),
        /// The hand-written parsers of the inference path — JSON, server-sent events, multipart
        /// fields — with nothing but NIOCore beneath them, so that the fuzzers build them alone.
        .target(
            name: "WireFormats",
            dependencies: [.product(name: "NIOCore", package: "swift-nio")],
            swiftSettings: swiftSettings
        ),
        /// Where a connection's work runs: on its own event loop (`OnConnectionLoop`,
        /// `EventLoopTaskExecutor`), and how many loops there are (`EventLoopCount`).
        .target(
            name: "ConnectionLoops",
            dependencies: [
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        /// The HTTP/1.1 client the gateway calls upstream providers with (keep-alive per event loop,
        /// TLS, timeouts, streamed bodies with back-pressure).
        .target(
            name: "UpstreamClient",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOTLS", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        /// The HTTP facade: REST/JSON and OpenAI-compatible routes translated into RPC calls.
        .target(
            name: "Gateway",
            dependencies: [
                "LumenAPI", "RPCSupport", "SharedRules", "WireFormats",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "HummingbirdTLS", package: "hummingbird"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                "UpstreamClient", "ConnectionLoops",
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
            ],
            swiftSettings: swiftSettings
        ),
        /// The dashboard's JSON API (`/api`, seeds 000 and 001): sessions, sign-in, the pages' data,
        /// translated into calls made as the person signed in.
        .target(
            name: "Dashboard",
            dependencies: [
                "Gateway", "LumenAPI", "RPCSupport", "SharedRules", "WireFormats", "TemplateViewMacros", "UpstreamClient",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "JWTKit", package: "jwt-kit"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "HummingbirdAuth", package: "hummingbird-auth"),
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Mustache", package: "swift-mustache"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
            ],
            // `Site` links to gateway/dashboard: declared as a resource so that SwiftPM watches
            // its files (a file added there replans the build and reruns the plugin); the pages
            // themselves come from the plugin's embedding, never from the resource bundle.
            resources: [.copy("Site")],
            swiftSettings: swiftSettings,
            plugins: ["EmbedFiles"]
        ),
        /// `@TemplateView`: a dashboard view's table of fields for Mustache, written by the compiler.
        .macro(
            name: "TemplateViewMacros",
            dependencies: [
                .product(name: "SwiftSyntaxMacros", package: "swift-syntax"),
                .product(name: "SwiftCompilerPlugin", package: "swift-syntax"),
            ],
            swiftSettings: swiftSettings
        ),
        /// Builds gateway/dashboard (templates, stylesheet, scripts) into the Dashboard module.
        .plugin(name: "EmbedFiles", capability: .buildTool(), dependencies: ["embed-files"], path: "Plugins/EmbedFiles"),
        .executableTarget(name: "embed-files", path: "Plugins/EmbedFilesTool", swiftSettings: swiftSettings),
        /// Lumen's built-in deterministic model (provider `mock`): answers as an OpenAI upstream
        /// would, in-process, for `--demo` and the tests. Not part of the gateway.
        .target(
            name: "LumenMock",
            dependencies: [
                "Gateway", "SharedRules", "WireFormats",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: swiftSettings
        ),
        /// A deployment's wiring: its configuration (flags, variables, file), which services run
        /// in this process and how each is reached, the startup checks and the lifecycle.
        .target(
            name: "LumenServer",
            dependencies: [
                "LumenMock", "LumenAPI", "Storage", "RPCSupport", "SharedRules", "Accounts", "Conversations", "Keys", "Ledger",
                "ModelRegistry", "Gateway", "Dashboard", "UpstreamClient",
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCInProcessTransport", package: "grpc-swift-2"),
                .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Yams", package: "Yams"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "OTel", package: "swift-otel"),
            ],
            swiftSettings: swiftSettings
        ),
        /// The command line: parses arguments and calls LumenServer.
        .executableTarget(
            name: "lumen",
            dependencies: [
                "LumenServer", "LumenAPI", "ConnectionLoops",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ],
            swiftSettings: swiftSettings
        ),
        /// A fast OpenAI-compatible upstream for the benchmark (bench/run.sh).
        .executableTarget(
            name: "bench-upstream",
            dependencies: ["WireFormats", .product(name: "Hummingbird", package: "hummingbird")],
            path: "bench/MockUpstream",
            swiftSettings: swiftSettings
        ),
        /// Hummingbird in front of Lumen's upstream client with nothing between: the floor under
        /// Lumen's figures (and the same proxy on AsyncHTTPClient, for comparison).
        .executableTarget(
            name: "bench-proxy-floor",
            dependencies: [
                .product(name: "Hummingbird", package: "hummingbird"),
                "UpstreamClient", "ConnectionLoops",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            path: "bench/ProxyFloor",
            swiftSettings: swiftSettings
        ),
        /// The floor under the RPC figures: grpc-swift's HTTP/2 server answering one fixed message.
        .executableTarget(
            name: "bench-rpc-floor",
            dependencies: [
                "LumenAPI",
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
                .product(name: "GRPCProtobuf", package: "grpc-swift-protobuf"),
            ],
            path: "bench/RPCFloor",
            swiftSettings: swiftSettings
        ),
        /// The collector of the benchmark's "tracing on" runs: takes OTLP/gRPC exports without decoding them.
        .executableTarget(
            name: "bench-otlp-sink",
            dependencies: [
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
            ],
            path: "bench/OTLPSink",
            swiftSettings: swiftSettings
        ),
        /// Synthetic usage for the benchmarks' data sets, loaded through the ledger's bulk loader.
        .target(
            name: "bench-synthetic",
            dependencies: ["Ledger", "LumenAPI", "Storage"],
            path: "bench/Synthetic",
            swiftSettings: swiftSettings
        ),
        /// The ledger at scale: usage and billing queries over millions of lines, hold+settle throughput.
        .executableTarget(
            name: "bench-ledger",
            dependencies: [
                "bench-synthetic", "Ledger", "Gateway", "RPCSupport", "SharedRules", "LumenAPI", "Storage",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "bench/LedgerBench",
            swiftSettings: swiftSettings
        ),
        /// The dashboard's pages for a person and a client with a million usage lines each.
        .executableTarget(
            name: "bench-pages",
            dependencies: [
                "bench-synthetic", "LumenServer", "Ledger", "LumenAPI", "SharedRules", "Storage",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOFoundationCompat", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            path: "bench/PageBench",
            swiftSettings: swiftSettings
        ),

        // Fuzzing (scripts/fuzz.sh): libFuzzer targets over WireFormats, and the checks they share
        // with WireFormatsTests, which replays the committed corpus in every test run.
        .target(
            name: "FuzzChecks",
            dependencies: ["WireFormats", .product(name: "NIOCore", package: "swift-nio")],
            path: "Fuzz/Checks",
            swiftSettings: swiftSettings
        ),
        .executableTarget(name: "fuzz-json", dependencies: ["FuzzChecks"], path: "Fuzz/JSON", swiftSettings: swiftSettings),
        .executableTarget(name: "fuzz-sse", dependencies: ["FuzzChecks"], path: "Fuzz/SSE", swiftSettings: swiftSettings),
        .executableTarget(
            name: "fuzz-multipart", dependencies: ["FuzzChecks"], path: "Fuzz/Multipart", swiftSettings: swiftSettings),
        .executableTarget(
            name: "fuzz-eventstream", dependencies: ["FuzzChecks"], path: "Fuzz/EventStream", swiftSettings: swiftSettings),

        // Tests
        /// Services over the in-process transport, with an organisation and a management token, for tests.
        .target(
            name: "LumenTesting",
            dependencies: [
                "LumenAPI", "RPCSupport", "SharedRules", "Storage", "Accounts", "Conversations", "Keys", "Ledger", "ModelRegistry",
                "Gateway", "LumenServer",
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCInProcessTransport", package: "grpc-swift-2"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
            ],
            path: "Tests/LumenTesting",
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "UpstreamClientTests",
            dependencies: [
                "UpstreamClient",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ],
            swiftSettings: swiftSettings
        ),
        /// What the stores promise: every SQLite commit synced; PostgreSQL URLs and migrations.
        .testTarget(
            name: "StorageTests",
            dependencies: [
                "Storage", "LumenTesting", .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "PostgresNIO", package: "postgres-nio"), .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "WireFormatsTests",
            dependencies: ["WireFormats", "FuzzChecks"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "KeysTests",
            dependencies: ["Keys", "LumenTesting", .product(name: "GRPCCore", package: "grpc-swift-2")],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "ModelRegistryTests",
            dependencies: ["ModelRegistry", "LumenTesting", .product(name: "GRPCCore", package: "grpc-swift-2")],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "LedgerTests",
            dependencies: [
                "Ledger", "LumenTesting", "UpstreamClient", .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRDB", package: "GRDB.swift"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "ConversationsTests",
            dependencies: [
                "Accounts", "LumenTesting", "RPCSupport", "Storage", .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "AccountsTests",
            dependencies: [
                "Accounts", "LumenTesting", "RPCSupport", .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: swiftSettings
        ),
        /// Who may do what, decided by the services: seed 000's table over the RPC API.
        .testTarget(
            name: "AccessTests",
            dependencies: ["LumenTesting", "RPCSupport", "LumenAPI", .product(name: "GRPCCore", package: "grpc-swift-2")],
            swiftSettings: swiftSettings
        ),
        /// The dashboard's pages: templates render, escape and format as the API's figures.
        .testTarget(
            name: "DashboardTests",
            dependencies: ["Dashboard", "LumenAPI", "SharedRules"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "GatewayTests",
            dependencies: [
                "Gateway", "LumenMock", "LumenTesting", "UpstreamClient",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "lumenTests",
            dependencies: [
                "lumen", "LumenServer", "LumenTesting",
                .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: swiftSettings
        ),
    ]
)
