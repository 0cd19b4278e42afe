import Foundation
@testable import KVLabEngine
import KVLabFoundation
@testable import KVLabFoundation
import KVLabMethods
@testable import KVLabMethods
@testable import KVLabRun
import Testing

@Suite struct GGUFTests {
    // MARK: - Round trips

    /// Writes `model` as GGUF to a temporary file and loads it back through `ModelLoader`.
    private func roundTrip(_ model: LoadedModel) throws -> LoadedModel {
        let directory = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("model.gguf").path
        try ModelLoader.write(model, to: path, as: .gguf)
        return try ModelLoader.load(path: path)
    }

    @Test(.enabled(if: Fixtures.haveStories, Comment(rawValue: Fixtures.skipMessage)))
    func storiesRoundTripIsExact() throws {
        let stories = try #require(Fixtures.stories)
        let reference = try #require(Reference.shared)
        let loaded = try roundTrip(stories)
        #expect(loaded.format == .gguf)
        #expect(loaded.config == stories.config)
        #expect(loaded.tokenizer.spec == stories.tokenizer.spec)
        #expect(loaded.weights.isBitIdentical(to: stories.weights))
        for encoding in reference.encode {
            #expect(loaded.tokenizer.encode(encoding.text) == encoding.ids, "\(encoding.text)")
        }
        #expect(loaded.tensors.count == stories.weights.namedMatrices.count + stories.weights.namedNorms.count)
    }

    @Test(.enabled(if: Fixtures.haveStories, Comment(rawValue: Fixtures.skipMessage)),
          arguments: [WeightType.f16, .q8_0, .q4_0, .q4_1])
    func storiesQuantizedRoundTripIsExact(type: WeightType) throws {
        let stories = try #require(Fixtures.stories)
        var model = stories
        model.weights = stories.weights.converted(to: type)
        let loaded = try roundTrip(model)
        #expect(loaded.weights.isBitIdentical(to: model.weights))
        #expect(loaded.weights.layers[0].query.type == type)
        // ffn_down has 172 columns, not a whole number of 32-element blocks: stored as f16.
        #expect(loaded.weights.layers[0].ffnDown.type == (type.blockSize > 1 ? .f16 : type))
        let info = try #require(loaded.tensors.first { $0.name == "blk.0.attn_q.weight" })
        #expect(info.type == type && info.shape == [stories.config.dim, stories.config.dim])
    }

    @Test(arguments: [false, true])
    func tinyModelRoundTripKeepsTying(tied: Bool) throws {
        let model = try TinyModel.make(seed: 7, type: .q8_0, tied: tied)
        let loaded = try roundTrip(model)
        #expect(loaded.weights.tiedClassifier == tied)
        #expect(loaded.weights.isBitIdentical(to: model.weights))
        #expect(loaded.tokenizer.spec == model.tokenizer.spec)
        #expect(loaded.tensors.contains { $0.name == "output.weight" } == !tied)
    }

    @Test(arguments: ["default", "llama-bpe", "qwen2", "smollm"])
    func byteLevelTokenizerRoundTrip(preTokenizer: String) throws {
        let model = try TinyModel.make(seed: 3, tokenizer: TinyModel.byteLevelSpec(preTokenizer: preTokenizer))
        let loaded = try roundTrip(model)
        #expect(loaded.tokenizer.spec == model.tokenizer.spec)
        #expect(loaded.metadata.contains { $0 == ("tokenizer.ggml.pre", preTokenizer) })
    }

    @Test func halfRotationModelIsWrittenInterleaved() throws {
        var model = try TinyModel.make(seed: 5)
        model.weights = model.weights.withRoPEStyle(.halfRotation)
        let loaded = try roundTrip(model)
        #expect(loaded.config.ropeStyle == .interleaved)
        #expect(loaded.weights.isBitIdentical(to: model.weights.withRoPEStyle(.interleaved)))
    }

    // MARK: - Cross-implementation check with llama.cpp's gguf package

