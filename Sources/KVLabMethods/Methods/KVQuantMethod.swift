/// Which way a uniform quantization group runs through a (layer, KV head)'s entries.
public enum KVQuantAxis: String, Sendable, Hashable, CaseIterable {
    /// A group is G consecutive channels of one token's vector.
    case token
    /// A group is one channel over G consecutive entries (they are quantized together).
    case channel
}

/// Where an fp8 scale applies, as in vLLM.
public enum FP8ScaleScope: String, Sendable, Hashable, CaseIterable {
    /// One scale per layer's K (and one per layer's V) tensor.
    case tensor
    /// One scale per (layer, KV head).
    case head
}

/// How one tensor (keys or values) of the cache stores the entries that left the residual window.
public enum KVTensorFormat: Sendable, Hashable {
    case fp32
    /// Asymmetric b-bit groups with fp16 scale and zero (`UniformQuantizer`).
    case uniform(bits: Int, axis: KVQuantAxis, group: Int)
    /// A llama.cpp block type (`KVBlockFormat`), 32 elements per block along the head dimension.
    /// llama.cpp refuses heads that are not a multiple of 32; kvlab falls back to blocks that run
    /// on over lcm(headDim, 32)/headDim consecutive entries, quantized together (`KVRecordCodec`).
    case block(KVBlockFormat)
    /// fp8 codes with an fp32 scale per tensor or per head (`FP8Format`), fixed from the first
    /// entries quantized (`QuantizedKVStore.calibrate`).
    case fp8(FP8Format, scale: FP8ScaleScope)
}

/// `mixed` (ZipVL style): which entries get the low bits.
public struct MixedPrecision: Sendable, Hashable {
    /// Bits of the entries below the threshold; the method's key and value formats have the high bits.
    public let lowBits: Int
    /// An entry whose accumulated score `Σ s_t` is below this when it leaves the residual window
    /// is stored at `lowBits`, otherwise at the high bits.
    public let threshold: Double
}

/// How the cache stores keys and values: the KV quantization methods of docs KV-METHODS.md with
/// their parameters, parsed from the compact method syntax.
///
/// A base method with its parameters (`fp32`, `uniform`, `kivi`, `mixed`, `ggml` and the block
/// types, `fp8`), then the KVQuant / RotateKV options as modifiers, canonically in this order with
/// every parameter spelled out:
///
///     kivi:bits=2,group=32,residual=128+prerope+rotate:protect-sinks=0+outliers:percent=1+nuq
///
/// - `prerope`: keys are stored (and quantized) before RoPE; attention applies RoPE to each key
///   as it reads it, at the key's position. Any base.
/// - `rotate:protect-sinks=s`: a normalized Walsh–Hadamard transform of each key (and of the
///   queries that score it) before it is stored, which spreads outlier channels before
///   quantization and leaves q·k unchanged; the first `s` positions are never quantized. Any
///   base; the head size must be a power of two (`check(headDim:)`). It helps per-token keys;
///   per-channel groups (kivi) already give an outlier channel its own scale, and rotating mixes
///   the channels they separate.
/// - `outliers:percent=x`: dense-and-sparse; the ⌈x% · headDim⌉ largest magnitudes of each key
///   and value are kept in fp16 with their index and left out of their groups' min and max.
///   Uniform bases only (`uniform`, `kivi`, `mixed`).
/// - `nuq`: codes index per-layer levels fitted by k-means on normalized keys (values) instead of
///   the uniform grid. Uniform bases only.
///
/// `mixed:high=8,low=2,group=32,residual=128,threshold=1`: KIVI's layout (keys per channel,
/// values per token, groups of G) in two precisions. When entries leave the residual window, a
/// record is stored at `high` bits if the attention `Σ s_t` received so far by any of its entries
/// (one value; G keys quantized together) reached `threshold`, else at `low` bits. It then keeps
/// that precision: re-encoding cannot bring lost bits back, and an accumulated score never falls.
/// The residual window must hold at least one entry, since the score is gathered there.
public struct KVQuantMethod: Sendable, Hashable, CustomStringConvertible {
    /// The formats of keys and values (for `mixed`, of the high-precision entries).
    public let key: KVTensorFormat
    public let value: KVTensorFormat
    /// The most recent entries of each (layer, KV head) that stay fp32; older ones are quantized.
    public let residual: Int
    /// `mixed`: the low precision and the score threshold; nil for other methods.
    public let mixed: MixedPrecision?
    /// `prerope`: keys stored before RoPE.
    public let preRoPE: Bool
    /// `rotate`: keys stored Hadamard-transformed.
    public let rotate: Bool
    /// `rotate`'s `protect-sinks`: entries at positions below this are never quantized.
    public let protectedSinks: Int
    /// `outliers`: percent of each vector kept as fp16 outliers; 0 without.
    public let outlierPercent: Double
    /// `nuq`: fitted non-uniform levels instead of the uniform grid.
    public let nuq: Bool
    /// The canonical method string, every parameter spelled out.
    public let spec: MethodSpec

    public static let fp32 = try! KVQuantMethod(parsing: "fp32")

    /// Method names in the order the UI cycles through them.
    public static let names = schemas.names.filter { !modifierNames.contains($0) }
    /// Modifier names in canonical order.
    public static let modifierNames = ["prerope", "rotate", "outliers", "nuq"]

