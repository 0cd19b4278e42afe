// swift-tools-version: 6.1
import PackageDescription

let package = Package(
    name: "kvlab",
    products: [
        .executable(name: "kvlab", targets: ["kvlab"]),
        .library(name: "KVLabEngine", targets: ["KVLabEngine"]),
        .library(name: "KVLabHardware", targets: ["KVLabHardware"]),
        .library(name: "KVLabSession", targets: ["KVLabSession"]),
        .library(name: "KVLabTUI", targets: ["KVLabTUI"]),
        .library(name: "KVLabApp", targets: ["KVLabApp"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
    ],
    targets: [
        // MARK: - System libraries (the only C code kvlab links)
        .systemLibrary(
            name: "COpenBLAS",
            pkgConfig: "openblas",
            providers: [.apt(["libopenblas-dev"])]
        ),
        .systemLibrary(
            name: "CNCursesW",
            pkgConfig: "ncursesw",
            providers: [.apt(["libncursesw5-dev"])]
        ),

        // MARK: - Engine: tensors, kernels, model formats, tokenizers, KV cache, runtime
        .target(
            name: "KVLabEngine",
            dependencies: ["COpenBLAS"],
            exclude: ["Resources/MODEL-CARD.md"],
            resources: [.copy("Resources/kvlab-shakespeare.gguf")],
            // Kernels are compiled for the build machine's vector units (as llama.cpp's native
            // builds are) and optimized in debug builds too, so tests run at a useful speed.
            swiftSettings: [
                .unsafeFlags(["-Xcc", "-march=native"]),
                .unsafeFlags(["-O"], .when(configuration: .debug)),
            ]
        ),

        // MARK: - Hardware: device profiles, target shapes, roofline projection
        .target(
            name: "KVLabHardware",
            dependencies: ["KVLabEngine"],
            resources: [.copy("Resources/devices"), .copy("Resources/targets")],
            // The this-machine bandwidth probe is a SIMD loop: optimized in debug builds too, or it
            // would measure the debug build instead of the memory.
            swiftSettings: [.unsafeFlags(["-O"], .when(configuration: .debug))]
        ),

        // MARK: - Sessions: the *.kvlab.jsonl format, recording, replay, export (tokens projected with KVLabHardware)
        .target(
            name: "KVLabSession",
            dependencies: ["KVLabEngine", "KVLabHardware"],
            // The demo scenarios ship beside the binary (DemoCatalog.bundleName).
            resources: [.copy("../../sessions/demos")]
        ),

        // MARK: - Terminal UI: cells, layout, widgets, themes (no curses), and the curses backend
        .target(
            name: "KVLabTUI",
            // The repository's themes/ ship beside the binary (ThemeCatalog.bundleName).
            resources: [.copy("../../themes")]
        ),
        .target(name: "KVLabCurses", dependencies: ["CNCursesW", "KVLabTUI"]),

        // MARK: - The workbench: app state, actions, panels, engine worker, run loop (no curses)
        .target(name: "KVLabApp", dependencies: ["KVLabEngine", "KVLabHardware", "KVLabSession", "KVLabTUI"]),

        // MARK: - Command-line interface
        .executableTarget(
            name: "kvlab",
            dependencies: [
                "KVLabEngine",
                "KVLabHardware",
                "KVLabSession",
                "KVLabTUI",
                "KVLabCurses",
                "KVLabApp",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),

        // MARK: - Tests
        // Shared by the test targets: the snapshot comparison.
        .target(name: "KVLabTestSupport", dependencies: ["KVLabTUI"], path: "Tests/KVLabTestSupport"),
        .testTarget(name: "KVLabEngineTests", dependencies: ["KVLabEngine"]),
        .testTarget(name: "KVLabHardwareTests", dependencies: ["KVLabHardware", "KVLabEngine"]),
        .testTarget(name: "KVLabSessionTests", dependencies: ["KVLabSession", "KVLabHardware", "KVLabEngine"]),
        .testTarget(name: "KVLabTUITests", dependencies: ["KVLabTUI", "KVLabTestSupport"], exclude: ["Snapshots"]),
        .testTarget(name: "KVLabCursesTests", dependencies: ["KVLabCurses", "KVLabTUI", "CNCursesW"]),
        .testTarget(name: "KVLabAppTests", dependencies: ["KVLabApp", "KVLabTUI", "KVLabEngine", "KVLabHardware", "KVLabSession", "KVLabTestSupport"],
                    exclude: ["Snapshots"]),
        .testTarget(name: "CShimTests", dependencies: ["CNCursesW", "COpenBLAS"]),
        .testTarget(name: "KVLabCLITests", dependencies: ["kvlab"], exclude: ["Support"]),
    ]
)
