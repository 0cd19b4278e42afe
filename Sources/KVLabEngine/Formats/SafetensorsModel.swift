import Foundation
import KVLabFoundation
import KVLabMethods

/// Hugging Face checkpoints: a directory with `config.json` (LlamaForCausalLM), the weights in
/// `model.safetensors` or in shards listed by `model.safetensors.index.json`, and
/// `tokenizer.json` (+ optional `tokenizer_config.json`). HF checkpoints permute q/k rows for the
/// half-rotation RoPE convention, so loaded models run with `ropeStyle = .halfRotation`.
enum SafetensorsModel {
    static let configFile = "config.json"
    static let weightsFile = "model.safetensors"
    static let indexFile = "model.safetensors.index.json"
    static let tokenizerFile = "tokenizer.json"
    static let tokenizerConfigFile = "tokenizer_config.json"
    static let chatTemplateFile = "chat_template.jinja"

    /// Where a model's files come from: the disk, or memory in tests.
    struct Source {
        var directory: String
        /// The named file's bytes, or nil when there is no such file.
        var read: (String) throws -> Data?

        func path(_ name: String) -> String { (directory as NSString).appendingPathComponent(name) }

        /// Files in a directory on disk, memory-mapped.
        static func disk(_ directory: String) -> Source {
            Source(directory: directory) { name in
                let path = (directory as NSString).appendingPathComponent(name)
                return FileManager.default.fileExists(atPath: path) ? try InputFile.read(path) : nil
            }
        }
    }

