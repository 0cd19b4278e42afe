import Foundation
@testable import KVLabEngine
import KVLabFoundation
@testable import KVLabFoundation
import KVLabMethods
@testable import KVLabMethods
@testable import KVLabRun
import Testing

@Suite struct SafetensorsTests {
    /// Strings whose encodings must survive a trip through tokenizer.json.
    static let sampleTexts = ["the cat and the hat", "Once upon a time, there was a tiny robot.", "ünïcödé 🚀 text",
                              "  leading and trailing  ", "a", ""]

    /// Writes `model` as a safetensors directory in a fresh temporary directory.
    private func write(_ model: LoadedModel) throws -> URL {
        let directory = try Fixtures.temporaryDirectory().appendingPathComponent("model")
        try ModelLoader.write(model, to: directory.path, as: .safetensors)
        return directory
    }

    private func remove(_ directory: URL) {
        try? FileManager.default.removeItem(at: directory.deletingLastPathComponent())
    }

    /// The model's files in memory, keyed by name, for mutation tests.
    private func files(of model: LoadedModel) throws -> [String: Data] {
        let encoded = try SafetensorsModel.encode(model.weights, tokenizer: model.tokenizer.spec, directory: "/mem")
        var files = [SafetensorsModel.weightsFile: joinedChunks(encoded.weights)]
        for (name, json) in encoded.json { files[name] = Data(json.rendered().utf8) }
        return files
    }

    private func load(_ files: [String: Data]) throws -> LoadedModel {
        try SafetensorsModel.load(SafetensorsModel.Source(directory: "/mem") { files[$0] }, weights: nil, displayPath: "/mem")
    }

    // MARK: - Round trips

    @Test(.enabled(if: Fixtures.haveStories, Comment(rawValue: Fixtures.skipMessage)))
    func storiesRoundTripIsExact() throws {
        let stories = try #require(Fixtures.stories)
        let reference = try #require(Reference.shared)
        let directory = try write(stories)
        defer { remove(directory) }
        for path in [directory.path, directory.appendingPathComponent("model.safetensors").path] {
            let loaded = try ModelLoader.load(path: path)
            #expect(loaded.format == .safetensors)
            var expected = stories.config
            expected.ropeStyle = .halfRotation
            #expect(loaded.config == expected)
            #expect(loaded.weights.withRoPEStyle(.interleaved).isBitIdentical(to: stories.weights))
            for encoding in reference.encode {
                #expect(loaded.tokenizer.encode(encoding.text) == encoding.ids, "\(encoding.text)")
            }
            let spec = loaded.tokenizer.spec, original = stories.tokenizer.spec
            #expect(spec.tokens == original.tokens && spec.types == original.types)
            #expect(spec.bosID == original.bosID && spec.eosID == original.eosID && spec.unknownID == original.unknownID)
        }
    }

    @Test(.enabled(if: Fixtures.haveStories, Comment(rawValue: Fixtures.skipMessage)))
    func storiesGGUFAndSafetensorsAgree() throws {
        // safetensors → GGUF → load gives back the llama2.c weights exactly.
        let stories = try #require(Fixtures.stories)
        let directory = try write(stories)
        defer { remove(directory) }
        let hf = try ModelLoader.load(path: directory.path)
        let gguf = directory.appendingPathComponent("model.gguf").path
        try ModelLoader.write(hf, to: gguf, as: .gguf)
        let loaded = try ModelLoader.load(path: gguf)
        #expect(loaded.weights.isBitIdentical(to: stories.weights))
        for text in Self.sampleTexts {
            #expect(loaded.tokenizer.encode(text) == stories.tokenizer.encode(text), "\(text)")
        }
    }

