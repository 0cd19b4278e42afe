import Foundation
@testable import KVLabEngine
import KVLabFoundation
@testable import KVLabMethods
import KVLabRun
import Testing

/// kvlab against llama-quantize on the same f32 GGUF: the K-quant and iq4 encoders give its bytes
/// exactly (with its fallback types where rows are not whole super-blocks), and the mixed files
/// it writes (Q4_K_M, Q5_K_M, Q6_K, Q8_0) load with their per-tensor types and generate the
/// same greedy text as llama.cpp does on them.
@Suite(.enabled(if: LlamaCpp.binaries != nil, Comment(rawValue: LlamaCpp.skipMessage)))
struct LlamaQuantizeTests {
    /// A random model whose every matrix row is a whole number of 256-element super-blocks.
    static func superBlockModel() throws -> LoadedModel {
        var rng = Xoshiro256(seed: 256)
        let spec = TinyModel.sentencePieceSpec()
        let config = ModelConfig(name: "superblocks", dim: 256, hiddenDim: 512, layerCount: 1, headCount: 4,
                                 kvHeadCount: 2, vocabSize: spec.tokens.count, contextLength: 128, ropeTheta: 10000, rmsEps: 1e-5)
        var row = 0
        func matrix(_ rows: Int, _ cols: Int) -> WeightMatrix {
            // Rows at scales from 1e-4 to 10, some with one outlier, some with all-zero sub-blocks.
            let values = (0..<rows).flatMap { _ in
                row += 1
                let scale = pow(Float(10), Float(row % 6) - 4)
                return (0..<cols).map { c -> Float in
                    if row % 7 == 0, c < 48 { return 0 }
                    if row % 5 == 0, c == 100 { return 40 * scale }
                    return (0..<3).reduce(Float(0)) { s, _ in s + Float.random(in: -1...1, using: &rng) } * scale
                }
            }
            return WeightMatrix(rows: rows, cols: cols, values: values, type: .f32)
        }
        let norm = [Float](repeating: 1, count: config.dim)
        let layers = [LayerWeights(attentionNorm: norm, query: matrix(256, 256), key: matrix(128, 256), value: matrix(128, 256),
                                   attentionOutput: matrix(256, 256), ffnNorm: norm, ffnGate: matrix(512, 256),
                                   ffnDown: matrix(256, 512), ffnUp: matrix(512, 256))]
        let weights = try ModelWeights(config: config, tokenEmbedding: matrix(config.vocabSize, 256), layers: layers,
                                       outputNorm: norm, output: matrix(config.vocabSize, 256))
        return LoadedModel(weights: weights, tokenizer: try spec.makeTokenizer(), format: .gguf, path: "superblocks", tensors: [])
    }

    /// Writes `model` as an f32 GGUF in `directory`.
    static func f32GGUF(_ model: LoadedModel, in directory: URL) throws -> String {
        var copy = model
        copy.weights = model.weights.converted(to: .f32)
        let path = directory.appendingPathComponent("\(model.config.name)-f32.gguf").path
        try ModelLoader.write(copy, to: path, as: .gguf)
        return path
    }

    static func parse(_ path: String) throws -> (Data, [String: GGUFTensorInfo]) {
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        let file = try data.withUnsafeBytes { try GGUFFile($0) }
        return (data, Dictionary(uniqueKeysWithValues: file.tensors.map { ($0.name, $0) }))
    }

