import Foundation
@testable import KVLabEngine
@testable import KVLabFoundation
@testable import KVLabMethods
@testable import KVLabRun
import Testing

/// Paths to `../shared` (models, reference outputs), read at run time, never committed.
enum Fixtures {
    static let packageRoot = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let shared = packageRoot.deletingLastPathComponent().appendingPathComponent("shared")
    static let storiesModel = shared.appendingPathComponent("models/stories260K/stories260K.bin").path
    static let storiesTokenizer = shared.appendingPathComponent("models/stories260K/tok512.bin").path
    static let referencePath = shared.appendingPathComponent("reference/stories260K.json").path
    static let corpus = shared.appendingPathComponent("corpus/tinyshakespeare.txt").path

    /// The held-out part of the corpus, split as scripts/train_default_model.py splits it: after
    /// the last newline before 90% of the characters.
    static func heldOut(_ text: String) -> String {
        let characters = Array(text.unicodeScalars)
        var cut = characters.count * 9 / 10
        while cut > 0, characters[cut - 1] != "\n" { cut -= 1 }
        var result = String.UnicodeScalarView()
        result.append(contentsOf: characters[cut...])
        return String(result)
    }

    /// Whether the stories260K fixture and its reference outputs are present.
    static var haveStories: Bool {
        FileManager.default.fileExists(atPath: storiesModel) && FileManager.default.fileExists(atPath: referencePath)
    }

    /// Why stories260K tests are skipped when `../shared` is absent.
    static let skipMessage = "skipped: ../shared/models/stories260K or ../shared/reference is absent"

    /// stories260K loaded once per test process (loading is deterministic, the weights immutable).
    static let stories: LoadedModel? = haveStories
        ? try? ModelLoader.load(path: storiesModel, tokenizerPath: storiesTokenizer) : nil

    /// A fresh temporary directory removed by the caller.
    static func temporaryDirectory() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("kvlab-test-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }
}

/// The independent implementation's outputs in `../shared/reference/stories260K.json`.
struct Reference: Decodable {
    struct Encoding: Decodable { var text: String; var ids: [Int] }
    struct Greedy: Decodable { var ids: [Int]; var text: String }
    struct Policies: Decodable { var values: [String: Double] }
    var encode: [Encoding]
    var greedy: Greedy
    var logits: [String: [Float]]
    var mean_nll: Double
    var policy_mean_nll: Policies

    static let shared: Reference? = {
        guard let data = FileManager.default.contents(atPath: Fixtures.referencePath) else { return nil }
        return try? JSONDecoder().decode(Reference.self, from: data)
    }()
}
