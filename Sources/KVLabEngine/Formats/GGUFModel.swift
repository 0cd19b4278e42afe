import Foundation
import KVLabFoundation
import KVLabMethods

/// llama.cpp's GGUF format (version 3 written; 2 and 3 read): the `llama` architecture, tensors in
/// f32, f16, q8_0, q4_0 and q4_1, and the `llama` (SentencePiece) or `gpt2` (byte-level BPE)
/// tokenizer stored in the metadata.
enum GGUFModel {
    /// Parses a GGUF file already read into memory (mutation tests call this without touching disk).
    static func load(path: String, data: Data) throws -> LoadedModel {
        try singleLineErrors {
            try withFileContext(path) {
                let mapping = FileBytes(data)
                return try mapping.data.withUnsafeBytes { bytes in
                    let file = try GGUFFile(bytes)
                    return try assemble(file, bytes: bytes, mapping: mapping, path: path)
                }
            }
        }
    }

    /// Writes `model` as a GGUF v3 file that llama.cpp (and the `gguf` Python package) reads.
    static func write(_ model: LoadedModel, to path: String) throws {
        try singleLineErrors {
            let chunks = try withFileContext(path) { try encode(model.weights, tokenizer: model.tokenizer.spec) }
            try writeChunks(chunks, to: path)
        }
    }

    // MARK: - Reading

    /// llama.cpp's architecture names kvlab runs, with the family each is. Mistral converts to `llama`.
    static let architectures: [String: ModelFamily] = [
        "llama": .llama, "qwen2": .qwen2, "qwen3": .qwen3, "phi3": .phi3, "gemma2": .gemma2, "gemma3": .gemma3,
    ]

    /// The tensor names every model of `family` needs; `output.weight` is optional (tied
    /// classifier), and so is `rope_freqs.weight` (Llama 3.1 scaling) for llama.
    static func requiredTensorNames(layerCount: Int, family: ModelFamily = .llama) -> [String] {
        var names = ["token_embd.weight", "output_norm.weight"]
        for i in 0..<layerCount { names += SafetensorsModel.layerTensorNames(i, family).map(\.gguf) }
        return names
    }

    /// Holds the tensor table to exactly what the graph reads: every required tensor for layers
    /// `0..<block_count`, the optional ones, nothing else. llama.cpp's loader refuses extra
    /// tensors the same way ("wrong number of tensors"); without this, a lowered `llama.block_count`
    /// would silently drop the layers past it.
    static func checkTensorNames(_ tensors: [GGUFTensorInfo], layerCount: Int, family: ModelFamily = .llama) throws {
        let required = requiredTensorNames(layerCount: layerCount, family: family)
        let present = Set(tensors.map(\.name))
        let missing = required.filter { !present.contains($0) }
        if !missing.isEmpty {
            let listed = missing.prefix(4).joined(separator: ", ")
            throw FormatError("missing tensor\(missing.count > 1 ? "s" : "") \(listed)"
                + (missing.count > 4 ? " and \(missing.count - 4) more" : ""))
        }
        let known = Set(required + ["output.weight"] + (family == .llama ? ["rope_freqs.weight"] : [])
            + (family == .phi3 ? longropeTensors : []))
        guard let extra = tensors.first(where: { !known.contains($0.name) }) else { return }
        if let layer = layerNumber(extra.name), layer >= layerCount {
            let highest = tensors.compactMap { layerNumber($0.name) }.max() ?? layer
            throw FormatError("tensor \(extra.name) is for layer \(layer), but \(family.ggufArchitecture).block_count is \(layerCount): "
                + "the file has tensors for layers 0...\(highest), and those past the count would be ignored")
        }
        if extra.name.hasSuffix(".bias") {
            throw FormatError("tensor \(extra.name) is a bias, which kvlab's \(family.ggufArchitecture) models do not have")
        }
        throw FormatError("unexpected tensor \(extra.name): not part of a \(family.ggufArchitecture) model, so it would be ignored")
    }