    /// Loads a model directory, or the directory of a `.safetensors` / `.safetensors.index.json` path.
    static func load(path: String) throws -> LoadedModel {
        var isDirectory: ObjCBool = false
        let exists = FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory)
        guard exists else { throw FileError(path: path, problem: "no such file or directory") }
        if isDirectory.boolValue { return try load(.disk(path), weights: nil, displayPath: path) }
        let url = URL(fileURLWithPath: path)
        return try load(.disk(url.deletingLastPathComponent().path), weights: url.lastPathComponent, displayPath: path)
    }

    /// Loads from `source`; `weights` names the file the user pointed at (a single safetensors file,
    /// or an index), nil to look for `model.safetensors.index.json`, then `model.safetensors`.
    static func load(_ source: Source, weights requested: String?, displayPath: String) throws -> LoadedModel {
        try singleLineErrors { try loadFiles(source, weights: requested, displayPath: displayPath) }
    }

    private static func loadFiles(_ source: Source, weights requested: String?, displayPath: String) throws -> LoadedModel {
        let configPath = source.path(configFile)
        guard let configData = try source.read(configFile) else {
            throw FileError(path: configPath, problem: "no such file (a safetensors model directory needs config.json)")
        }
        let configJSON = try withFileContext(configPath) { try JSONValue.parse(configData) }
        let defaultName = URL(fileURLWithPath: source.directory).lastPathComponent
        let hf = try withFileContext(configPath) { try HFConfig(configJSON, defaultName: defaultName) }

        let store = try TensorStore(source, requested: requested)
        let spec = try tokenizerSpec(source, modelConfig: configJSON, vocabularySize: hf.config.vocabSize)
        let weights = try assemble(hf, store: store)
        let tokenizer = try withFileContext(source.path(tokenizerFile)) { try spec.makeTokenizer() }

        var shown: [(String, String)] = hf.shownMetadata
        shown.append(("tokenizer", spec.model == .sentencePiece
            ? "BPE, SentencePiece-style" : "BPE, byte-level (\(spec.preTokenizer))"))
        shown.append(("vocabulary", "\(spec.tokens.count) tokens"))
        if store.shards.count > 1 { shown.append(("shards", "\(store.shards.count)")) }
        return LoadedModel(weights: weights, tokenizer: tokenizer, format: .safetensors, path: displayPath,
                           tensors: store.tensorInfos, metadata: shown)
    }

    private static func tokenizerSpec(_ source: Source, modelConfig: JSONValue, vocabularySize: Int) throws -> TokenizerSpec {
        let path = source.path(tokenizerFile)
        guard let data = try source.read(tokenizerFile) else {
            throw FileError(path: path, problem: "no such file (kvlab needs the model's tokenizer.json)")
        }
        let configPath = source.path(tokenizerConfigFile)
        let tokenizerConfig = try source.read(tokenizerConfigFile).map { data in
            try withFileContext(configPath) { try JSONValue.parse(data) }
        }
        let chatTemplate = try source.read(chatTemplateFile).map { String(decoding: $0, as: UTF8.self) }
        return try withFileContext(path) {
            var spec = try HFTokenizer.spec(tokenizer: try JSONValue.parse(data), tokenizerConfig: tokenizerConfig,
                                            modelConfig: modelConfig, chatTemplateFile: chatTemplate)
            guard spec.tokens.count <= vocabularySize else {
                throw FormatError("has \(spec.tokens.count) tokens, more than config.json's vocab_size \(vocabularySize)")
            }
            // Embedding tables are often padded past the tokenizer; llama.cpp fills the gap with
            // unused [PADn] tokens, and so does kvlab.
            for id in spec.tokens.count..<vocabularySize {
                spec.tokens.append("[PAD\(id)]")
                spec.types.append(.unused)
                if spec.model == .sentencePiece { spec.scores.append(HFTokenizer.unmergedScore) }
            }
            return spec
        }
    }

    /// The engine's weights from the HF tensors (names `model.layers.N.self_attn.q_proj.weight` etc.).
    private static func assemble(_ hf: HFConfig, store: TensorStore) throws -> ModelWeights {
        let c = hf.config
        var required = ["model.embed_tokens.weight", "model.norm.weight"]
        for i in 0..<c.layerCount { required += (layerTensorNames(i) + familyTensorNames(i, c.family)).map(\.hf) }
        if !hf.tiedEmbeddings { required.append("lm_head.weight") }
        let missing = required.filter { store.tensors[$0] == nil }
        if !missing.isEmpty {
            throw FileError(path: store.weightsPath, problem: "missing tensor\(missing.count > 1 ? "s" : "") "
                + missing.prefix(4).joined(separator: ", ") + (missing.count > 4 ? " and \(missing.count - 4) more" : ""))
        }
        if let bias = store.tensors.keys.sorted().first(where: {
            $0.hasPrefix("model.layers.") && $0.hasSuffix(".bias") && !required.contains($0)
        }) {
            throw FileError(path: store.weightsPath, problem: "tensor \(bias) is a bias, which \(c.family.rawValue) models do not have")
        }
        try checkExtraTensors(store, expected: Set(required), layerCount: c.layerCount)
        let embedding = try store.matrix("model.embed_tokens.weight", rows: c.vocabSize, cols: c.dim)
        let layers = try (0..<c.layerCount).map { i in
            let p = "model.layers.\(i)."
            func optional(_ name: String, count: Int) throws -> [Float]? {
                store.tensors[p + name] == nil ? nil : try store.vector(p + name, count: count)
            }
            return LayerWeights(
                attentionNorm: try store.vector(p + "input_layernorm.weight", count: c.dim),
                query: try store.matrix(p + "self_attn.q_proj.weight", rows: c.queryDim, cols: c.dim),
                key: try store.matrix(p + "self_attn.k_proj.weight", rows: c.kvDim, cols: c.dim),
                value: try store.matrix(p + "self_attn.v_proj.weight", rows: c.kvDim, cols: c.dim),
                attentionOutput: try store.matrix(p + "self_attn.o_proj.weight", rows: c.dim, cols: c.queryDim),
                ffnNorm: try store.vector(p + "post_attention_layernorm.weight", count: c.dim),
                ffnGate: try store.matrix(p + "mlp.gate_proj.weight", rows: c.hiddenDim, cols: c.dim),
                ffnDown: try store.matrix(p + "mlp.down_proj.weight", rows: c.dim, cols: c.hiddenDim),
                ffnUp: try store.matrix(p + "mlp.up_proj.weight", rows: c.hiddenDim, cols: c.dim),
                queryBias: try optional("self_attn.q_proj.bias", count: c.queryDim),
                keyBias: try optional("self_attn.k_proj.bias", count: c.kvDim),
                valueBias: try optional("self_attn.v_proj.bias", count: c.kvDim),
                queryNorm: try optional("self_attn.q_norm.weight", count: c.headDim),
                keyNorm: try optional("self_attn.k_norm.weight", count: c.headDim))
        }
        let output = hf.tiedEmbeddings ? embedding : try store.matrix("lm_head.weight", rows: c.vocabSize, cols: c.dim)
        let norm = try store.vector("model.norm.weight", count: c.dim)
        do {
            return try ModelWeights(config: c, tokenEmbedding: embedding, layers: layers, outputNorm: norm, output: output)
        } catch let error as FormatError {
            throw FileError(path: store.weightsPath, problem: hfNames(in: error.problem, layerCount: c.layerCount))
        }
    }

    /// Refuses tensors the llama graph would not read, as llama.cpp's converter does ("Can not map
    /// tensor"): a layer past num_hidden_layers means the count was lowered and those layers would
    /// be skipped silently. Two kinds are explained and allowed, as transformers and the converter
    /// allow them: `lm_head.weight` beside tied embeddings (the tie replaces it) and the
    /// `rotary_emb.inv_freq` buffers older checkpoints saved (recomputed from rope_theta).
    private static func checkExtraTensors(_ store: TensorStore, expected: Set<String>, layerCount: Int) throws {
        let extras = store.tensors.keys.filter {
            !expected.contains($0) && $0 != "lm_head.weight" && !$0.hasSuffix(".rotary_emb.inv_freq")
        }
        guard let extra = extras.min() else { return }
        let prefix = "model.layers."
        func layer(_ name: String) -> Int? {
            guard name.hasPrefix(prefix) else { return nil }
            let digits = name.dropFirst(prefix.count).prefix { $0.isASCII && $0.isNumber }
            return name.dropFirst(prefix.count + digits.count).hasPrefix(".") ? Int(digits) : nil
        }
        if let name = extras.filter({ (layer($0) ?? -1) >= layerCount }).min(), let number = layer(name) {
            let highest = extras.compactMap(layer).max() ?? number
            throw FileError(path: store.weightsPath, problem: "tensor \(name) is for layer \(number), but config.json's "
                + "num_hidden_layers is \(layerCount): the file has tensors for layers 0...\(highest), and those past the count would be ignored")
        }
        throw FileError(path: store.weightsPath, problem: "unexpected tensor \(extra): not part of a llama model, so it would be ignored")
    }

    /// `problem` with the GGUF tensor names that `ModelWeights` reports replaced by their HF names.
    static func hfNames(in problem: String, layerCount: Int) -> String {
        var pairs = [("token_embd", "model.embed_tokens"), ("output_norm", "model.norm"), ("output", "lm_head")]
        for i in 0..<layerCount {
            pairs += layerTensorNames(i).map { (String($0.gguf.dropLast(".weight".count)), String($0.hf.dropLast(".weight".count))) }
            pairs += familyTensorNames(i, .qwen2) + familyTensorNames(i, .qwen3)
        }
        let words = problem.split(separator: " ", omittingEmptySubsequences: false).map(String.init)
        guard words.count > 1, words[0] == "tensor" else { return problem }
        let name = words[1].hasSuffix(".weight") ? String(words[1].dropLast(".weight".count)) : words[1]
        guard let hf = pairs.first(where: { $0.0 == name })?.1 else { return problem }
        return (["tensor", hf + ".weight"] + words.dropFirst(2)).joined(separator: " ")
    }

    /// Per-layer tensor names: Hugging Face's and the GGUF name of the same weight.
    static func layerTensorNames(_ layer: Int) -> [(hf: String, gguf: String)] {
        [("input_layernorm", "attn_norm"), ("self_attn.q_proj", "attn_q"), ("self_attn.k_proj", "attn_k"),
         ("self_attn.v_proj", "attn_v"), ("self_attn.o_proj", "attn_output"), ("post_attention_layernorm", "ffn_norm"),
         ("mlp.gate_proj", "ffn_gate"), ("mlp.down_proj", "ffn_down"), ("mlp.up_proj", "ffn_up")]
            .map { ("model.layers.\(layer).\($0.0).weight", "blk.\(layer).\($0.1).weight") }
    }

    /// Per-layer tensors only some families have: Qwen2's q/k/v biases, Qwen3's per-head q/k norms.
    static func familyTensorNames(_ layer: Int, _ family: ModelFamily) -> [(hf: String, gguf: String)] {
        let names: [(String, String)] = switch family {
        case .llama, .mistral: []
        case .qwen2: [("self_attn.q_proj.bias", "attn_q.bias"), ("self_attn.k_proj.bias", "attn_k.bias"),
                      ("self_attn.v_proj.bias", "attn_v.bias")]
        case .qwen3: [("self_attn.q_norm.weight", "attn_q_norm.weight"), ("self_attn.k_norm.weight", "attn_k_norm.weight")]
        }
        return names.map { ("model.layers.\(layer).\($0.0)", "blk.\(layer).\($0.1)") }
    }

    // MARK: - Writing

    /// Writes `model` as a directory: config.json, model.safetensors, tokenizer.json, tokenizer_config.json.
    static func write(_ model: LoadedModel, to path: String) throws {
        try singleLineErrors { try writeFiles(model, to: path) }
    }

    private static func writeFiles(_ model: LoadedModel, to path: String) throws {
        let fileManager = FileManager.default
        var isDirectory: ObjCBool = false
        if fileManager.fileExists(atPath: path, isDirectory: &isDirectory) {
            guard isDirectory.boolValue else {
                throw FileError(path: path, problem: "exists and is not a directory (safetensors models are written as a directory)")
            }
            guard !fileManager.fileExists(atPath: (path as NSString).appendingPathComponent(indexFile)) else {
                throw FileError(path: path, problem: "already holds a sharded model (\(indexFile)); choose an empty directory")
            }
        } else {
            do {
                try fileManager.createDirectory(atPath: path, withIntermediateDirectories: true)
            } catch {
                throw FileError(path: path, problem: "cannot be created (\(error.localizedDescription))")
            }
        }
        let source = Source.disk(path)
        let files = try encode(model.weights, tokenizer: model.tokenizer.spec, directory: path)
        try writeChunks(files.weights, to: source.path(weightsFile))
        for (name, json) in files.json { try OutputFile.write(Data(json.rendered().utf8), to: source.path(name)) }
    }

    /// The files of a model directory: the safetensors chunks and the JSON files by name.
    static func encode(_ modelWeights: ModelWeights, tokenizer spec: TokenizerSpec, directory: String)
        throws -> (weights: [OutputChunk], json: [(String, JSONValue)]) {
        // HF checkpoints use the half-rotation convention; permuting here makes the round trip exact.
        let weights = modelWeights.withRoPEStyle(.halfRotation)
        let c = weights.config
        try withFileContext(directory) {
            try weights.checkWritable()
            try c.validate()
            try spec.validate(vocabSize: c.vocabSize)
        }
        let tokenizer = try withFileContext((directory as NSString).appendingPathComponent(tokenizerFile)) {
            try HFTokenizer.tokenizerJSON(spec)
        }
        func matrixEntry(_ name: String, _ matrix: WeightMatrix) -> SafetensorsFile.Entry {
            let shape = [matrix.rows, matrix.cols]
            switch matrix.type {
            case .f32: return .init(name: name, dtype: "F32", shape: shape, data: .matrix(matrix))
            case .f16: return .init(name: name, dtype: "F16", shape: shape, data: .matrix(matrix))
            case .bf16: return .init(name: name, dtype: "BF16", shape: shape, data: .matrix(matrix))
            // Safetensors has no ggml block types: quantized matrices are written as their decoded values.
            case .q8_0, .q5_0, .q5_1, .q4_0, .q4_1, .iq4_nl, .q6_K, .q5_K, .q4_K, .q3_K, .q2_K, .iq4_xs: return .init(name: name, dtype: "F32", shape: shape, data: .data(floatData(matrix.decodedValues())))
            }
        }
        func vectorEntry(_ name: String, _ values: [Float]) -> SafetensorsFile.Entry {
            .init(name: name, dtype: "F32", shape: [values.count], data: .data(floatData(values)))
        }
        var entries = [matrixEntry("model.embed_tokens.weight", weights.tokenEmbedding)]
        for (i, layer) in weights.layers.enumerated() {
            let names = layerTensorNames(i).map(\.hf)
            entries += [
                vectorEntry(names[0], layer.attentionNorm), matrixEntry(names[1], layer.query), matrixEntry(names[2], layer.key),
                matrixEntry(names[3], layer.value), matrixEntry(names[4], layer.attentionOutput),
                vectorEntry(names[5], layer.ffnNorm), matrixEntry(names[6], layer.ffnGate), matrixEntry(names[7], layer.ffnDown),
                matrixEntry(names[8], layer.ffnUp),
            ]
        }
        entries.append(vectorEntry("model.norm.weight", weights.outputNorm))
        if !weights.tiedClassifier { entries.append(matrixEntry("lm_head.weight", weights.output)) }

        func all(_ dtype: String) -> Bool { entries.allSatisfy { $0.dtype == dtype || $0.shape.count == 1 } }
        let dtype = all("F16") ? "float16" : all("BF16") ? "bfloat16" : "float32"
        return (SafetensorsFile.encode(entries), [
            (configFile, HFConfig.json(c, tied: weights.tiedClassifier, spec: spec, dtype: dtype)),
            (tokenizerFile, tokenizer),
            (tokenizerConfigFile, HFTokenizer.tokenizerConfig(spec, contextLength: c.contextLength)),
        ])
    }

    private static func floatData(_ values: [Float]) -> Data {
        var writer = ByteWriter()
        for value in values { writer.writeFloat(value) }
        return writer.data
    }
}