    @Test func sentencePieceTokenizerSurvivesTokenizerJSON() throws {
        let model = try TinyModel.make(seed: 4)
        let loaded = try load(try files(of: model))
        let spec = loaded.tokenizer.spec, original = model.tokenizer.spec
        #expect(spec.model == .sentencePiece)
        #expect(spec.tokens == original.tokens && spec.types == original.types && spec.addBOS == original.addBOS)
        #expect(spec.bosID == 1 && spec.eosID == 2 && spec.unknownID == 0)
        for text in Self.sampleTexts {
            #expect(loaded.tokenizer.encode(text) == model.tokenizer.encode(text), "\(text)")
        }
    }

    @Test(arguments: ["default", "llama-bpe", "qwen2", "smollm"])
    func byteLevelTokenizerRoundTripIsExact(preTokenizer: String) throws {
        let model = try TinyModel.make(seed: 8, tied: true, tokenizer: TinyModel.byteLevelSpec(preTokenizer: preTokenizer))
        let loaded = try load(try files(of: model))
        #expect(loaded.tokenizer.spec == model.tokenizer.spec)
        #expect(loaded.weights.tiedClassifier)
    }

    @Test(arguments: [WeightType.f16, .q8_0, .q4_1])
    func storageTypesRoundTrip(type: WeightType) throws {
        let model = try TinyModel.make(seed: 9, type: type)
        let loaded = try load(try files(of: model)).weights.withRoPEStyle(.interleaved)
        // F16 stays f16; ggml block types are written (and read back) as their decoded f32 values.
        let expected = type == .f16 ? model.weights : model.weights.converted(to: .f32)
        #expect(loaded.isBitIdentical(to: expected))
    }

    @Test func bf16WeightsStayBF16() throws {
        var files = try files(of: try TinyModel.make(seed: 10))
        let original = try load(files)
        // Rewrite every tensor as BF16 (values rounded to bfloat16 by truncation).
        let data = try #require(files[SafetensorsModel.weightsFile])
        let entries = try data.withUnsafeBytes { bytes in
            try SafetensorsFile(bytes).tensors.map { tensor in
                let halves = try SafetensorsFile.floats(tensor, in: bytes).map { UInt16(truncatingIfNeeded: $0.bitPattern >> 16) }
                return SafetensorsFile.Entry(name: tensor.name, dtype: "BF16", shape: tensor.shape,
                                             data: .data(halves.withUnsafeBytes { Data($0) }))
            }
        }
        files[SafetensorsModel.weightsFile] = joinedChunks(SafetensorsFile.encode(entries))
        let loaded = try load(files)
        let truncated = original.weights.tokenEmbedding.decodedValues().map { Float(bitPattern: $0.bitPattern & 0xFFFF_0000) }
        #expect(loaded.weights.tokenEmbedding.type == .bf16)
        #expect(loaded.weights.tokenEmbedding.decodedValues() == truncated)
    }

    @Test func shardedModelLoadsThroughItsIndex() throws {
        let model = try TinyModel.make(seed: 12)
        let directory = try write(model)
        defer { remove(directory) }
        let single = try ModelLoader.load(path: directory.path)
        let weightsURL = directory.appendingPathComponent(SafetensorsModel.weightsFile)
        let data = try Data(contentsOf: weightsURL)
        let tensors = try data.withUnsafeBytes { try SafetensorsFile($0).tensors }
        let half = tensors.count / 2
        var weightMap: [(key: String, value: JSONValue)] = []
        for (number, part) in [tensors[..<half], tensors[half...]].enumerated() {
            let name = "model-0000\(number + 1)-of-00002.safetensors"
            let entries = part.map { SafetensorsFile.Entry(name: $0.name, dtype: $0.dtype, shape: $0.shape, data: .data(data[$0.range])) }
            try joinedChunks(SafetensorsFile.encode(entries)).write(to: directory.appendingPathComponent(name))
            weightMap += part.map { ($0.name, .string(name)) }
        }
        let index = JSONValue.object([("metadata", .object([("total_size", .integer(data.count))])), ("weight_map", .object(weightMap))])
        try Data(index.rendered().utf8).write(to: directory.appendingPathComponent(SafetensorsModel.indexFile))
        try FileManager.default.removeItem(at: weightsURL)

        for path in [directory.path, directory.appendingPathComponent(SafetensorsModel.indexFile).path,
                     directory.appendingPathComponent("model-00002-of-00002.safetensors").path] {
            let sharded = try ModelLoader.load(path: path)
            #expect(sharded.weights.isBitIdentical(to: single.weights), "\(path)")
            #expect(sharded.tensors.count == tensors.count)
            #expect(sharded.metadata.contains { $0 == ("shards", "2") })
        }
    }