    /// N for a `blk.N.` tensor name.
    private static func layerNumber(_ name: String) -> Int? {
        let parts = name.split(separator: ".", maxSplits: 2)
        guard parts.count == 3, parts[0] == "blk", parts[1].allSatisfy({ $0.isASCII && $0.isNumber }) else { return nil }
        return Int(parts[1])
    }

    private static func assemble(_ file: GGUFFile, bytes: UnsafeRawBufferPointer, mapping: FileBytes, path: String) throws -> LoadedModel {
        let metadata = GGUFMetadata(file: file)
        guard let architecture = try metadata.string("general.architecture") else {
            throw FormatError("has no general.architecture")
        }
        guard architectures[architecture] != nil else {
            throw FormatError("architecture \(architecture) is not supported (kvlab runs "
                + architectures.keys.sorted().joined(separator: ", ") + ")")
        }
        let spec = try GGUFTokenizer.spec(metadata)
        var config = try modelConfig(metadata, vocabularySize: spec.tokens.count,
                                     defaultName: URL(fileURLWithPath: path).deletingPathExtension().lastPathComponent)

        let tensors = Dictionary(file.tensors.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        try checkTensorNames(file.tensors, layerCount: config.layerCount, family: config.family)
        func data(_ info: GGUFTensorInfo) -> UnsafeRawBufferPointer {
            UnsafeRawBufferPointer(rebasing: bytes[info.range])
        }
        func matrix(_ name: String) throws -> WeightMatrix {
            guard let info = tensors[name] else { throw FormatError("missing tensor \(name)") }
            guard info.dims.dropFirst(2).allSatisfy({ $0 == 1 }), info.dims.count >= 2 else {
                throw FormatError("tensor \(name) has shape \(info.shape), expected a matrix")
            }
            do {
                return try WeightMatrix(rows: info.dims[1], cols: info.dims[0], type: info.type, encoded: data(info), mapping: mapping)
            } catch let error as FormatError {
                throw FormatError("tensor \(name): \(error.problem)")
            }
        }
        func vector(_ name: String) throws -> [Float] {
            guard let info = tensors[name] else { throw FormatError("missing tensor \(name)") }
            guard info.dims.dropFirst().allSatisfy({ $0 == 1 }) else {
                throw FormatError("tensor \(name) has shape \(info.shape), expected a vector")
            }
            switch info.type {
            case .f32, .f16, .bf16:
                let matrix = try WeightMatrix(rows: 1, cols: info.dims[0], type: info.type, encoded: data(info))
                return matrix.decodedValues()
            default:
                throw FormatError("tensor \(name) is \(info.type.rawValue); norm weights must be f32, f16 or bf16")
            }
        }

        if tensors["rope_freqs.weight"] != nil {
            // llama.cpp's converter stores Llama 3.1 scaling as one divisor per frequency.
            guard config.ropeScaling == .none else {
                throw FormatError("has both rope_freqs.weight and \(config.family.ggufArchitecture).rope.scaling.type")
            }
            config.ropeScaling = .frequencyFactors(try vector("rope_freqs.weight").map(Double.init))
            try config.validate()
        }
        if config.family == .phi3 { try applyLongRoPE(&config, metadata, present: { tensors[$0] != nil }, vector: vector) }
        let embedding = try matrix("token_embd.weight")
        let layers = try (0..<config.layerCount).map { i in
            try FamilyTensors.layer(config, matrix: { name, rows, cols in
                let tensor = try matrix("blk.\(i).\(name)")
                guard tensor.rows == rows, tensor.cols == cols else {
                    throw FormatError("tensor blk.\(i).\(name) is \(tensor.rows)×\(tensor.cols), expected \(rows)×\(cols)")
                }
                return tensor
            }, vector: { name, _ in try vector("blk.\(i).\(name)") })
        }
        let output = tensors["output.weight"] == nil ? embedding : try matrix("output.weight")
        let weights = try ModelWeights(config: config, tokenEmbedding: embedding, layers: layers,
                                       outputNorm: try vector("output_norm.weight"), output: output)
        let tokenizer = try spec.makeTokenizer()

        var shown: [(String, String)] = [("gguf.version", "\(file.version)")]
        for (key, value) in file.metadata where key.hasPrefix("general.") || key.hasPrefix(architecture + ".") || key.hasPrefix("kvlab.") {
            if case .array = value { continue }
            let recipe = key == "general.file_type" ? value.integer.flatMap(GGUFFileType.name).map { " (\($0))" } : nil
            shown.append((key, value.displayText + (recipe ?? "")))
        }
        shown.append(("tokenizer.ggml.model", spec.model.rawValue))
        if spec.model == .byteLevelBPE { shown.append(("tokenizer.ggml.pre", spec.preTokenizer)) }
        shown.append(("vocabulary", "\(spec.tokens.count) tokens"))
        return LoadedModel(
            weights: weights, tokenizer: tokenizer, format: .gguf, path: path,
            tensors: file.tensors.map { TensorInfo(name: $0.name, shape: $0.shape, type: $0.type, byteCount: $0.range.count) },
            metadata: shown)
    }

    /// The config from `<arch>.*` metadata, llama.cpp's keys. Every `<arch>.` key is either read
    /// here or known not to change the math; any other is refused, so nothing is silently ignored.
    static func modelConfig(_ metadata: GGUFMetadata, vocabularySize: Int, defaultName: String) throws -> ModelConfig {
        let architecture = try metadata.string("general.architecture") ?? "llama"
        guard let family = architectures[architecture] else {
            throw FormatError("architecture \(architecture) is not supported (kvlab runs "
                + architectures.keys.sorted().joined(separator: ", ") + ")")
        }
        let a = architecture + "."
        if let unknown = metadata.file.metadata.map(\.0).first(where: { $0.hasPrefix(a) && !knownKeys.contains(String($0.dropFirst(a.count))) }) {
            throw FormatError("metadata key \(unknown) is not supported (kvlab does not implement what it changes)")
        }
        for key in ["expert_count", "expert_used_count"] + (family == .llama || family == .qwen2 || family == .qwen3 ? ["attention.sliding_window"] : []) {
            if let value = try metadata.integer(a + key), value != 0 {
                throw FormatError("metadata \(a + key) \(value) is not supported (llama.cpp's \(architecture) graph has no such feature)")
            }
        }
        let headCount = try metadata.requiredInteger(a + "attention.head_count")
        let headDim = try metadata.integer(a + "attention.key_length")
        if let valueLength = try metadata.integer(a + "attention.value_length"), valueLength != headDim {
            throw FormatError("\(a)attention.value_length \(valueLength) differs from the key length; kvlab needs equal k and v heads")
        }
        var config = ModelConfig(
            name: try metadata.string("general.name") ?? defaultName,
            dim: try metadata.requiredInteger(a + "embedding_length"),
            hiddenDim: try metadata.requiredInteger(a + "feed_forward_length"),
            layerCount: try metadata.requiredInteger(a + "block_count"),
            headCount: headCount,
            kvHeadCount: try metadata.integer(a + "attention.head_count_kv") ?? headCount,
            vocabSize: vocabularySize,
            contextLength: try metadata.requiredInteger(a + "context_length"),
            ropeTheta: try metadata.float(a + "rope.freq_base") ?? 10000,
            rmsEps: Float(try metadata.requiredFloat(a + "attention.layer_norm_rms_epsilon")),
            // llama.cpp rotates llama in pairs (its converter permutes q/k) and the others half-wise (NEOX).
            ropeStyle: family == .llama ? .interleaved : .halfRotation,
            headDim: headDim, family: family)
        if let declared = try metadata.integer(a + "vocab_size"), declared != vocabularySize {
            throw FormatError("\(a)vocab_size is \(declared) but the tokenizer has \(vocabularySize) tokens")
        }
        config.ropeScaling = try ropeScaling(metadata, prefix: a, family: family)
        try familyConfig(&config, metadata, prefix: a)
        try config.validate()
        if let rotary = try metadata.integer(a + "rope.dimension_count"), rotary != config.headDim {
            throw FormatError("\(a)rope.dimension_count \(rotary) differs from the head size \(config.headDim); partial RoPE is not supported")
        }
        return config
    }

    /// What llama.cpp's graphs for Phi-3 and Gemma read beyond the llama keys, as they read it:
    /// Gemma's √dim embedding scale, GELU gate, attention scale (1/√head size, or 1/√(dim/heads)
    /// for the 27B shape), soft-caps (Gemma 2: defaults 50 and 30), local layers (Gemma 2 every
    /// other one; Gemma 3 five in six, with base `rope.freq_base_swa` and no scaling). llama.cpp
    /// runs Phi-3 without its sliding window, and so does kvlab with a GGUF.
    private static func familyConfig(_ c: inout ModelConfig, _ metadata: GGUFMetadata, prefix a: String) throws {
        guard c.family == .gemma2 || c.family == .gemma3 else { return }
        let gemma2 = c.family == .gemma2
        c.embeddingScale = Float(c.dim).squareRoot()
        c.activation = .geluTanh
        let large = c.layerCount == (gemma2 ? 46 : 62)
        c.attentionScale = 1 / Double(large ? c.dim / c.headCount : c.headDim).squareRoot()
        if gemma2 {
            c.attentionSoftcap = try metadata.float(a + "attn_logit_softcapping") ?? 50
            c.finalSoftcap = try metadata.float(a + "final_logit_softcapping") ?? 30
        } else {
            if let cap = try metadata.float(a + "attn_logit_softcapping") {
                throw FormatError("metadata \(a)attn_logit_softcapping \(cap) is not supported (llama.cpp's gemma3 graph has no attention soft-cap)")
            }
            if let cap = try metadata.float(a + "final_logit_softcapping"), cap != 0 { c.finalSoftcap = cap }
        }
        let window = try metadata.integer(a + "attention.sliding_window") ?? (gemma2 ? 4096 : 0)
        guard window > 0 else { return }
        let local: [Bool]
        if case .array(.bool, let flags)? = metadata.file[a + "attention.sliding_window_pattern"] {
            guard flags.count == c.layerCount else {
                throw FormatError("metadata \(a)attention.sliding_window_pattern has \(flags.count) entries for \(c.layerCount) layers")
            }
            local = flags.map { if case .bool(let flag) = $0 { flag } else { false } }
        } else {
            let pattern = try metadata.integer(a + "attention.sliding_window_pattern") ?? (gemma2 ? 2 : 6)
            local = (0..<c.layerCount).map { pattern == 0 || $0 % pattern < pattern - 1 }
        }
        c.attentionSpans = local.map { $0 ? .local(window: window) : .global }
        if !gemma2 { c.localRoPE = RoPE(theta: try metadata.float(a + "rope.freq_base_swa") ?? 10000) }
    }

    /// Phi-3's LongRoPE as llama.cpp's converter stores it: the two factor sets as tensors, the
    /// attention factor as `rope.scaling.attn_factor`. llama.cpp's phi3 graph takes the long set when
    /// its context exceeds `rope.scaling.original_context_length`; kvlab's context is the model's.
    static let longropeTensors = ["rope_factors_short.weight", "rope_factors_long.weight"]

    private static func applyLongRoPE(_ c: inout ModelConfig, _ metadata: GGUFMetadata, present has: (String) -> Bool,
                                      vector: (String) throws -> [Float]) throws {
        let a = c.family.ggufArchitecture + "."
        let attention = try metadata.float(a + "rope.scaling.attn_factor") ?? 1
        let present = longropeTensors.filter(has)
        guard !present.isEmpty else {
            if attention != 1 { throw FormatError("\(a)rope.scaling.attn_factor \(attention) is not supported without longrope factors") }
            if try metadata.string(a + "rope.scaling.type") == "longrope" {
                throw FormatError("\(a)rope.scaling.type is longrope but the file has no \(longropeTensors.joined(separator: " or "))")
            }
            return
        }
        guard present.count == 2 else {
            throw FormatError("has \(present[0]) without \(longropeTensors.first { $0 != present[0] }!)")
        }
        c.ropeScaling = .longrope(shortFactors: try vector(longropeTensors[0]).map(Double.init),
                                  longFactors: try vector(longropeTensors[1]).map(Double.init),
                                  originalContext: try metadata.integer(a + "rope.scaling.original_context_length") ?? c.contextLength,
                                  context: c.contextLength, attentionFactor: attention)
        try c.validate()
    }

    /// `<arch>.` keys kvlab reads, or that do not change the math (`rope.scaling.finetuned` is a flag for people).
    static let knownKeys: Set<String> = [
        "context_length", "embedding_length", "block_count", "feed_forward_length", "vocab_size",
        "attention.head_count", "attention.head_count_kv", "attention.key_length", "attention.value_length",
        "attention.layer_norm_rms_epsilon", "attention.sliding_window", "expert_count", "expert_used_count",
        "rope.freq_base", "rope.dimension_count", "rope.scaling.type", "rope.scaling.factor",
        "rope.scaling.original_context_length", "rope.scaling.finetuned", "rope.scaling.yarn_ext_factor",
        "rope.scaling.attn_factor", "rope.scaling.yarn_log_multiplier",
        "rope.scaling.yarn_attn_factor", "rope.scaling.yarn_beta_fast", "rope.scaling.yarn_beta_slow",
        "attn_logit_softcapping", "final_logit_softcapping", "attention.sliding_window_pattern", "rope.freq_base_swa",
    ]

    /// `rope.scaling.*` as llama.cpp applies it: linear, or YaRN with extrapolation factor 1 and
    /// attention factor (0.1·ln(factor) + 1) · `rope.scaling.attn_factor`. llama.cpp recomputes
    /// (overwrites) `yarn_attn_factor`, so that key changes nothing.
    private static func ropeScaling(_ metadata: GGUFMetadata, prefix a: String, family: ModelFamily) throws -> RoPEScaling {
        let type = try metadata.string(a + "rope.scaling.type") ?? "none"
        // Phi-3's LongRoPE (its factor tensors and attention factor) is read with the tensors.
        if family == .phi3, type == "longrope" || type == "none" { return .none }
        let attentionFactor = try metadata.float(a + "rope.scaling.attn_factor") ?? 1
        if type != "yarn", attentionFactor != 1 {
            throw FormatError("\(a)rope.scaling.attn_factor \(attentionFactor) is not supported without yarn scaling")
        }
        if let multiplier = try metadata.float(a + "rope.scaling.yarn_log_multiplier"), multiplier != 0 {
            throw FormatError("\(a)rope.scaling.yarn_log_multiplier \(multiplier) is not supported")
        }
        func factor() throws -> Double {
            guard let f = try metadata.float(a + "rope.scaling.factor") else {
                throw FormatError("\(a)rope.scaling.type \(type) needs \(a)rope.scaling.factor")
            }
            return f
        }
        switch type {
        case "none":
            return .none
        case "linear":
            return .linear(factor: try factor())
        case "yarn":
            if let ext = try metadata.float(a + "rope.scaling.yarn_ext_factor"), ext != 1, ext >= 0 {
                throw FormatError("\(a)rope.scaling.yarn_ext_factor \(ext) is not supported (1 only)")
            }
            let f = try factor()
            guard let original = try metadata.integer(a + "rope.scaling.original_context_length") else {
                throw FormatError("\(a)rope.scaling.type yarn needs \(a)rope.scaling.original_context_length")
            }
            let attention = attentionFactor * RoPEScaling.yarnAttentionFactor(f)
            return .yarn(factor: f, originalContext: original, betaFast: try metadata.float(a + "rope.scaling.yarn_beta_fast") ?? 32,
                         betaSlow: try metadata.float(a + "rope.scaling.yarn_beta_slow") ?? 1, attentionFactor: attention, truncate: true)
        default:
            throw FormatError("\(a)rope.scaling.type \(type) is not supported (none, linear or yarn)")
        }
    }

    // MARK: - Writing

    /// The file as chunks: header and metadata, then each tensor's data padded to the alignment.
    static func encode(_ modelWeights: ModelWeights, tokenizer spec: TokenizerSpec) throws -> [OutputChunk] {
        // GGUF models use the interleaved RoPE convention.
        let weights = modelWeights.withRoPEStyle(.interleaved)
        let c = weights.config
        try weights.checkWritable()
        try c.validate()
        try spec.validate(vocabSize: c.vocabSize)
        let alignment = GGUFFile.defaultAlignment

        var tensors: [(name: String, dims: [Int], type: WeightType, chunk: OutputChunk)] = []
        for (name, matrix) in weights.namedMatrices {
            tensors.append((name, [matrix.cols, matrix.rows], matrix.type, .matrix(matrix)))
        }
        for (name, values) in weights.namedNorms {
            var data = ByteWriter()
            for value in values { data.writeFloat(value) }
            tensors.append((name, [values.count], .f32, .data(data.data)))
        }

        var header = ByteWriter()
        header.write(GGUFFile.magic)
        header.write(UInt32(3))
        let metadata = metadataEntries(weights, spec: spec, alignment: alignment)
        header.write(UInt64(tensors.count))
        header.write(UInt64(metadata.count))
        for (key, value) in metadata {
            header.writeGGUFString(key)
            header.writeGGUFValue(value)
        }
        var offset = 0
        for tensor in tensors {
            header.writeGGUFString(tensor.name)
            header.write(UInt32(tensor.dims.count))
            for dim in tensor.dims { header.write(UInt64(dim)) }
            header.write(tensor.type.ggmlTypeID)
            header.write(UInt64(offset))
            offset += GGUFFile.padded(tensor.chunk.count, to: alignment)
        }
        header.pad(toMultipleOf: alignment)

        var chunks: [OutputChunk] = [.data(header.data)]
        for tensor in tensors {
            chunks.append(tensor.chunk)
            let padding = GGUFFile.padded(tensor.chunk.count, to: alignment) - tensor.chunk.count
            if padding > 0 { chunks.append(.data(Data(count: padding))) }
        }
        return chunks
    }

    private static func metadataEntries(_ weights: ModelWeights, spec: TokenizerSpec, alignment: Int) -> [(String, GGUFValue)] {
        let c = weights.config
        func u32(_ value: Int) -> GGUFValue { .uint32(UInt32(clamping: value)) }
        // llama.cpp's file type for the type the weights were converted to: rows that are not whole
        // blocks fall back to a smaller block, so the largest block size wins, then the most bytes.
        let bytesByType = Dictionary(weights.namedMatrices.map { ($0.1.type, $0.1.byteCount) }, uniquingKeysWith: +)
        let mainType = bytesByType.max { ($0.key.blockSize, $0.value) < ($1.key.blockSize, $1.value) }?.key ?? .f32
        let fileType = GGUFFileType.id(mainType: mainType)
        var entries: [(String, GGUFValue)] = [
            ("general.architecture", .string("llama")),
            ("general.name", .string(c.name)),
            ("general.alignment", u32(alignment)),
            ("general.file_type", .uint32(fileType)),
        ]
        if weights.namedMatrices.contains(where: { $0.1.type.blockSize > 1 }) {
            entries.append(("general.quantization_version", .uint32(2)))
        }
        entries += [
            ("llama.vocab_size", u32(c.vocabSize)),
            ("llama.context_length", u32(c.contextLength)),
            ("llama.embedding_length", u32(c.dim)),
            ("llama.block_count", u32(c.layerCount)),
            ("llama.feed_forward_length", u32(c.hiddenDim)),
            ("llama.rope.dimension_count", u32(c.headDim)),
            ("llama.attention.head_count", u32(c.headCount)),
            ("llama.attention.head_count_kv", u32(c.kvHeadCount)),
            ("llama.rope.freq_base", .float32(Float(c.ropeTheta))),
            ("llama.attention.layer_norm_rms_epsilon", .float32(c.rmsEps)),
            ("tokenizer.ggml.model", .string(spec.model.rawValue)),
            ("tokenizer.ggml.tokens", .array(.string, spec.tokens.map { .string($0) })),
        ]
        if spec.model == .sentencePiece {
            entries.append(("tokenizer.ggml.scores", .array(.float32, spec.scores.map { .float32($0) })))
        }
        entries.append(("tokenizer.ggml.token_type", .array(.int32, spec.types.map { .int32($0.rawValue) })))
        if spec.model != .sentencePiece {
            entries.append(("tokenizer.ggml.merges", .array(.string, spec.merges.map { .string($0) })))
        }
        if spec.model == .byteLevelBPE { entries.append(("tokenizer.ggml.pre", .string(spec.preTokenizer))) }
        for (key, id) in [("bos", spec.bosID), ("eos", spec.eosID), ("unknown", spec.unknownID)] {
            if let id { entries.append(("tokenizer.ggml.\(key)_token_id", u32(id))) }
        }
        entries.append(("tokenizer.ggml.add_bos_token", .bool(spec.addBOS)))
        if spec.model == .sentencePiece, !spec.addSpacePrefix { entries.append(("tokenizer.ggml.add_space_prefix", .bool(false))) }
        if let template = spec.chatTemplate { entries.append(("tokenizer.chat_template", .string(template))) }
        return entries
    }
}

extension ModelFamily {
    /// llama.cpp's architecture name for the family (its converter writes Mistral as `llama`).
    var ggufArchitecture: String { self == .mistral ? "llama" : rawValue }
}

/// Typed access to GGUF metadata: an absent key is nil, a key of the wrong type is an error
/// naming it (any integer width is accepted where an integer is expected).
struct GGUFMetadata {
    let file: GGUFFile

