// swift-tools-version: 6.1
import PackageDescription

// The Swift targets are compiled for any x86-64 (or arm64) CPU, so a binary runs, and computes the
// same results, wherever it is copied: the vector paths that need newer instructions live in
// CKVLabKernels, chosen at run time. Optimized in debug builds too, so tests run at a useful speed.
let optimized: [SwiftSetting] = [
    .unsafeFlags(["-O"], .when(configuration: .debug)),
]

let package = Package(
    name: "kvlab",
    products: [
        .executable(name: "kvlab", targets: ["kvlab"]),
        .library(name: "KVLabFoundation", targets: ["KVLabFoundation"]),
        .library(name: "KVLabMethods", targets: ["KVLabMethods"]),
        .library(name: "KVLabEngine", targets: ["KVLabEngine"]),
        .library(name: "KVLabRun", targets: ["KVLabRun"]),
        .library(name: "KVLabHardware", targets: ["KVLabHardware"]),
        .library(name: "KVLabSession", targets: ["KVLabSession"]),
        .library(name: "KVLabTUI", targets: ["KVLabTUI"]),
        .library(name: "KVLabApp", targets: ["KVLabApp"]),
        .library(name: "KVLabSweep", targets: ["KVLabSweep"]),
        .library(name: "KVLabServe", targets: ["KVLabServe"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-crypto", "3.12.3"..<"5.0.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
    ],
    targets: [
        // MARK: - C: the kernels and curses (OpenBLAS is opened at run time: Kernels/BLAS.swift says why)
        // kvlab's own C: the weight kernels (integer dot products, compiled for each vector path
        // and chosen at run time from the CPU's features) and their worker pool, optimized in
        // debug builds too.
        .target(
            name: "CKVLabKernels",
            cSettings: [.unsafeFlags(["-O3"])],
            linkerSettings: [.linkedLibrary("pthread")]
        ),
        .systemLibrary(
            name: "CNCursesW",
            pkgConfig: "ncursesw",
            providers: [.apt(["libncursesw5-dev"])]
        ),

        // MARK: - Foundation: one JSON reader, file errors, byte sizes, hashing, resource bundles
        .target(name: "KVLabFoundation", dependencies: [.product(name: "Crypto", package: "swift-crypto")]),

        // MARK: - Methods: KV method specs and their algorithms, quantization formats, and the value
        // types a projection shares with the engine (model config, cache layout, residency, IO ledger)
        .target(
            name: "KVLabMethods",
            dependencies: ["KVLabFoundation"],
            // Quantization codecs run in every decode step: built as the engine's kernels are.
            swiftSettings: optimized
        ),

        // MARK: - Engine: tensors, kernels (the only BLAS user), model formats, tokenizers, KV cache, forward pass
        .target(
            name: "KVLabEngine",
            dependencies: ["KVLabFoundation", "KVLabMethods", "CKVLabKernels"],
            swiftSettings: optimized
        ),

        // MARK: - Run: the live-run loop, the teacher-forced follower, streaming evaluation,
        // checkpoints, and kvlab's embedded default model
        .target(
            name: "KVLabRun",
            dependencies: ["KVLabFoundation", "KVLabMethods", "KVLabEngine", "KVLabHardware", .product(name: "Crypto", package: "swift-crypto")],
            exclude: ["Resources/MODEL-CARD.md"],
            resources: [.copy("Resources/kvlab-shakespeare.gguf")]
        ),

        // MARK: - Hardware: device profiles, target shapes, roofline projection
        .target(
            name: "KVLabHardware",
            dependencies: ["KVLabFoundation", "KVLabMethods"],
            resources: [.copy("Resources/devices"), .copy("Resources/targets")],
            // The this-machine bandwidth probe is a SIMD loop: optimized in debug builds too, or it
            // would measure the debug build instead of the memory.
            swiftSettings: [.unsafeFlags(["-O"], .when(configuration: .debug))]
        ),

        // MARK: - Sweeps: grids of eval cells, their results store, local and Slurm executors, reports
        .target(
            name: "KVLabSweep",
            dependencies: [
                "KVLabFoundation", "KVLabMethods", "KVLabEngine", "KVLabRun", "KVLabHardware",
                .product(name: "Crypto", package: "swift-crypto"), .product(name: "Yams", package: "Yams"),
            ]
        ),

        // MARK: - Serving: arrivals (seeded stream, trace files), the continuous-batching scheduler
        // over one page pool, its metrics, and serve recordings
        .target(
            name: "KVLabServe",
            dependencies: ["KVLabFoundation", "KVLabMethods", "KVLabEngine", "KVLabRun", "KVLabHardware", "KVLabSession"]
        ),

        // MARK: - Sessions: the *.kvlab.jsonl format, recording, replay, export (tokens projected with KVLabHardware)
        .target(
            name: "KVLabSession",
            dependencies: [
                "KVLabFoundation", "KVLabMethods", "KVLabEngine", "KVLabRun", "KVLabHardware",
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            // The demo scenarios ship beside the binary (DemoCatalog.bundleName).
            resources: [.copy("../../sessions/demos")]
        ),

        // MARK: - Terminal UI: cells, layout, widgets, themes (no curses), and the curses backend
        .target(
            name: "KVLabTUI",
            // KVLabFoundation for its file writing (snapshots), no more.
            dependencies: ["KVLabFoundation"],
            // The repository's themes/ ship beside the binary (ThemeCatalog.bundleName).
            resources: [.copy("../../themes")]
        ),
        .target(name: "KVLabCurses", dependencies: ["CNCursesW", "KVLabTUI"]),

        // MARK: - The workbench: app state, actions, panels, engine worker, run loop (no curses), and
        // the Pareto view of a sweep store
        .target(
            name: "KVLabApp",
            dependencies: ["KVLabFoundation", "KVLabMethods", "KVLabEngine", "KVLabRun", "KVLabHardware", "KVLabSession", "KVLabTUI", "KVLabSweep", "KVLabServe"]
        ),

        // MARK: - Command-line interface
        .executableTarget(
            name: "kvlab",
            dependencies: [
                "KVLabFoundation",
                "KVLabMethods",
                "KVLabEngine",
                "KVLabRun",
                "KVLabHardware",
                "KVLabSession",
                "KVLabTUI",
                "KVLabCurses",
                "KVLabApp",
                "KVLabSweep",
                "KVLabServe",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),

        // MARK: - Fuzzer: seeded mutations of every format kvlab reads, each read in a child process
        .executableTarget(
            name: "kvlab-fuzz",
            dependencies: ["KVLabFoundation", "KVLabMethods", "KVLabEngine", "KVLabRun", "KVLabHardware", "KVLabSession", "KVLabTUI", "KVLabSweep"]
        ),

        // MARK: - Tests
        // Shared by the test targets: the snapshot comparison.
        .target(name: "KVLabTestSupport", dependencies: ["KVLabTUI"], path: "Tests/KVLabTestSupport"),
        .testTarget(
            name: "KVLabEngineTests",
            dependencies: ["KVLabFoundation", "KVLabMethods", "KVLabEngine", "CKVLabKernels", "KVLabRun", .product(name: "Crypto", package: "swift-crypto")]
        ),
        .testTarget(name: "KVLabHardwareTests", dependencies: ["KVLabHardware", "KVLabFoundation", "KVLabMethods", "KVLabEngine", "KVLabRun"]),
        .testTarget(name: "KVLabSessionTests", dependencies: ["KVLabSession", "KVLabHardware", "KVLabFoundation", "KVLabMethods", "KVLabEngine", "KVLabRun"]),
        .testTarget(name: "KVLabTUITests", dependencies: ["KVLabTUI", "KVLabTestSupport"], exclude: ["Snapshots"]),
        .testTarget(name: "KVLabCursesTests", dependencies: ["KVLabCurses", "KVLabTUI", "CNCursesW"]),
        .testTarget(
            name: "KVLabAppTests",
            dependencies: ["KVLabApp", "KVLabTUI", "KVLabFoundation", "KVLabMethods", "KVLabEngine", "KVLabRun", "KVLabHardware", "KVLabSession", "KVLabSweep",
                           "KVLabTestSupport"],
            exclude: ["Snapshots"]
        ),
        .testTarget(name: "CShimTests", dependencies: ["CNCursesW"]),
        .testTarget(name: "KVLabCLITests", dependencies: ["kvlab"], exclude: ["Support"]),
        .testTarget(name: "KVLabFuzzTests", dependencies: ["kvlab-fuzz"]),
        .testTarget(name: "KVLabServeTests", dependencies: ["KVLabServe", "KVLabRun", "KVLabMethods", "KVLabEngine", "KVLabFoundation"]),
        .testTarget(name: "KVLabSweepTests", dependencies: ["KVLabSweep", "KVLabRun", "KVLabMethods"]),
    ]
)