    @Test(.enabled(if: Python.hasGGUF, Comment(rawValue: Python.ggufSkipMessage)))
    func readsFileWrittenByGGUFPy() throws {
        let directory = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let modelPath = directory.appendingPathComponent("fixture.gguf").path
        let jsonPath = directory.appendingPathComponent("fixture.json").path
        try Python.run(Python.ggufScript, "write", modelPath, jsonPath)
        let fixture = try JSONValue.parse(try Data(contentsOf: URL(fileURLWithPath: jsonPath)))
        let model = try ModelLoader.load(path: modelPath)

        let config = try #require(fixture["config"])
        #expect(model.config == ModelConfig(
            name: "gguf-py fixture", dim: 64, hiddenDim: 128, layerCount: 1, headCount: 4, kvHeadCount: 2,
            vocabSize: try #require(config["vocab"]?.integer), contextLength: 128, ropeTheta: 500000, rmsEps: 1e-6))
        let spec = model.tokenizer.spec
        #expect(spec.tokens == fixture["tokens"]?.array?.compactMap(\.string))
        #expect(spec.scores == fixture["scores"]?.array?.compactMap { $0.double.map(Float.init) })
        #expect(spec.types.map { Int($0.rawValue) } == fixture["types"]?.array?.compactMap(\.integer))
        #expect(spec.bosID == 1 && spec.eosID == 2 && spec.unknownID == 0 && spec.addBOS)

        let matrices = Dictionary(uniqueKeysWithValues: model.weights.namedMatrices)
        let norms = Dictionary(uniqueKeysWithValues: model.weights.namedNorms)
        let tensors = try #require(fixture["tensors"]?.members)
        #expect(tensors.count == matrices.count + norms.count)
        for (name, tensor) in tensors {
            let raw = try #require(tensor["raw"]?.string.flatMap { Data(base64Encoded: $0) })
            let decoded = try Python.floats(tensor["decoded"])
            let source = try Python.floats(tensor["source"])
            if let norm = norms[name] {
                #expect(norm.map(\.bitPattern) == decoded.map(\.bitPattern), "\(name)")
                continue
            }
            let matrix = try #require(matrices[name], "\(name) not loaded")
            #expect(matrix.type.rawValue == tensor["type"]?.string, "\(name)")
            #expect(Data(matrix.encodedBytes) == raw, "\(name): stored bytes differ")
            #expect(matrix.decodedValues().map(\.bitPattern) == decoded.map(\.bitPattern), "\(name): dequantized values differ")
            // Quantizing the same floats here gives gguf.quants.quantize's bytes, bit for bit.
            let requantized = WeightMatrix(rows: matrix.rows, cols: matrix.cols, values: source, type: matrix.type)
            #expect(Data(requantized.encodedBytes) == raw, "\(name): BlockCodec.encode differs from gguf.quants.quantize")
        }
    }

    @Test(.enabled(if: Python.hasGGUF, Comment(rawValue: Python.ggufSkipMessage)))
    func ggufPyReadsFileWrittenByKVLab() throws {
        var model = try TinyModel.make(seed: 11, tied: false)
        var layer = model.weights.layers[0]
        layer.query = layer.query.converted(to: .q4_0)
        layer.key = layer.key.converted(to: .q4_1)
        layer.value = layer.value.converted(to: .q8_0)
        layer.ffnUp = layer.ffnUp.converted(to: .f16)
        model.weights.layers[0] = layer
        let directory = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let modelPath = directory.appendingPathComponent("kvlab.gguf").path
        let jsonPath = directory.appendingPathComponent("dump.json").path
        try GGUFModel.write(model, to: modelPath)
        try Python.run(Python.ggufScript, "dump", modelPath, jsonPath)
        let dump = try JSONValue.parse(try Data(contentsOf: URL(fileURLWithPath: jsonPath)))

        #expect(dump["version"]?.integer == 3)
        let metadata = try #require(dump["metadata"])
        func value(_ key: String) -> JSONValue? { metadata[key]?["value"] }
        func type(_ key: String) -> String? { metadata[key]?["type"]?.string }
        let c = model.config, spec = model.tokenizer.spec
        #expect(value("general.architecture")?.string == "llama")
        #expect(value("general.name")?.string == c.name)
        #expect(value("general.alignment")?.integer == 32)
        for (key, expected) in [("llama.context_length", c.contextLength), ("llama.embedding_length", c.dim),
                                ("llama.block_count", c.layerCount), ("llama.feed_forward_length", c.hiddenDim),
                                ("llama.attention.head_count", c.headCount), ("llama.attention.head_count_kv", c.kvHeadCount),
                                ("llama.rope.dimension_count", c.headDim), ("tokenizer.ggml.bos_token_id", 1),
                                ("tokenizer.ggml.eos_token_id", 2), ("tokenizer.ggml.unknown_token_id", 0)] {
            #expect(value(key)?.integer == expected, "\(key)")
            #expect(type(key) == "uint32", "\(key)")
        }
        #expect(value("llama.rope.freq_base")?.double == 10000)
        #expect(value("llama.attention.layer_norm_rms_epsilon")?.double.map(Float.init) == c.rmsEps)
        #expect(value("tokenizer.ggml.model")?.string == "llama")
        #expect(value("tokenizer.ggml.tokens")?.array?.compactMap(\.string) == spec.tokens)
        #expect(value("tokenizer.ggml.scores")?.array?.compactMap { $0.double.map(Float.init) } == spec.scores)
        #expect(value("tokenizer.ggml.token_type")?.array?.compactMap(\.integer) == spec.types.map { Int($0.rawValue) })
        #expect(value("tokenizer.ggml.add_bos_token")?.bool == true)

        let tensors = try #require(dump["tensors"]?.array)
        let expected = model.weights.namedMatrices.map { ($0.0, [$0.1.cols, $0.1.rows], $0.1.type.rawValue, Data($0.1.encodedBytes)) }
            + model.weights.namedNorms.map { ($0.0, [$0.1.count], "f32", $0.1.withUnsafeBytes { Data($0) }) }
        #expect(tensors.count == expected.count)
        for (tensor, (name, dims, typeName, bytes)) in zip(tensors, expected) {
            #expect(tensor["name"]?.string == name)
            #expect(tensor["dims"]?.array?.compactMap(\.integer) == dims, "\(name)")
            #expect(tensor["type"]?.string == typeName, "\(name)")
            #expect(tensor["data"]?.string.flatMap { Data(base64Encoded: $0) } == bytes, "\(name)")
        }
    }