    func string(_ key: String) throws -> String? {
        guard let value = file[key] else { return nil }
        guard case .string(let text) = value else { throw wrongType(key, value, expected: "a string") }
        return text
    }

    func integer(_ key: String) throws -> Int? {
        guard let value = file[key] else { return nil }
        guard let integer = value.integer else {
            if case .uint64(let big) = value { throw FormatError("metadata \(key) value \(big) is out of range") }
            throw wrongType(key, value, expected: "an integer")
        }
        return integer
    }

    func requiredInteger(_ key: String) throws -> Int {
        guard let value = try integer(key) else { throw FormatError("missing metadata key \(key)") }
        return value
    }

    /// A float key; integer values are accepted too.
    func float(_ key: String) throws -> Double? {
        guard let value = file[key] else { return nil }
        guard let number = value.floatingPoint ?? value.integer.map(Double.init) else {
            throw wrongType(key, value, expected: "a number")
        }
        return number
    }

    func requiredFloat(_ key: String) throws -> Double {
        guard let value = try float(key) else { throw FormatError("missing metadata key \(key)") }
        return value
    }

    func bool(_ key: String) throws -> Bool? {
        guard let value = file[key] else { return nil }
        guard case .bool(let flag) = value else { throw wrongType(key, value, expected: "a boolean") }
        return flag
    }