    private static let schemas: SchemaTable = {
        typealias S = ParameterSchema
        let bits = UniformQuantizer.supportedBits.map(String.init)
        let axes = KVQuantAxis.allCases.map(\.rawValue)
        let blocks = KVBlockFormat.allCases.map(\.rawValue)
        let group = S.int("group", 32, 1...4096)
        let residual = { (value: Int, least: Int) in S.int("residual", value, least...1_048_576) }
        let list = [
            S("fp32", []),
            S("uniform", [S.choice("kbits", "4", bits), S.choice("vbits", "4", bits), S.choice("kaxis", "channel", axes),
                          S.choice("vaxis", "token", axes), group, residual(128, 0)]),
            S("kivi", [S.choice("bits", "2", bits), group, residual(128, 0)]),
            S("mixed", [S.choice("high", "8", bits), S.choice("low", "2", bits), group, residual(128, 1),
                        S.real("threshold", 1, 0...1_048_576)]),
        ] + KVBlockFormat.allCases.map { S($0.rawValue, [residual(0, 0)]) } + [
            S("ggml", [S.choice("k", "q8_0", blocks), S.choice("v", "q8_0", blocks), residual(0, 0)]),
            // vLLM's default is one scale per tensor.
            S("fp8", [S.choice("format", "e4m3", ["e4m3", "e5m2"]), S.choice("scale", "tensor", FP8ScaleScope.allCases.map(\.rawValue)),
                      residual(0, 0)]),
            S("prerope", []),
            S("rotate", [S.int("protect-sinks", 0, 0...1_048_576)]),
            S("outliers", [S.real("percent", 1, 0.01...100)]),
            S("nuq", []),
        ]
        return SchemaTable(list)
    }()

    public init(parsing text: String) throws(MethodSpecError) {
        try self.init(MethodSpec(parsing: text))
    }

    public init(_ spec: MethodSpec) throws(MethodSpecError) {
        guard !Self.modifierNames.contains(spec.name), let schema = Self.schemas[spec.name] else {
            throw MethodSpecError("unknown KV quantization '\(spec.name)' (\(Self.names.joined(separator: ", ")))")
        }
        let p = try schema.resolve(spec)
        var mixed: MixedPrecision?
        switch spec.name {
        case "uniform":
            key = .uniform(bits: p.int("kbits"), axis: KVQuantAxis(rawValue: p.string("kaxis"))!, group: p.int("group"))
            value = .uniform(bits: p.int("vbits"), axis: KVQuantAxis(rawValue: p.string("vaxis"))!, group: p.int("group"))
        case "kivi":
            key = .uniform(bits: p.int("bits"), axis: .channel, group: p.int("group"))
            value = .uniform(bits: p.int("bits"), axis: .token, group: p.int("group"))
        case "mixed":
            guard p.int("high") > p.int("low") else { throw MethodSpecError("mixed: high=\(p.int("high")) must be more bits than low=\(p.int("low"))") }
            key = .uniform(bits: p.int("high"), axis: .channel, group: p.int("group"))
            value = .uniform(bits: p.int("high"), axis: .token, group: p.int("group"))
            mixed = MixedPrecision(lowBits: p.int("low"), threshold: p.real("threshold"))
        case "ggml":
            key = .block(KVBlockFormat(rawValue: p.string("k"))!)
            value = .block(KVBlockFormat(rawValue: p.string("v"))!)
        case "fp8":
            let format: FP8Format = p.string("format") == "e4m3" ? .e4m3 : .e5m2
            key = .fp8(format, scale: FP8ScaleScope(rawValue: p.string("scale"))!)
            value = key
        default:
            if let block = KVBlockFormat(rawValue: spec.name) {
                key = .block(block)
                value = .block(block)
            } else {
                key = .fp32
                value = .fp32
            }
        }
        residual = p.values["residual"].flatMap(Int.init) ?? 0
        self.mixed = mixed
        // The options, each at most once, in canonical order.
        var options: [String: ResolvedParameters] = [:]
        for modifier in spec.modifiers {
            guard Self.modifierNames.contains(modifier.name) else {
                throw MethodSpecError("unknown modifier '\(modifier.name)' for \(spec.name) (\(Self.modifierNames.joined(separator: ", ")))")
            }
            guard options[modifier.name] == nil else { throw MethodSpecError("\(modifier.name) is given twice") }
            if modifier.name == "outliers" || modifier.name == "nuq", !["uniform", "kivi", "mixed"].contains(spec.name) {
                throw MethodSpecError("\(modifier.name) needs a uniform method (uniform, kivi, mixed), not \(spec.name)")
            }
            options[modifier.name] = try Self.schemas[modifier.name]!.resolve(modifier)
        }
        preRoPE = options["prerope"] != nil
        rotate = options["rotate"] != nil
        protectedSinks = options["rotate"]?.int("protect-sinks") ?? 0
        outlierPercent = options["outliers"]?.real("percent") ?? 0
        nuq = options["nuq"] != nil
        let modifiers = Self.modifierNames.compactMap { name in options[name].map { MethodSpec(name: name, parameters: $0.canonical) } }
        self.spec = MethodSpec(name: spec.name, parameters: p.canonical, modifiers: modifiers)
    }

    /// Checks that the method fits heads of `headDim` channels: the Hadamard transform of `rotate`
    /// needs a power of two, and outlier indices are 16 bits.
    public func check(headDim: Int) throws(MethodSpecError) {
        if rotate, headDim <= 0 || headDim & (headDim - 1) != 0 {
            throw MethodSpecError("rotate needs a power-of-two head size; this model's is \(headDim)")
        }
        if outlierPercent > 0, headDim > 1 << 16 { throw MethodSpecError("outliers needs heads of at most 65536 channels, not \(headDim)") }
    }

    public var description: String { spec.description }
}