    // MARK: - Malformed files

    /// A valid tiny GGUF file in memory (f32 unless `type` says otherwise).
    private func validFile(type: WeightType = .f32) throws -> Data {
        let model = try TinyModel.make(seed: 21, type: type)
        return joinedChunks(try GGUFModel.encode(model.weights, tokenizer: model.tokenizer.spec))
    }

    /// The problem reported for loading `data`, which must fail with a `FileError` naming the file.
    private func problem(loading data: Data) -> String? {
        fileErrorProblem { _ = try GGUFModel.load(path: "bad.gguf", data: data) }
    }

    private func expectProblem(loading data: Data, contains text: String, sourceLocation: SourceLocation = #_sourceLocation) {
        let message = problem(loading: data)
        #expect(message?.contains(text) == true, "got: \(message ?? "no error")", sourceLocation: sourceLocation)
    }

    @Test func validFileLoads() throws {
        let model = try GGUFModel.load(path: "tiny.gguf", data: try validFile())
        #expect(model.config.vocabSize == TinyModel.vocabularySize)
    }

    @Test func rejectsWrongMagic() throws {
        var data = try validFile()
        data[3] = UInt8(ascii: "X")
        expectProblem(loading: data, contains: "not a GGUF file")
    }

    @Test func rejectsTruncatedHeader() throws {
        let data = try validFile().prefix(20)
        expectProblem(loading: data, contains: "truncated")
    }

    @Test func rejectsTruncatedTensorData() throws {
        let data = try validFile().dropLast(100)
        expectProblem(loading: Data(data), contains: "extends past the end of the file")
    }

    @Test func rejectsUnknownTensorType() throws {
        var data = try validFile()
        let name = try data.range(of: "blk.0.attn_q.weight")
        data.patch(UInt32(16), at: name.upperBound + 4 + 2 * 8)  // after n_dims and two dims
        let message = problem(loading: data)
        #expect(message?.contains("blk.0.attn_q.weight") == true)
        #expect(message?.contains("iq2_xxs (id 16)") == true)
    }

    @Test func rejectsVocabularyOf2To40() throws {
        var data = try validFile()
        let key = try data.range(of: "tokenizer.ggml.tokens")
        data.patch(UInt64(1) << 40, at: key.upperBound + 8)  // after value type and element type
        expectProblem(loading: data, contains: "array of 1099511627776 string values")
    }

    @Test func rejectsStringLengthOf2To60() throws {
        var data = try validFile()
        let key = try data.range(of: "general.name")
        data.patch(UInt64(1) << 60, at: key.upperBound + 4)
        expectProblem(loading: data, contains: "length 1152921504606846976")
    }