    // MARK: - Cross-implementation check with Hugging Face's libraries

    @Test(.enabled(if: Python.hasHF, Comment(rawValue: Python.hfSkipMessage)))
    func huggingFaceLibrariesReadWrittenDirectory() throws {
        var models = [try TinyModel.make(seed: 30, type: .f16)]
        if let stories = Fixtures.stories { models.append(stories) }
        for model in models {
            let directory = try write(model)
            defer { remove(directory) }
            let textsPath = directory.deletingLastPathComponent().appendingPathComponent("texts.json").path
            let outputPath = directory.deletingLastPathComponent().appendingPathComponent("hf.json").path
            try Data(JSONValue.array(Self.sampleTexts.map { .string($0) }).rendered().utf8).write(to: URL(fileURLWithPath: textsPath))
            try Python.run(Python.hfScript, directory.path, textsPath, outputPath)
            let result = try JSONValue.parse(try Data(contentsOf: URL(fileURLWithPath: outputPath)))

            // Hugging Face's tokenizer encodes like kvlab's SentencePiece tokenizer.
            let encodings = result["encodings"]?.array?.map { $0.array?.compactMap(\.integer) ?? [] }
            #expect(encodings == Self.sampleTexts.map { model.tokenizer.encode($0) }, "\(model.config.name)")

            // safetensors reads the tensors kvlab wrote, with their dtypes, shapes and bytes.
            let data = try Data(contentsOf: directory.appendingPathComponent(SafetensorsModel.weightsFile))
            let tensors = try data.withUnsafeBytes { try SafetensorsFile($0).tensors }
            let read = try #require(result["tensors"])
            #expect(read.members?.count == tensors.count)
            for tensor in tensors {
                let entry = read[tensor.name]
                #expect(entry?["dtype"]?.string == (tensor.dtype == "F16" ? "float16" : "float32"), "\(tensor.name)")
                #expect(entry?["shape"]?.array?.compactMap(\.integer) == tensor.shape, "\(tensor.name)")
                #expect(entry?["data"]?.string.flatMap { Data(base64Encoded: $0) } == data[tensor.range], "\(tensor.name)")
            }
        }
    }

    // MARK: - Hugging Face variants

