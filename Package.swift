// swift-tools-version:6.1
import PackageDescription

// Targets own one thing each and depend inward:
//   CZMQ -> ZMQ                      (libzmq's C API, then a thin Swift wrapper)
//   SLAMJSON                         (a strict JSON reader/writer for the wire and event bodies)
//   SLAMDomain                       (pure deciders; imports neither GRDB nor ZeroMQ)
//   SLAMSchemas (Schemas/)           (the SQL of the store and the JSON Schemas, as resources)
//   CWalBuffer                       (a SQLite VFS shim: a transaction's WAL frames in one write)
//   SLAMStore                        (the SQLite event store, outbox, idempotency records)
//   SLAMProjections (Projections/)   (read-model tables and the code folding events into them)
//   SLAMServer                       (writer, ROUTER I/O, queries, relay)
//   SLAMClient                       (a small ZeroMQ client used by the CLI, bench and tests)
//   slam                             (the CLI: thin wiring over the libraries)
let package = Package(
    name: "SLAM",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "slam", targets: ["slam"]),
    ],
    dependencies: [
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.2.0"),
    ],
    targets: [
        .systemLibrary(
            name: "CZMQ",
            pkgConfig: "libzmq",
            providers: [.apt(["libzmq3-dev"])]
        ),
        .target(name: "ZMQ", dependencies: ["CZMQ"]),
        .target(name: "SLAMJSON"),
        .target(name: "CWalBuffer", linkerSettings: [.linkedLibrary("sqlite3")]),
        .target(name: "SLAMDomain", dependencies: ["SLAMJSON"]),
        .target(
            name: "SLAMSchemas",
            path: "Schemas",
            exclude: ["README.md"],
            sources: ["SLAMSchemas.swift"],
            resources: [.copy("sql"), .copy("json")]
        ),
        .target(
            name: "SLAMStore",
            dependencies: ["CWalBuffer", "SLAMJSON", "SLAMDomain", "SLAMSchemas", .product(name: "GRDB", package: "GRDB.swift")]
        ),
        .target(
            name: "SLAMProjections",
            dependencies: ["SLAMDomain", "SLAMStore", .product(name: "GRDB", package: "GRDB.swift")],
            path: "Projections",
            exclude: ["README.md"],
            resources: [.copy("sql")]
        ),
        .target(
            name: "SLAMServer",
            dependencies: ["ZMQ", "CWalBuffer", "SLAMJSON", "SLAMDomain", "SLAMStore", "SLAMProjections",
                           .product(name: "GRDB", package: "GRDB.swift")]
        ),
        .target(name: "SLAMClient", dependencies: ["ZMQ", "SLAMJSON"]),
        .target(
            name: "SLAMBench",
            dependencies: ["SLAMClient", "SLAMJSON", "SLAMDomain", "ZMQ", .product(name: "Histogram", package: "hdrhistogram-swift")]
        ),
        .executableTarget(
            name: "slam",
            dependencies: ["SLAMServer", "SLAMClient", "SLAMStore", "SLAMJSON", "SLAMProjections", "SLAMBench",
                           .product(name: "GRDB", package: "GRDB.swift"),
                           .product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),
        .target(
            name: "SLAMTesting",
            dependencies: ["SLAMServer", "SLAMClient", "SLAMDomain", "SLAMStore", "SLAMJSON", "ZMQ"]
        ),
        .testTarget(name: "ZMQTests", dependencies: ["ZMQ"]),
        .testTarget(name: "SLAMJSONTests", dependencies: ["SLAMJSON"]),
        .testTarget(name: "SLAMDomainTests", dependencies: ["SLAMDomain", "SLAMJSON"]),
        .testTarget(name: "SLAMStoreTests", dependencies: ["SLAMStore", "SLAMSchemas", "SLAMTesting", "SLAMDomain", "SLAMJSON",
                                                           .product(name: "GRDB", package: "GRDB.swift")]),
        .testTarget(name: "SLAMServerTests", dependencies: ["SLAMServer", "SLAMClient", "SLAMTesting", "SLAMJSON", "ZMQ", "CWalBuffer",
                                                            .product(name: "GRDB", package: "GRDB.swift")]),
        .testTarget(name: "SLAMEventsTests", dependencies: ["SLAMServer", "SLAMClient", "SLAMTesting", "SLAMJSON", "SLAMStore", "ZMQ",
                                                            .product(name: "GRDB", package: "GRDB.swift")]),
        .testTarget(name: "SLAMRebuildTests", dependencies: ["SLAMServer", "SLAMClient", "SLAMTesting", "SLAMJSON", "SLAMStore",
                                                             "SLAMProjections", "SLAMDomain",
                                                             .product(name: "GRDB", package: "GRDB.swift")]),
        .testTarget(name: "SLAMBenchTests", dependencies: ["SLAMBench", "SLAMClient", "SLAMTesting", "SLAMJSON", "SLAMDomain", "SLAMServer",
                                                           .product(name: "GRDB", package: "GRDB.swift")]),
        .testTarget(name: "SLAMTimeTests", dependencies: ["SLAMServer", "SLAMClient", "SLAMTesting", "SLAMJSON", "SLAMStore",
                                                          "SLAMDomain", "ZMQ", .product(name: "GRDB", package: "GRDB.swift")]),
    ],
    swiftLanguageModes: [.v5]
)
