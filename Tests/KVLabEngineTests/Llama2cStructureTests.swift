import Foundation
@testable import KVLabEngine
import KVLabFoundation
@testable import KVLabFoundation
import KVLabMethods
@testable import KVLabMethods
@testable import KVLabRun
import Testing

/// llama2.c checkpoints have no offsets: the header's shapes must account for the file exactly.
@Suite(.enabled(if: Fixtures.haveStories, Comment(rawValue: Fixtures.skipMessage)))
struct Llama2cStructureTests {
    let modelBytes = FileManager.default.contents(atPath: Fixtures.storiesModel) ?? Data()

    private func problem(_ data: Data) -> String? {
        do {
            _ = try data.withUnsafeBytes { try Llama2cModel.parseWeights(ByteReader($0), name: "bad") }
            return nil
        } catch {
            return "\(error)"
        }
    }

    @Test func sharedHeaderWithASeparateClassifierIsRejected() throws {
        let classifier = Data(count: 512 * 64 * 4)
        let message = problem(modelBytes + classifier)
        #expect(message?.contains("131072 unexpected bytes after the last tensor") == true, "got: \(message ?? "no error")")
        #expect(message?.contains("they fit a separate classifier, which a negative vocab_size would announce") == true)
    }

    @Test func separateHeaderWithoutAClassifierIsRejected() throws {
        var data = modelBytes
        data.patch(Int32(-512), at: 20)
        let message = problem(data)
        #expect(message?.contains("separate classifier) needs") == true, "got: \(message ?? "no error")")
        #expect(message?.contains("the size fits a shared classifier, but the negative vocab_size announces a separate one") == true)
    }

    @Test func garbageWithoutATokenizerIsReportedAsABadCheckpoint() throws {
        // Before the tokenizer is looked for, so the message names what is wrong with the file itself.
        let directory = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("model.bin").path
        try Data(modelBytes.prefix(5000)).write(to: URL(fileURLWithPath: path))
        let message = fileErrorProblem { _ = try ModelLoader.load(path: path) }
        #expect(message?.contains("needs") == true && message?.contains("tokenizer") == false, "got: \(message ?? "no error")")
    }
}
