import Foundation
import Testing

/// The committed fuzzer at CI size: every format, 200 seeded inputs each, no crash, no hang and
/// no structurally corrupt input accepted (README "Fuzzing" has the by-hand run of 10,000 per format).
@Suite struct FuzzTests {
    static let packageRoot = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// The kvlab-fuzz binary built beside the test bundle.
    static let binary: String = {
        let besideTests = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("kvlab-fuzz").path
        if FileManager.default.isExecutableFile(atPath: besideTests) { return besideTests }
        return packageRoot.appendingPathComponent(".build/debug/kvlab-fuzz").path
    }()

    static let formats = ["gguf", "llama2c", "llama2c-tokenizer", "safetensors", "hf-json", "session", "theme", "device", "target"]

    static func run(_ arguments: [String]) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = arguments
        let out = Pipe()
        process.standardOutput = out
        process.standardError = out
        try process.run()
        let output = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: output, as: UTF8.self))
    }

    /// The figures row of `format`: inputs, clean, unclean, crashes, hangs, accepted, corrupt, corrupt accepted.
    static func figures(_ output: String, _ format: String) -> [Int]? {
        for line in output.split(separator: "\n") {
            let cells = line.split(separator: " ")
            if cells.first.map(String.init) == format { return cells.dropFirst().compactMap { Int($0) } }
        }
        return nil
    }

    @Test func everyFormatAtCISizeHasNoCrashHangOrCorruptAccepted() throws {
        let start = Date()
        let result = try Self.run(["all", "--count", "200", "--seed", "1", "--jobs", "2"])
        let seconds = Date().timeIntervalSince(start)
        #expect(result.status == 0, "\(result.output)")
        for format in Self.formats {
            let row = try #require(Self.figures(result.output, format), "no row for \(format) in \(result.output)")
            try #require(row.count == 8)
            #expect(row[0] == 200, "\(format) inputs")
            #expect(row[1] + row[2] + row[3] + row[4] + row[5] == 200, "\(format): every input has one outcome")
            #expect(row[3] == 0 && row[4] == 0, "\(format): crashes \(row[3]), hangs \(row[4])")
            #expect(row[7] == 0, "\(format): \(row[7]) corrupt inputs accepted")
            #expect(row[6] > 0, "\(format) made no known-corrupt input")
        }
        #expect(seconds < 120, "took \(seconds) s")
    }

    @Test func aSeedReproducesItsInputs() throws {
        let first = try Self.run(["gguf", "--count", "40", "--seed", "7"])
        let second = try Self.run(["gguf", "--count", "40", "--seed", "7"])
        #expect(Self.figures(first.output, "gguf") == Self.figures(second.output, "gguf"))
        let one = try Self.run(["gguf", "--seed", "7", "--only", "3"])
        let again = try Self.run(["gguf", "--seed", "7", "--only", "3"])
        #expect(one.status == 0)
        #expect(one.output.split(separator: "\n").first == again.output.split(separator: "\n").first)
    }
}
