import Foundation
@testable import KVLabEngine
import KVLabFoundation
@testable import KVLabFoundation
import KVLabMethods
@testable import KVLabMethods
@testable import KVLabRun
import Testing


/// Small random llama models built in memory, so format tests run without `../shared`.
enum TinyModel {
    static let vocabularySize = 300

    /// A random model: dim 64, 2 layers, 4 heads over 2 KV heads, hidden 128, vocabulary 300.
    static func make(seed: UInt64 = 1, type: WeightType = .f32, tied: Bool = false,
                     tokenizer: TokenizerSpec = sentencePieceSpec()) throws -> LoadedModel {
        var rng = Xoshiro256(seed: seed)
        let config = ModelConfig(name: "tiny-\(seed)", dim: 64, hiddenDim: 128, layerCount: 2, headCount: 4,
                                 kvHeadCount: 2, vocabSize: tokenizer.tokens.count, contextLength: 256,
                                 ropeTheta: 10000, rmsEps: 1e-5)
        func matrix(_ rows: Int, _ cols: Int) -> WeightMatrix {
            let values = (0..<(rows * cols)).map { _ in Float.random(in: -0.1...0.1, using: &rng) }
            return WeightMatrix(rows: rows, cols: cols, values: values, type: type)
        }
        func norm() -> [Float] { (0..<config.dim).map { _ in Float.random(in: 0.8...1.2, using: &rng) } }
        let embedding = matrix(config.vocabSize, config.dim)
        let layers = (0..<config.layerCount).map { _ in
            LayerWeights(attentionNorm: norm(), query: matrix(config.dim, config.dim), key: matrix(config.kvDim, config.dim),
                         value: matrix(config.kvDim, config.dim), attentionOutput: matrix(config.dim, config.dim),
                         ffnNorm: norm(), ffnGate: matrix(config.hiddenDim, config.dim),
                         ffnDown: matrix(config.dim, config.hiddenDim), ffnUp: matrix(config.hiddenDim, config.dim))
        }
        let output = tied ? embedding : matrix(config.vocabSize, config.dim)
        let weights = try ModelWeights(config: config, tokenEmbedding: embedding, layers: layers, outputNorm: norm(), output: output)
        return LoadedModel(weights: weights, tokenizer: try tokenizer.makeTokenizer(), format: .gguf, path: "tiny", tensors: [])
    }

    /// A SentencePiece vocabulary of 300: `<unk>`, `<s>`, `</s>`, 256 byte tokens, then pieces whose
    /// scores fall with their rank, as SentencePiece's BPE trainer assigns them.
    static func sentencePieceSpec() -> TokenizerSpec {
        var tokens = ["<unk>", "<s>", "</s>"]
        var types: [TokenType] = [.unknown, .control, .control]
        var scores: [Float] = [0, 0, 0]
        for byte in 0..<256 {
            tokens.append(String(format: "<0x%02X>", byte))
            types.append(.byte)
            scores.append(0)
        }
        let pieces = ["▁t", "he", "▁the", "in", "er", "an", "▁a", "on", "re", "▁s", "at", "en", "nd", "▁w", "ed",
                      "▁o", "it", "ou", "is", "▁and", "ing", "▁h", "or", "▁b", "es", "▁f", "▁c", "ar", "▁to", "as",
                      "▁e", "▁", "e", "t", "a", "o", "h", "n", "s", "i", "r"]
        for (rank, piece) in pieces.enumerated() {
            tokens.append(piece)
            types.append(.normal)
            scores.append(-Float(rank))
        }
        return TokenizerSpec(model: .sentencePiece, tokens: tokens, scores: scores, types: types,
                             bosID: 1, eosID: 2, unknownID: 0, addBOS: true)
    }

