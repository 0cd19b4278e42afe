import KVLabMethods
import KVLabRun

/// The knob keys' rules, from the method tables: each key turns the settings the keys change
/// into one typed `SettingChange`, so nothing is spelled out and parsed again.
extension AppState {
    /// The change a knob key asks for, given the settings it changes; nil when there is nothing
    /// to step (no budget, no SRAM sizes). Throws when the method table refuses the stepped method.
    static func change(for action: AppAction, from settings: RunSettings, sramSizes: [Int]) throws(MethodSpecError) -> SettingChange? {
        switch action {
        case .cycleEviction(let forward):
            let name = cycle(EvictionMethod.cycleNames, after: settings.eviction.spec.name, forward: forward)
            return .eviction(try EvictionMethod(MethodSpec(name: name)))
        case .budget(let up):
            guard let spec = scaleBudget(settings.eviction.spec, up: up) else { return nil }
            return .eviction(try EvictionMethod(spec))
        case .cycleBits:
            return .quant(try KVQuantMethod(nextBits(settings.quant.spec)))
        case .cycleQuant:
            let name = cycle(KVQuantMethod.names, after: settings.quant.spec.name, forward: true)
            return .quant(try KVQuantMethod(MethodSpec(name: name)))
        case .cycleSparse(let forward):
            let name = cycle(SparseMethod.names, after: settings.sparse.spec.name, forward: forward)
            return .sparse(try SparseMethod(MethodSpec(name: name)))
        case .cycleWeights:
            let types: [WeightType?] = [nil] + WeightType.allCases
            let index = types.firstIndex(of: settings.weights) ?? types.count - 1
            return .weights(types[(index + 1) % types.count])
        case .toggleAttention:
            return .attention(settings.attention == .naive ? .tiled(sramBytes: sram(of: settings.attention)) : .naive)
        case .sram(let up):
            guard !sramSizes.isEmpty else { return nil }
            let current = sram(of: settings.attention)
            let next = up ? sramSizes.first { $0 > current } ?? sramSizes[0] : sramSizes.last { $0 < current } ?? sramSizes[sramSizes.count - 1]
            return .attention(.tiled(sramBytes: next))
        default:
            preconditionFailure("\(action) is not a knob key")
        }
    }

    /// The tiled kernel's SRAM, or the default SRAM a naive kernel switches to.
    private static func sram(of kernel: AttentionKernel) -> Int {
        if case .tiled(let bytes) = kernel { return bytes }
        return AttentionKernel.defaultSRAMBytes
    }

    /// The entry after (or before) `current` in `list`, wrapping; the first when `current` is not in it.
    static func cycle(_ list: [String], after current: String, forward: Bool) -> String {
        guard let index = list.firstIndex(of: current) else { return list.first ?? current }
        return list[(index + (forward ? 1 : list.count - 1)) % list.count]
    }

    /// The projected contexts the context key steps through: 4K, 32K, 128K and the target's own
    /// maximum, in order (the maximum once, where it falls).
    static func contexts(targetMaximum: Int) -> [Int] {
        Array(Set([4096, 32768, 131072, targetMaximum])).sorted()
    }

    /// The projected context after (or before) `current`, wrapping; from a context not in the list,
    /// the next larger one (or the previous smaller one).
    static func nextContext(after current: Int, targetMaximum: Int, forward: Bool) -> Int {
        let list = contexts(targetMaximum: targetMaximum)
        if forward { return list.first { $0 > current } ?? list[0] }
        return list.last { $0 < current } ?? list[list.count - 1]
    }

    /// Parameters that size an eviction method's budget.
    static let budgetParameters: Set<String> = ["budget", "window", "heavy", "recent"]
    /// Parameters that give a quantization's bits.
    static let bitParameters: Set<String> = ["bits", "kbits", "vbits", "low"]

    /// The method with its budget parameters halved or doubled, or nil when it has none.
    static func scaleBudget(_ method: MethodSpec, up: Bool) -> MethodSpec? {
        var spec = method
        var changed = false
        for index in spec.parameters.indices where budgetParameters.contains(spec.parameters[index].key) {
            guard let value = Int(spec.parameters[index].value) else { continue }
            spec.parameters[index].value = String(up ? min(value * 2, 1 << 20) : max(value / 2, value == 0 ? 0 : 1))
            changed = true
        }
        return changed ? spec : nil
    }

    /// The method with its bits at the next supported count (8 → 4 → 3 → 2 → 8), or KIVI when
    /// the method has no bits parameter.
    static func nextBits(_ method: MethodSpec) -> MethodSpec {
        guard method.parameters.contains(where: { bitParameters.contains($0.key) }) else { return MethodSpec(name: "kivi") }
        var spec = method
        let bits = UniformQuantizer.supportedBits
        for index in spec.parameters.indices where bitParameters.contains(spec.parameters[index].key) {
            spec.parameters[index].value = cycle(bits.map(String.init), after: spec.parameters[index].value, forward: true)
        }
        return spec
    }
}