    @Test func rejectsAbsurdTensorCount() throws {
        var data = try validFile()
        data.patch(UInt64.max, at: 8)
        expectProblem(loading: data, contains: "tensor count 18446744073709551615")
    }

    @Test func rejectsOverflowingSizesAndOffsets() throws {
        let valid = try validFile()
        let name = try valid.range(of: "token_embd.weight")
        var data = valid
        data.patch(UInt64(1) << 62, at: name.upperBound + 4)  // ne0: 2^62 f32 columns overflow the byte size
        expectProblem(loading: data, contains: "token_embd.weight with dimensions [4611686018427387904, 300] is too large")
        data = valid
        data.patch(UInt64.max, at: name.upperBound + 4 + 16 + 4)  // the data offset, after dims and type
        expectProblem(loading: data, contains: "data offset 18446744073709551615")
        data = valid
        data.patch(UInt64(1) << 62, at: name.upperBound + 4 + 16 + 4)
        expectProblem(loading: data, contains: "extends past the end of the file")
    }

    @Test func rejectsMissingTensor() throws {
        var data = try validFile()
        let name = try data.range(of: "blk.1.ffn_up.weight")
        data[name.lowerBound + 11] = UInt8(ascii: "X")
        expectProblem(loading: data, contains: "missing tensor blk.1.ffn_up.weight")
    }

    @Test func rejectsMissingTokenizer() throws {
        var data = try validFile()
        let key = try data.range(of: "tokenizer.ggml.model")
        data[key.upperBound - 1] = UInt8(ascii: "X")
        expectProblem(loading: data, contains: "has no tokenizer (tokenizer.ggml.model missing)")
    }

    @Test func rejectsDimensionsInconsistentWithTheModel() throws {
        var data = try validFile()
        let name = try data.range(of: "token_embd.weight")
        data.patch(UInt64(301), at: name.upperBound + 4 + 8)  // ne1 = rows
        // The extra row no longer fits before the next tensor's data, which the layout check finds first.
        expectProblem(loading: data, contains: "overlaps tensor token_embd.weight (f32 [301, 64]")
    }

    @Test func rejectsNaNWeights() throws {
        var data = try validFile()
        let dataOffset = try data.withUnsafeBytes { try GGUFFile($0).dataOffset }
        data.patch(Float.nan.bitPattern, at: dataOffset + 4 * 70)  // token_embd comes first
        expectProblem(loading: data, contains: "token_embd.weight contains NaN")
    }

    @Test func rejectsInvalidUTF8() throws {
        var data = try validFile()
        let token = try data.range(of: "\u{2581}the")
        data[token.lowerBound] = 0xFF
        expectProblem(loading: data, contains: "invalid UTF-8")
    }

    @Test func errorsStayOnOneLine() throws {
        var data = try validFile()
        let key = try data.range(of: "general.architecture")
        data[key.upperBound + 4 + 8 + 2] = UInt8(ascii: "\n")  // the value "llama" becomes "ll\nma"
        expectProblem(loading: data, contains: #"architecture ll\nma is not supported"#)
    }

    @Test func errorsNameTheFile() throws {
        let directory = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("broken.gguf").path
        try Data(try validFile().prefix(100)).write(to: URL(fileURLWithPath: path))
        #expect(throws: FileError.self) { try ModelLoader.load(path: path) }
        do {
            _ = try ModelLoader.load(path: path)
        } catch let error as FileError {
            #expect(error.path == path && "\(error)".hasPrefix(path + ": "))
        }
    }

    @Test func mutatedFilesThrowFileErrorsOrLoad() throws {
        let valid = try validFile(type: .q8_0)
        let headerSize = try valid.withUnsafeBytes { try GGUFFile($0).dataOffset }
        var mutator = Mutator(rng: Xoshiro256(seed: 2024))
        var loaded = 0, rejected = 0
        for _ in 0..<1200 {
            let mutated = mutator.mutate(valid, focus: headerSize)
            do {
                let model = try GGUFModel.load(path: "fuzz.gguf", data: mutated)
                #expect(model.tokenizer.vocabularySize == model.config.vocabSize)
                loaded += 1
            } catch let error as FileError {
                #expect(error.path == "fuzz.gguf" && !error.problem.isEmpty && !error.problem.contains("\n"))
                rejected += 1
            } catch {
                Issue.record("mutation threw \(type(of: error)): \(error)")
            }
        }
        #expect(loaded > 0 && rejected > 0)
    }
}