/// The weight files of a safetensors model, parsed, with every tensor found by name.
struct SafetensorsModelShard {
    var path: String
    var data: Data
    var file: SafetensorsFile
}

/// All tensors of a model across its shard files.
struct TensorStore {
    var shards: [SafetensorsModelShard] = []
    /// Tensor name → (shard index, entry).
    var tensors: [String: (shard: Int, tensor: SafetensorsTensor)] = [:]
    /// The file that lists the weights (the index or the single safetensors file), for errors.
    var weightsPath: String

    init(_ source: SafetensorsModel.Source, requested: String?) throws {
        let indexName: String?
        if let requested {
            if requested.hasSuffix(".index.json") {
                indexName = requested
            } else {
                // A shard of an indexed model loads the whole model.
                let index = try source.read(SafetensorsModel.indexFile).flatMap { try? JSONValue.parse($0) }
                let listed = index?["weight_map"]?.members?.contains { $0.value.string == requested } ?? false
                indexName = listed ? SafetensorsModel.indexFile : nil
            }
        } else {
            indexName = try source.read(SafetensorsModel.indexFile) == nil ? nil : SafetensorsModel.indexFile
        }
        guard let indexName else {
            let name = requested ?? SafetensorsModel.weightsFile
            weightsPath = source.path(name)
            let shard = try Self.shard(source, name: name, listedBy: nil)
            shards = [shard]
            for tensor in shard.file.tensors { tensors[tensor.name] = (0, tensor) }
            return
        }
        let mapPath = source.path(indexName)
        weightsPath = mapPath
        guard let indexData = try source.read(indexName) else { throw FileError(path: mapPath, problem: "no such file") }
        let weightMap = try withFileContext(mapPath) { () throws -> [(key: String, value: JSONValue)] in
            guard let map = try JSONValue.parse(indexData)["weight_map"]?.members else { throw FormatError("has no weight_map object") }
            return map
        }
        var shardIndex: [String: Int] = [:]
        for (name, value) in weightMap {
            guard let file = value.string, Self.isPlainFileName(file) else {
                throw FileError(path: mapPath, problem: "weight_map entry \(name) does not name a file in the model directory")
            }
            if shardIndex[file] == nil {
                shardIndex[file] = shards.count
                shards.append(try Self.shard(source, name: file, listedBy: mapPath))
            }
            let number = shardIndex[file] ?? 0
            guard let tensor = shards[number].file.tensors.first(where: { $0.name == name }) else {
                throw FileError(path: source.path(file),
                                problem: "does not contain tensor \(name), which \(SafetensorsModel.indexFile) places there")
            }
            tensors[name] = (number, tensor)
        }
        // The index and the shards must agree both ways: a tensor a shard holds but the index leaves
        // out (or places in another shard) would be silently ignored.
        for (number, shard) in shards.enumerated() {
            for tensor in shard.file.tensors where tensors[tensor.name]?.shard != number {
                let placement = tensors[tensor.name].map {
                    "places it in \(URL(fileURLWithPath: shards[$0.shard].path).lastPathComponent)"
                } ?? "does not list it"
                throw FileError(path: shard.path, problem: "holds tensor \(tensor.name), but \(indexName) \(placement)")
            }
        }
    }