    func strings(_ key: String) throws -> [String]? {
        guard let value = file[key] else { return nil }
        guard case .array(.string, let values) = value else { throw wrongType(key, value, expected: "an array of strings") }
        return values.map { if case .string(let text) = $0 { text } else { "" } }
    }

    func floats(_ key: String) throws -> [Float]? {
        guard let value = file[key] else { return nil }
        guard case .array(let element, let values) = value, element == .float32 || element == .float64 else {
            throw wrongType(key, value, expected: "an array of floats")
        }
        return values.map { Float($0.floatingPoint ?? 0) }
    }

    func integers(_ key: String) throws -> [Int]? {
        guard let value = file[key] else { return nil }
        guard case .array(let element, let values) = value, element != .float32, element != .float64,
              element != .bool, element != .string else {
            throw wrongType(key, value, expected: "an array of integers")
        }
        return try values.map { element in
            guard let integer = element.integer else { throw FormatError("metadata \(key) holds an out-of-range integer") }
            return integer
        }
    }

    private func wrongType(_ key: String, _ value: GGUFValue, expected: String) -> FormatError {
        FormatError("metadata \(key) is \(value.typeDescription), expected \(expected)")
    }
}

/// A model file's bytes (memory-mapped by `InputFile.read`), kept alive by the weight matrices that
/// use them in place. The `Data` is never mutated, so its bytes do not move.
final class FileBytes {
    let data: Data

    init(_ data: Data) { self.data = data }
}
