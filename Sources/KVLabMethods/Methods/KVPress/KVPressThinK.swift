/// `kvpress:think,key_channel_compression_ratio=R,window_size=W`: kvpress's ThinKPress under its
/// own names. Its channel choice is kvlab's `think` (ThinK.swift): kvpress scores channel c of a
/// KV head by mean(q_c²)·mean(k_c²) (the last W queries of the head's group, the head's keys) and
/// zeroes the ⌊R·d⌋ lowest; kvlab's ‖Q_c‖·‖K_c‖ is the square root of a per-head constant times
/// that, so it ranks alike. The press therefore stands for `full+think:lambda=R,observation=W`
/// (R = 0, kvpress's default, is its no-op: `full`), and kvpress's
/// `ComposedPress([<press>, ThinKPress])` is `kvpress:<press>,…+think:lambda=R,observation=W`
/// (`scripts/kvpress_check.py --presses think` checks both against kvpress).
extension KVPressMethod {
    static let thinkPress = "think"

    /// The method `kvpress:think,…` stands for; nil when `spec` is another method.
    static func thinKMethod(_ spec: MethodSpec) throws(MethodSpecError) -> MethodSpec? {
        guard spec.name == methodName, spec.value(pressKey) == thinkPress else { return nil }
        let schema = ParameterSchema("kvpress:think", [ParameterSchema.share("key_channel_compression_ratio", 0),
                                                        ParameterSchema.int("window_size", 32, 1...ThinK.maxObservation)])
        let p = try schema.resolve(MethodSpec(name: spec.name, parameters: spec.parameters.filter { $0.key != pressKey }))
        let think = MethodSpec(name: "think", parameters: [.init(key: "lambda", value: p.string("key_channel_compression_ratio")),
                                                          .init(key: "observation", value: p.string("window_size"))])
        return MethodSpec(name: "full", modifiers: (p.real("key_channel_compression_ratio") > 0 ? [think] : []) + spec.modifiers)
    }
}