    @Test func readsMergePairsAndAddedTokensOutsideTheVocabulary() throws {
        var files = try files(of: try TinyModel.make(seed: 13, tokenizer: TinyModel.byteLevelSpec(preTokenizer: "llama-bpe")))
        let expected = try load(files).tokenizer.spec
        // Llama-3 style: merges as [left, right] pairs, special tokens only in added_tokens.
        var json = try JSONValue.parse(try #require(files[SafetensorsModel.tokenizerFile]))
        json = json.replacing("model") { model in
            model.replacing("merges") { merges in
                .array((merges.array ?? []).compactMap { $0.string }.map { merge in
                    let parts = merge.split(separator: " ").map { JSONValue.string(String($0)) }
                    return .array(parts)
                })
            }.replacing("vocab") { vocab in .object((vocab.members ?? []).filter { ($0.value.integer ?? 0) < 297 }) }
        }
        files[SafetensorsModel.tokenizerFile] = Data(json.rendered().utf8)
        #expect(try load(files).tokenizer.spec == expected)
    }

    @Test func smallerTokenizerIsPaddedToTheVocabulary() throws {
        var files = try files(of: try TinyModel.make(seed: 14))
        var json = try JSONValue.parse(try #require(files[SafetensorsModel.tokenizerFile]))
        json = json.replacing("model") { model in
            model.replacing("vocab") { vocab in .object((vocab.members ?? []).filter { ($0.value.integer ?? 0) < 298 }) }
        }
        files[SafetensorsModel.tokenizerFile] = Data(json.rendered().utf8)
        let spec = try load(files).tokenizer.spec
        #expect(spec.tokens.suffix(2) == ["[PAD298]", "[PAD299]"] && spec.types.suffix(2) == [.unused, .unused])
    }

    // MARK: - JSON

    @Test func jsonParserHandlesEscapesAndNumbers() throws {
        let text = #"{"s": "a\"b\\c\n\u00e9\ud83d\ude80", "i": -42, "big": 123456789012345678901, "x": -0.5e-3, "t": [true, false, null]}"#
        let value = try JSONValue.parse(Data(text.utf8))
        #expect(value["s"]?.string == "a\"b\\c\né🚀")
        #expect(value["i"]?.integer == -42)
        #expect(value["big"]?.integer == nil && value["big"]?.double == 1.2345678901234568e20)
        #expect(value["x"]?.double == -0.0005)
        #expect(value["t"]?.array?.count == 3 && value["t"]?.array?.last?.isNull == true)
        // Rendering and parsing again gives the same text back.
        let control = JSONValue.object([("k", .string("tab\tnew\nline\u{1}▁"))])
        #expect(try JSONValue.parse(Data(control.rendered().utf8))["k"]?.string == "tab\tnew\nline\u{1}▁")
    }

    @Test(arguments: [
        (String(repeating: "[", count: 100) + String(repeating: "]", count: 100), "nested deeper than 64 levels"),
        (#"{"a": 1, "a": 2}"#, "duplicate key \"a\""),
        ("[1e999]", "number 1e999 is out of range"),
        (#"["\ud800"]"#, "unpaired surrogate"),
        ("[01]", "expected ',' or ']'"),
        ("{\"a\": 1} x", "unexpected text after the JSON value"),
        ("\n\n  [tru]", "invalid JSON at line 3 column 7"),
    ])
    func jsonParserRejectsMalformedText(text: String, problem: String) {
        do {
            _ = try JSONValue.parse(Data(text.utf8))
            Issue.record("\(text) parsed")
        } catch let error as FormatError {
            #expect(error.problem.contains(problem), "got: \(error.problem)")
        } catch {
            Issue.record("unexpected \(error)")
        }
    }

    // MARK: - Malformed directories

    /// The problem reported for `files`, which must fail with a `FileError`.
    private func expectProblem(_ files: [String: Data], contains text: String, sourceLocation: SourceLocation = #_sourceLocation) {
        let message = fileErrorProblem { _ = try load(files) }
        #expect(message?.contains(text) == true, "got: \(message ?? "no error")", sourceLocation: sourceLocation)
    }

    private func validFiles() throws -> [String: Data] {
        try files(of: try TinyModel.make(seed: 21))
    }

    /// `files` with `old` replaced by `new` in file `name` (which must contain `old`).
    private func replacing(_ old: String, with new: String, in name: String, of files: [String: Data]) throws -> [String: Data] {
        let text = String(decoding: try #require(files[name]), as: UTF8.self)
        try #require(text.contains(old), "\(name) does not contain \(old)")
        var copy = files
        copy[name] = Data(text.replacingOccurrences(of: old, with: new).utf8)
        return copy
    }

    /// `files` with `old` replaced by `new` in the safetensors header (same length, so offsets hold).
    private func replacingInHeader(_ old: String, with new: String, of files: [String: Data]) throws -> [String: Data] {
        try #require(old.utf8.count == new.utf8.count)
        var data = try #require(files[SafetensorsModel.weightsFile])
        let length = Int(data.prefix(8).enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) })
        let header = String(decoding: data[8..<(8 + length)], as: UTF8.self)
        try #require(header.contains(old), "the header does not contain \(old)")
        data.replaceSubrange(8..<(8 + length), with: Data(header.replacingOccurrences(of: old, with: new).utf8))
        var copy = files
        copy[SafetensorsModel.weightsFile] = data
        return copy
    }

    @Test func validFilesLoad() throws {
        let model = try load(try validFiles())
        #expect(model.config.ropeStyle == .halfRotation && model.config.vocabSize == TinyModel.vocabularySize)
    }

    @Test func rejectsAbsurdHeaderLength() throws {
        var files = try validFiles()
        files[SafetensorsModel.weightsFile]?.patch(UInt64(1) << 60, at: 0)
        expectProblem(files, contains: "header length 1152921504606846976 exceeds")
    }

    @Test func rejectsTruncatedData() throws {
        var files = try validFiles()
        files[SafetensorsModel.weightsFile] = files[SafetensorsModel.weightsFile]?.dropLast(10)
        expectProblem(files, contains: "extends past the end of the file")
    }

    @Test func rejectsTruncatedHeader() throws {
        var files = try validFiles()
        files[SafetensorsModel.weightsFile] = files[SafetensorsModel.weightsFile]?.prefix(5)
        expectProblem(files, contains: "truncated")
    }

    @Test func rejectsUnsupportedAndUnknownDTypes() throws {
        let files = try validFiles()
        expectProblem(try replacingInHeader("\"F32\"", with: "\"I32\"", of: files),
                      contains: "model.embed_tokens.weight has dtype I32; kvlab reads F32, F16 and BF16")
        expectProblem(try replacingInHeader("\"F32\"", with: "\"Q4K\"", of: files),
                      contains: "unknown dtype Q4K")
    }

    @Test func rejectsShapeInconsistentWithData() throws {
        let files = try validFiles()
        expectProblem(try replacingInHeader("[300,64]", with: "[301,64]", of: files),
                      contains: "spans 76800 bytes, its shape [301, 64] of F32 needs 77056")
    }

    @Test func rejectsMissingTensor() throws {
        let files = try validFiles()
        expectProblem(try replacingInHeader("layers.1.mlp.up_proj", with: "layers.1.mlp.up_proX", of: files),
                      contains: "missing tensor model.layers.1.mlp.up_proj.weight")
    }

    @Test func rejectsMissingTokenizer() throws {
        var files = try validFiles()
        files[SafetensorsModel.tokenizerFile] = nil
        expectProblem(files, contains: "no such file (kvlab needs the model's tokenizer.json)")
    }

    @Test func rejectsMissingConfig() throws {
        var files = try validFiles()
        files[SafetensorsModel.configFile] = nil
        expectProblem(files, contains: "needs config.json")
    }

    @Test func rejectsMalformedJSON() throws {
        let files = try validFiles()
        var truncated = files
        truncated[SafetensorsModel.configFile] = files[SafetensorsModel.configFile]?.dropLast(3)
        expectProblem(truncated, contains: "invalid JSON at line")
        expectProblem(try replacing("\"vocab\"", with: "\"vocab\" 1", in: SafetensorsModel.tokenizerFile, of: files),
                      contains: "expected ':' after a key")
    }

    @Test func rejectsInvalidUTF8() throws {
        var files = try validFiles()
        var tokenizer = try #require(files[SafetensorsModel.tokenizerFile])
        tokenizer[try tokenizer.range(of: "\u{2581}the").lowerBound] = 0xFF
        files[SafetensorsModel.tokenizerFile] = tokenizer
        expectProblem(files, contains: "invalid UTF-8")
    }

    @Test func rejectsAbsurdVocabulary() throws {
        let files = try validFiles()
        expectProblem(try replacing("\"<0x41>\": 68", with: "\"<0x41>\": 1099511627776", in: SafetensorsModel.tokenizerFile, of: files),
                      contains: "id 1099511627776 in a vocabulary of 300 tokens")
        expectProblem(try replacing("\"vocab_size\": 300", with: "\"vocab_size\": 1099511627776", in: SafetensorsModel.configFile, of: files),
                      contains: "vocabulary size 1099511627776 is out of range")
    }

    @Test func rejectsUnsupportedConfigurations() throws {
        let files = try validFiles()
        expectProblem(try replacing("\"rope_scaling\": null", with: "\"rope_scaling\": {\"rope_type\": \"llama3\", \"factor\": 8.0}",
                                    in: SafetensorsModel.configFile, of: files),
                      contains: "rope_scaling (llama3) is not supported")
        expectProblem(try replacing("\"type\": \"BPE\"", with: "\"type\": \"Unigram\"", in: SafetensorsModel.tokenizerFile, of: files),
                      contains: "tokenizer model Unigram is not supported")
        expectProblem(try replacing("\"model_type\": \"llama\"", with: "\"model_type\": \"qwen2\"", in: SafetensorsModel.configFile, of: files),
                      contains: "model_type qwen2 is not supported")
    }

    @Test func rejectsUnknownPreTokenizerRegex() throws {
        let model = try TinyModel.make(seed: 22, tokenizer: TinyModel.byteLevelSpec(preTokenizer: "qwen2"))
        let files = try files(of: model)
        expectProblem(try replacing(#"\\p{N}|"#, with: #"\\p{N}{1,2}|"#, in: SafetensorsModel.tokenizerFile, of: files),
                      contains: #"pre-tokenizer regex (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,2}|"#)
    }

    @Test func rejectsNaNWeights() throws {
        var files = try validFiles()
        var data = try #require(files[SafetensorsModel.weightsFile])
        let headerLength = Int(data[0]) | Int(data[1]) << 8 | Int(data[2]) << 16
        data.patch(Float.nan.bitPattern, at: 8 + headerLength + 40)  // inside model.embed_tokens.weight
        files[SafetensorsModel.weightsFile] = data
        expectProblem(files, contains: "tensor model.embed_tokens.weight contains NaN")
    }

    @Test func mutatedFilesThrowFileErrorsOrLoad() throws {
        let valid = try validFiles()
        let weights = try #require(valid[SafetensorsModel.weightsFile])
        let headerEnd = try weights.withUnsafeBytes { try SafetensorsFile($0).tensors.first?.range.lowerBound ?? 0 }
        let names = [SafetensorsModel.configFile, SafetensorsModel.tokenizerFile, SafetensorsModel.tokenizerConfigFile]
        var mutator = Mutator(rng: Xoshiro256(seed: 77))
        var loaded = 0, rejected = 0
        for round in 0..<1200 {
            var files = valid
            // Two in three rounds damage the weights, the rest one of the JSON files.
            let name = round % 3 != 2 ? SafetensorsModel.weightsFile : names[round / 3 % names.count]
            let original = try #require(valid[name])
            files[name] = mutator.mutate(original, focus: name == SafetensorsModel.weightsFile ? headerEnd : original.count)
            do {
                let model = try load(files)
                #expect(model.tokenizer.vocabularySize == model.config.vocabSize)
                loaded += 1
            } catch let error as FileError {
                #expect(error.path.hasPrefix("/mem") && !error.problem.isEmpty && !error.problem.contains("\n"))
                rejected += 1
            } catch {
                Issue.record("mutation of \(name) threw \(type(of: error)): \(error)")
            }
        }
        #expect(loaded > 0 && rejected > 0)
    }
}

extension JSONValue {
    /// The object with member `key` replaced by `transform` of its value.
    func replacing(_ key: String, _ transform: (JSONValue) -> JSONValue) -> JSONValue {
        guard let members else { return self }
        return .object(members.map { $0.key == key ? ($0.key, transform($0.value)) : $0 })
    }
}
