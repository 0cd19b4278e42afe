import Foundation
import Testing

/// llama.cpp's source tree and tools as built by scripts/llama-cpp (nil when that fails, e.g.
/// without cmake or a compiler; the tests needing them then skip).
enum LlamaCpp {
    static let home: String? = {
        let process = Process()
        process.executableURL = Fixtures.packageRoot.appendingPathComponent("scripts/llama-cpp")
        process.currentDirectoryURL = Fixtures.packageRoot
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = FileHandle.nullDevice
        guard (try? process.run()) != nil else { return nil }
        let output = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0,
              let path = String(decoding: output, as: UTF8.self).split(separator: "\n").last.map(String.init) else { return nil }
        return path.hasPrefix("/") ? path : Fixtures.packageRoot.appendingPathComponent(path).path
    }()
    /// The built tools' folder, when the build got as far as them.
    static let binaries: String? = home.map { $0 + "/build/bin" }.flatMap {
        FileManager.default.isExecutableFile(atPath: $0 + "/llama-quantize") ? $0 : nil
    }
    static let skipMessage = "skipped: llama.cpp could not be built by scripts/llama-cpp (needs cmake, a C++ compiler and network for the sdist)"

    static func vocab(_ name: String) -> String? {
        home.map { "\($0)/models/ggml-vocab-\(name).gguf" }
    }

    /// `llama-tokenize`'s ids for `text` (special tokens parsed, no BOS added).
    static func tokenize(_ vocab: String, _ text: String) throws -> [Int] {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try #require(binaries) + "/llama-tokenize")
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("kvlab-tokenize-\(UUID().uuidString).txt")
        try Data(text.utf8).write(to: file)
        defer { try? FileManager.default.removeItem(at: file) }
        process.arguments = ["-m", vocab, "-f", file.path, "--ids", "--log-disable", "--no-bos"]
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = FileHandle.nullDevice
        try process.run()
        let output = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let line = String(decoding: output, as: UTF8.self).split(separator: "\n").last.map(String.init) ?? ""
        let inner = line.trimmingCharacters(in: CharacterSet(charactersIn: "[] \n"))
        return inner.isEmpty ? [] : inner.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
    }

    /// Runs a tool, returning its standard output; throws with the end of its log when it fails.
    static func run(_ tool: String, _ arguments: [String]) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try #require(binaries) + "/" + tool)
        process.arguments = arguments
        // The tools log tens of KiB to stderr: a file, so a full pipe cannot stall them.
        let logURL = FileManager.default.temporaryDirectory.appendingPathComponent("kvlab-\(tool)-\(UUID()).log")
        FileManager.default.createFile(atPath: logURL.path, contents: nil)
        defer { try? FileManager.default.removeItem(at: logURL) }
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = try FileHandle(forWritingTo: logURL)
        process.standardInput = FileHandle.nullDevice
        try process.run()
        let output = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            let log = (try? Data(contentsOf: logURL)) ?? Data()
            throw Python.Failure(description: "\(tool) \(arguments.joined(separator: " ")) exited \(process.terminationStatus): "
                + String(decoding: log.suffix(2000), as: UTF8.self))
        }
        return String(decoding: output, as: UTF8.self)
    }
}