    /// A byte-level BPE vocabulary of 300: the 256 byte characters, 41 merges, 3 special tokens.
    static func byteLevelSpec(preTokenizer: String = "default") -> TokenizerSpec {
        var tokens = (0..<256).map { byteCharacter(UInt8($0)) }
        let pairs = [("Ġ", "t"), ("h", "e"), ("Ġt", "he"), ("i", "n"), ("e", "r"), ("a", "n"), ("Ġ", "a"), ("o", "n"),
                     ("r", "e"), ("Ġ", "s"), ("a", "t"), ("e", "n"), ("n", "d"), ("Ġ", "w"), ("e", "d"), ("Ġ", "o"),
                     ("i", "t"), ("o", "u"), ("i", "s"), ("Ġa", "nd"), ("in", "g"), ("Ġ", "h"), ("o", "r"), ("Ġ", "b"),
                     ("e", "s"), ("Ġ", "f"), ("Ġ", "c"), ("a", "r"), ("Ġt", "o"), ("a", "s"), ("Ġ", "e"), ("Ġ", "1"),
                     ("Ġ", "2"), ("1", "2"), ("Ġ", "m"), ("Ġ", "p"), ("l", "l"), ("Ġ", "d"), ("Ġ", "l"), ("Ġ", "n"),
                     ("Ġ", "re")]
        var merges: [String] = []
        for (left, right) in pairs {
            merges.append("\(left) \(right)")
            tokens.append(left + right)
        }
        tokens += ["<|begin_of_text|>", "<|end_of_text|>", "<|pad|>"]
        let types = tokens.indices.map { $0 >= 297 ? TokenType.control : .normal }
        return TokenizerSpec(model: .byteLevelBPE, tokens: tokens, types: types, merges: merges,
                             bosID: 297, eosID: 298, addBOS: true, preTokenizer: preTokenizer)
    }

    /// GPT-2's printable stand-in for a byte (`bytes_to_unicode`).
    static func byteCharacter(_ byte: UInt8) -> String {
        let printable: [ClosedRange<Int>] = [33...126, 161...172, 174...255]
        let b = Int(byte)
        if printable.contains(where: { $0.contains(b) }) { return String(UnicodeScalar(UInt32(b))!) }
        let shifted = (0..<b).filter { n in !printable.contains { $0.contains(n) } }.count
        return String(UnicodeScalar(UInt32(256 + shifted))!)
    }
}

extension ModelWeights {
    /// Whether every matrix (type, shape, encoded bytes), norm (bit patterns) and the tying agree.
    func isBitIdentical(to other: ModelWeights) -> Bool {
        guard config == other.config, tiedClassifier == other.tiedClassifier else { return false }
        let mine = namedMatrices, theirs = other.namedMatrices
        guard mine.count == theirs.count else { return false }
        for ((name, a), (otherName, b)) in zip(mine, theirs) {
            guard name == otherName, a.type == b.type, a.rows == b.rows, a.cols == b.cols,
                  a.encodedBytes.elementsEqual(b.encodedBytes) else { return false }
        }
        return zip(namedNorms, other.namedNorms).allSatisfy { a, b in
            a.0 == b.0 && a.1.map(\.bitPattern) == b.1.map(\.bitPattern)
        }
    }
}

/// The problem text of a `FileError` thrown by `body`, or nil when it succeeds; any other error
/// type is recorded as a test failure.
func fileErrorProblem(_ body: () throws -> Void) -> String? {
    do {
        try body()
        return nil
    } catch let error as FileError {
        return error.problem
    } catch {
        Issue.record("expected a FileError, got \(type(of: error)): \(error)")
        return "\(error)"
    }
}

/// Random damage to a valid file: truncation, flipped bytes, or an 8-byte span overwritten with
/// an extreme value (all ones, 2^40, 2^60, negative), aimed at the first `focus` bytes (the
/// header) two times out of three.
struct Mutator {
    static let extremes: [UInt64] = [
        .max, 1 << 40, 1 << 60, 1 << 63, UInt64(bitPattern: -1 << 40), UInt64(bitPattern: -8),
        0x7FFF_FFFF_FFFF_FFFF, 0xFFFF_FFFF, 0x8000_0000, 0,
    ]
    var rng: Xoshiro256

