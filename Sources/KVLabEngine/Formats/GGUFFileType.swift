import KVLabMethods

/// llama.cpp's `llama_ftype`, the `general.file_type` a GGUF declares: the recipe its quantizer
/// followed (e.g. Q4_K_M mixes q4_K, q6_K and f32 tensors). kvlab reads the tensor types
/// themselves; the file type is written for llama.cpp and shown by `kvlab info`.
enum GGUFFileType {
    private static let names: [UInt32: String] = [
        0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 7: "Q8_0", 8: "Q5_0", 9: "Q5_1", 10: "Q2_K", 11: "Q3_K_S",
        12: "Q3_K_M", 13: "Q3_K_L", 14: "Q4_K_S", 15: "Q4_K_M", 16: "Q5_K_S", 17: "Q5_K_M", 18: "Q6_K",
        19: "IQ2_XXS", 20: "IQ2_XS", 21: "Q2_K_S", 22: "IQ3_XS", 23: "IQ3_XXS", 24: "IQ1_S", 25: "IQ4_NL",
        26: "IQ3_S", 27: "IQ3_M", 28: "IQ2_S", 29: "IQ2_M", 30: "IQ4_XS", 31: "IQ1_M", 32: "BF16",
        36: "TQ1_0", 37: "TQ2_0", 38: "MXFP4_MOE",
    ]

    /// The recipe name for a file type id ("Q4_K_M"), if llama.cpp defines it.
    static func name(_ id: Int) -> String? { UInt32(exactly: id).flatMap { names[$0] } }

    /// The file type of a model whose main matrices are `type`: kvlab writes one type throughout,
    /// so the recipe named after it, for the K-quants the small (_S) one, the nearest to uniform.
    static func id(mainType type: WeightType) -> UInt32 {
        switch type {
        case .f32: 0
        case .f16: 1
        case .q4_0: 2
        case .q4_1: 3
        case .q8_0: 7
        case .q5_0: 8
        case .q5_1: 9
        case .q2_K: 10
        case .q3_K: 11
        case .q4_K: 14
        case .q5_K: 16
        case .q6_K: 18
        case .iq4_nl: 25
        case .iq4_xs: 30
        case .bf16: 32
        }
    }
}