    @Test(arguments: [(WeightType.q2_K, "Q2_K"), (.q3_K, "Q3_K"), (.q4_K, "Q4_K"), (.q5_K, "Q5_K"), (.q6_K, "Q6_K"),
                      (.iq4_nl, "IQ4_NL"), (.iq4_xs, "IQ4_XS")])
    func encodersAreBitIdenticalWithLlamaQuantize(type: WeightType, ftype: String) throws {
        let directory = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        // The embedded model's rows of 192 take the fallback types; the synthetic one's are all whole super-blocks.
        for model in [try Self.superBlockModel(), try EmbeddedModel.load()] {
            let source = try Self.f32GGUF(model, in: directory)
            let quantized = directory.appendingPathComponent("\(model.config.name)-\(ftype).gguf").path
            _ = try LlamaCpp.run("llama-quantize", ["--pure", source, quantized, ftype, "2"])
            let (sourceData, sourceTensors) = try Self.parse(source)
            let (data, tensors) = try Self.parse(quantized)
            #expect(tensors.count == sourceTensors.count)
            var storedAsRequested = 0
            for (name, tensor) in tensors {
                let original = try #require(sourceTensors[name])
                guard tensor.dims.count == 2 else {
                    #expect(tensor.type == .f32, "\(name)")
                    continue
                }
                let (cols, rows) = (tensor.dims[0], tensor.dims[1])
                #expect(tensor.type == type.storing(rowLength: cols), "\(model.config.name) \(name): llama-quantize chose \(tensor.type)")
                if tensor.type == type { storedAsRequested += 1 }
                let floats = sourceData.withUnsafeBytes { bytes in
                    [Float](UnsafeRawBufferPointer(rebasing: bytes[original.range]).bindMemory(to: Float.self))
                }
                let ours = WeightMatrix(rows: rows, cols: cols, values: floats, type: tensor.type)
                let same = data.withUnsafeBytes { bytes in ours.encodedBytes.elementsEqual(UnsafeRawBufferPointer(rebasing: bytes[tensor.range])) }
                #expect(same, "\(model.config.name) \(name) (\(tensor.type)) differs from llama-quantize's bytes")
            }
            #expect(storedAsRequested > 0, "\(model.config.name): no tensor was stored as \(type)")
        }
    }

    /// The mixes llama-quantize writes by default, loaded by kvlab and run greedily by both tools.
    @Test(arguments: ["Q4_K_M", "Q5_K_M", "Q6_K", "Q8_0"])
    func mixesLoadAndGenerateAsLlamaCpp(ftype: String) throws {
        let directory = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let source = try Self.f32GGUF(try EmbeddedModel.load(), in: directory)
        let path = directory.appendingPathComponent("mix-\(ftype).gguf").path
        _ = try LlamaCpp.run("llama-quantize", [source, path, ftype, "2"])

        let model = try ModelLoader.load(path: path)
        let (_, tensors) = try Self.parse(path)
        // kvlab keeps every matrix in the type the file stores it in.
        for (name, matrix) in model.weights.namedMatrices {
            #expect(matrix.type == tensors[name]?.type, "\(ftype) \(name)")
        }
        let types = Set(tensors.values.map(\.type))
        let expected: Set<WeightType> = switch ftype {
        case "Q4_K_M": [.q4_K, .q6_K]
        case "Q5_K_M": [.q5_K, .q6_K]
        case "Q6_K": [.q6_K]
        default: [.q8_0]
        }
        #expect(expected.isSubset(of: types), "\(ftype) holds \(types.map(\.rawValue).sorted())")
        #expect(model.metadata.contains { $0.0 == "general.file_type" && $0.1.hasSuffix("(\(ftype))") })

        let prompt = "ROMEO:", count = 32
        let engine = InferenceEngine(weights: model.weights)
        let ids = model.tokenizer.encode(prompt)  // BOS included, as llama.cpp adds it
        var report = try engine.prefill(ids).report
        var generated: [Int] = []
        while generated.count < count, report.top.id != model.tokenizer.spec.eosID {  // llama.cpp stops at EOS too
            generated.append(report.top.id)
            report = try engine.decode(report.top.id)
        }
        let ours = model.tokenizer.decode(ids + generated)
        // llama-simple decodes greedily and prints the prompt (BOS shown as <s>) and the continuation;
        // it is deterministic where llama-completion's output is not always complete.
        var theirs = try LlamaCpp.run("llama-simple", ["-m", path, "-n", "\(count)", prompt])
        if theirs.hasPrefix("<s>") { theirs.removeFirst(3) }
        #expect(theirs.trimmingCharacters(in: .whitespacesAndNewlines) == ours.trimmingCharacters(in: .whitespacesAndNewlines),
                "\(ftype): llama.cpp's greedy text differs")
    }
}
