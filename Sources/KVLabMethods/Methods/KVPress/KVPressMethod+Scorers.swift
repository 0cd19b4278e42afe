/// The scorer presses of kvpress beyond the first ten (ExpectedAttention, LagKV, LeverageScore,
/// CUR, NonCausalAttn, Compactor, and CriticalKV and CriticalAdaKV around a scorer): their parameters by kvpress
/// name and defaults.
extension KVPressMethod {
    static func scorerSchema(_ press: Press, given spec: MethodSpec) -> [ParameterSchema.Entry]? {
        typealias S = ParameterSchema
        let flag = { (key: String, value: Bool) in S.choice(key, value ? "true" : "false", ["true", "false"]) }
        let chunk = S.int("chunk_size", 256, 1...1_048_576)
        switch press {
        case .expectedattention:
            return [S.int("n_future_positions", 512, 1...1_048_576), S.int("n_sink", 4, 0...1024), flag("use_covariance", true),
                    flag("use_vnorm", true), S.real("epsilon", 0, 0...1_000_000)]
        case .lagkv: return [S.int("n_sink", 4, 0...1024), S.int("lag_size", 128, 1...1_048_576), flag("cross_scoring", false)]
        case .leveragescore: return []
        case .cur:
            return [S.int("num_sinks", 4, 0...1024), S.choice("leverage_type", "kv_product", CURScorer.Leverage.allCases.map(\.rawValue)),
                    flag("use_local_approximation", true), S.int("local_window_size", 16, 1...1_048_576)]
        case .noncausalattn: return [chunk]
        case .compactor:
            // kvpress's blending defaults to None, the compression ratio: named only when given.
            return [S.int("sink_size_start", 8, 0...1024), S.int("sink_size_end", 4, 0...1024), chunk]
                + (spec.value("blending") != nil ? [S.real("blending", 0, 0...1_000_000)] : [])
        case .criticalkv: return [S.real("epsilon", 1e-4, 0...1_000_000), S.real("first_stage_ratio", 0.5, 0...1)]
        case .criticaladakv:
            return [S.real("alpha_safeguard", 0.2, 0...1), S.real("epsilon", 1e-4, 0...1_000_000), S.real("first_stage_ratio", 0.5, 0...1)]
        default: return nil
        }
    }
}

/// Parameters of the scorer presses in `KVPressMethod.scorerSchema`.
struct KVPressScorerOptions: Sendable, Hashable {
    var nFuturePositions = 512, useCovariance = true, useVnorm = true, epsilon = 0.0
    var lagSize = 128, crossScoring = false
    var numSinks = 4, leverageType = CURScorer.Leverage.kv_product, useLocalApproximation = true, localWindowSize = 16
    var chunkSize = 256, sinkSizeStart = 8, sinkSizeEnd = 4
    var blending: Double?
    var criticalEpsilon = 1e-4, firstStageRatio = 0.5
    /// KVzip's `layerwise`: each layer drops its own share.
    var layerwise = false

    init(_ p: ResolvedParameters, press: KVPressMethod.Press) {
        let int = { (key: String, value: inout Int) in if p.values[key] != nil { value = p.int(key) } }
        let flag = { (key: String, value: inout Bool) in if let v = p.values[key] { value = v == "true" } }
        int("n_future_positions", &nFuturePositions)
        flag("use_covariance", &useCovariance)
        flag("use_vnorm", &useVnorm)
        // CriticalKV's epsilon is its own; the scorer it wraps keeps its default.
        if p.values["epsilon"] != nil {
            if press == .criticalkv || press == .criticaladakv { criticalEpsilon = p.real("epsilon") } else { epsilon = p.real("epsilon") }
        }
        if p.values["first_stage_ratio"] != nil { firstStageRatio = p.real("first_stage_ratio") }
        int("lag_size", &lagSize)
        flag("cross_scoring", &crossScoring)
        int("num_sinks", &numSinks)
        if let v = p.values["leverage_type"] { leverageType = CURScorer.Leverage(rawValue: v)! }
        flag("use_local_approximation", &useLocalApproximation)
        int("local_window_size", &localWindowSize)
        int("chunk_size", &chunkSize)
        flag("layerwise", &layerwise)
        int("sink_size_start", &sinkSizeStart)
        int("sink_size_end", &sinkSizeEnd)
        if p.values["blending"] != nil { blending = p.real("blending") }
    }

    func makeScorer(_ press: KVPressMethod.Press, nSink: Int) -> (any KVPressScorer)? {
        switch press {
        case .expectedattention:
            ExpectedAttentionScorer(nFuturePositions: nFuturePositions, nSink: nSink, useCovariance: useCovariance, useVnorm: useVnorm, epsilon: epsilon)
        case .lagkv: LagKVScorer(nSink: nSink, lagSize: lagSize, crossScoring: crossScoring)
        case .leveragescore: LeverageScorer()
        case .cur: CURScorer(numSinks: numSinks, leverage: leverageType, localApproximation: useLocalApproximation, localWindowSize: localWindowSize)
        case .noncausalattn: NonCausalAttnScorer(chunkSize: chunkSize)
        case .compactor: CompactorScorer(sinkSizeStart: sinkSizeStart, sinkSizeEnd: sinkSizeEnd, chunkSize: chunkSize, blending: blending)
        default: nil
        }
    }
}