    mutating func mutate(_ data: Data, focus: Int) -> Data {
        var bytes = [UInt8](data)
        guard !bytes.isEmpty else { return data }
        func position() -> Int {
            let limit = rng.next() % 3 == 0 ? bytes.count : max(1, min(focus, bytes.count))
            return Int(rng.next() % UInt64(limit))
        }
        switch rng.next() % 3 {
        case 0:
            bytes.removeSubrange(position()...)
        case 1:
            for _ in 0...(rng.next() % 4) { bytes[position()] ^= UInt8(1 + rng.next() % 255) }
        default:
            let value = Self.extremes[Int(rng.next() % UInt64(Self.extremes.count))]
            let start = position()
            let width = rng.next() % 2 == 0 ? 8 : 4
            for i in 0..<width where start + i < bytes.count {
                bytes[start + i] = UInt8(truncatingIfNeeded: value >> (8 * UInt64(i)))
            }
        }
        return Data(bytes)
    }
}

extension Data {
    /// The byte range of the first occurrence of `text`'s UTF-8 bytes.
    func range(of text: String) throws -> Range<Int> {
        try #require(range(of: Data(text.utf8)), "\(text) not found")
    }

    /// Overwrites bytes at `offset` with a little-endian integer.
    mutating func patch<T: FixedWidthInteger>(_ value: T, at offset: Int) {
        Swift.withUnsafeBytes(of: value.littleEndian) { replaceSubrange(offset..<(offset + MemoryLayout<T>.size), with: $0) }
    }
}

/// Runs the cross-implementation scripts under `scripts/` with `python3`.
enum Python {
    static let ggufScript = Fixtures.packageRoot.appendingPathComponent("scripts/gguf_fixture.py").path
    static let hfScript = Fixtures.packageRoot.appendingPathComponent("scripts/hf_check.py").path
    static let ggufSkipMessage = "skipped: python3 with the gguf package is not available (pip install -r scripts/requirements.txt)"
    static let hfSkipMessage = "skipped: python3 with tokenizers and safetensors is not available (pip install -r scripts/requirements.txt)"

    /// Whether `python3 -c "import gguf"` succeeds.
    static let hasGGUF = canImport("gguf")
    /// Whether Hugging Face's tokenizers and safetensors (with numpy) import.
    static let hasHF = canImport("tokenizers, safetensors.numpy")

    static func canImport(_ modules: String) -> Bool {
        (try? execute(["-c", "import \(modules)"]).status) == 0
    }

    /// A script run that exited non-zero, with what it printed.
    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    /// Runs `script` with `arguments`, throwing its output when it exits non-zero.
    static func run(_ script: String, _ arguments: String...) throws {
        let result = try execute([script] + arguments)
        guard result.status == 0 else {
            throw Failure(description: "\(script) \(arguments.joined(separator: " ")) exited \(result.status): \(result.output)")
        }
    }

    /// Runs `script` with `arguments` and returns what it printed, throwing it when it exits non-zero.
    static func output(_ script: String, _ arguments: String...) throws -> String {
        let result = try execute([script] + arguments)
        guard result.status == 0 else {
            throw Failure(description: "\(script) \(arguments.joined(separator: " ")) exited \(result.status): \(result.output)")
        }
        return result.output
    }

    private static func execute(_ arguments: [String]) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3"] + arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        // Drain the pipe before waiting, so a chatty script cannot block on a full pipe.
        let output = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: output, as: UTF8.self))
    }

    /// Little-endian float32 values from a base64 string field of a script's JSON output.
    static func floats(_ value: JSONValue?) throws -> [Float] {
        let data = try #require(value?.string.flatMap { Data(base64Encoded: $0) })
        return stride(from: 0, to: data.count, by: 4).map { offset in
            Float(bitPattern: data[offset..<(offset + 4)].enumerated().reduce(UInt32(0)) { $0 | UInt32($1.element) << (8 * $1.offset) })
        }
    }
}