    /// Shard names must stay inside the model directory.
    private static func isPlainFileName(_ name: String) -> Bool {
        !name.isEmpty && name != "." && name != ".." && !name.contains("/") && !name.contains("\0")
    }

    private static func shard(_ source: SafetensorsModel.Source, name: String, listedBy index: String?) throws -> SafetensorsModelShard {
        let path = source.path(name)
        guard let data = try source.read(name) else {
            throw FileError(path: path, problem: index == nil
                ? "no such file (expected \(SafetensorsModel.weightsFile) or \(SafetensorsModel.indexFile))"
                : "no such file (listed in \(SafetensorsModel.indexFile))")
        }
        let file = try withFileContext(path) { try data.withUnsafeBytes { try SafetensorsFile($0) } }
        return SafetensorsModelShard(path: path, data: data, file: file)
    }

    /// Every tensor as stored, in shard and header order.
    var tensorInfos: [TensorInfo] {
        shards.flatMap(\.file.tensors).map { tensor in
            TensorInfo(name: tensor.name, shape: tensor.shape, type: tensor.dtype == "F16" ? .f16 : tensor.dtype == "BF16" ? .bf16 : .f32,
                       byteCount: tensor.range.count)
        }
    }

    private func entry(_ name: String, shape: [Int]) throws -> (SafetensorsModelShard, SafetensorsTensor) {
        guard let (number, tensor) = tensors[name] else { throw FileError(path: weightsPath, problem: "missing tensor \(name)") }
        let shard = shards[number]
        guard tensor.shape == shape else {
            throw FileError(path: shard.path, problem: "tensor \(name) has shape \(tensor.shape), config.json implies \(shape)")
        }
        return (shard, tensor)
    }

    /// A matrix; F32, F16 and BF16 keep their storage type.
    func matrix(_ name: String, rows: Int, cols: Int) throws -> WeightMatrix {
        let (shard, tensor) = try entry(name, shape: [rows, cols])
        return try withFileContext(shard.path) {
            try shard.data.withUnsafeBytes { bytes in
                let data = UnsafeRawBufferPointer(rebasing: bytes[tensor.range])
                switch tensor.dtype {
                case "F32": return try WeightMatrix(rows: rows, cols: cols, type: .f32, encoded: data)
                case "F16": return try WeightMatrix(rows: rows, cols: cols, type: .f16, encoded: data)
                case "BF16": return try WeightMatrix(rows: rows, cols: cols, type: .bf16, encoded: data)
                default: return WeightMatrix(rows: rows, cols: cols, values: try SafetensorsFile.floats(tensor, in: bytes), type: .f32)
                }
            }
        }
    }

    /// A vector (norm weights) as floats.
    func vector(_ name: String, count: Int) throws -> [Float] {
        let (shard, tensor) = try entry(name, shape: [count])
        return try withFileContext(shard.path) {
            try shard.data.withUnsafeBytes { try SafetensorsFile.floats(tensor, in: $0) }
        }
    }
}
