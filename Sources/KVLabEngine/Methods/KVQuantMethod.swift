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
    /// entries quantized (`QuantizedKVStore.fixScale`).
    case fp8(FP8Format, scale: FP8ScaleScope)
}

/// How the cache stores keys and values: the KV quantization methods of docs KV-METHODS.md with
/// their parameters, parsed from the compact method syntax (`kivi:bits=2,group=32,residual=128`).
public struct KVQuantMethod: Sendable, Hashable, CustomStringConvertible {
    public let key: KVTensorFormat
    public let value: KVTensorFormat
    /// The most recent entries of each (layer, KV head) that stay fp32; older ones are quantized.
    public let residual: Int
    /// The canonical method string, every parameter spelled out.
    public let spec: MethodSpec

    public static let fp32 = try! KVQuantMethod(parsing: "fp32")

    /// Method names in the order the UI cycles through them.
    public static let names = ["fp32", "uniform", "kivi", "q8_0", "q4_0", "q4_1", "q5_0", "q5_1", "ggml", "fp8"]

    private static let schemas: [String: ParameterSchema] = {
        typealias S = ParameterSchema
        let bits = UniformQuantizer.supportedBits.map(String.init)
        let axes = KVQuantAxis.allCases.map(\.rawValue)
        let blocks = KVBlockFormat.allCases.map(\.rawValue)
        let group = S.int("group", 32, 1...4096)
        let residual = { (value: Int) in S.int("residual", value, 0...1_048_576) }
        var list = [
            S("fp32", []),
            S("uniform", [S.choice("kbits", "4", bits), S.choice("vbits", "4", bits), S.choice("kaxis", "channel", axes),
                          S.choice("vaxis", "token", axes), group, residual(128)]),
            S("kivi", [S.choice("bits", "2", bits), group, residual(128)]),
            S("ggml", [S.choice("k", "q8_0", blocks), S.choice("v", "q8_0", blocks), residual(0)]),
            // vLLM's default is one scale per tensor.
            S("fp8", [S.choice("format", "e4m3", ["e4m3", "e5m2"]), S.choice("scale", "tensor", FP8ScaleScope.allCases.map(\.rawValue)),
                      residual(0)]),
        ]
        list += KVBlockFormat.allCases.map { S($0.rawValue, [residual(0)]) }
        return Dictionary(uniqueKeysWithValues: list.map { ($0.method, $0) })
    }()

    public init(parsing text: String) throws(MethodSpecError) {
        try self.init(MethodSpec(parsing: text))
    }

    public init(_ spec: MethodSpec) throws(MethodSpecError) {
        guard let schema = Self.schemas[spec.name] else {
            throw MethodSpecError("unknown KV quantization '\(spec.name)' (\(Self.names.joined(separator: ", ")))")
        }
        guard spec.modifiers.isEmpty else { throw MethodSpecError("\(spec.name): KV quantization takes no modifiers") }
        let p = try schema.resolve(spec)
        switch spec.name {
        case "uniform":
            key = .uniform(bits: p.int("kbits"), axis: KVQuantAxis(rawValue: p.string("kaxis"))!, group: p.int("group"))
            value = .uniform(bits: p.int("vbits"), axis: KVQuantAxis(rawValue: p.string("vaxis"))!, group: p.int("group"))
        case "kivi":
            key = .uniform(bits: p.int("bits"), axis: .channel, group: p.int("group"))
            value = .uniform(bits: p.int("bits"), axis: .token, group: p.int("group"))
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
        self.spec = MethodSpec(name: spec.name, parameters: p.canonical)
    }

    public var description: String { spec.description }
}
