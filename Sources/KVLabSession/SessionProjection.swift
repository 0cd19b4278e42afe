import KVLabEngine
import KVLabHardware
import KVLabMethods
import KVLabRun

/// A setting of the hardware projection, changed mid-session as a view of the run rather than
/// a knob of the engine (which knows no devices).
public enum ProjectionSetting: String, Sendable, Codable, CaseIterable {
    /// The device profile projected onto.
    case device
    /// The target model shape projected.
    case target
    /// Tokens in the projected cache.
    case context
}

/// What a session projects every token onto: a bundled device profile, a target shape (bundled
/// or `live`) and the context at which the live cache state is applied to the target.
///
/// The live cache is applied to the target at `context` tokens, not at the live position: a head
/// that evicted keeps its token budget, one that kept everything keeps all `context` tokens, and
/// the KV quantization, sparse mode and attention kernel are the run's. So a full cache projects
/// the target at that context, and a 90-entry budget projects 90 entries per head.
public struct ProjectionSettings: Sendable, Equatable, Codable {
    /// A bundled device name (`HardwareCatalog.deviceNames` without `this-machine`, which differs
    /// from machine to machine and so cannot be replayed).
    public var device: String
    /// A bundled target name, or `live` (the session's model).
    public var target: String
    /// Tokens in the projected cache.
    public var context: Int

    /// The device projected onto when none is given (`kvlab run --target`, `kvlab project`, the workbench).
    public static let defaultDevice = HardwareCatalog.defaultDevice
    /// The target projected when none is given (`kvlab run --device`, `kvlab project`, the workbench).
    public static let defaultTarget = HardwareCatalog.defaultTarget
    /// The projected context when none is given, everywhere a projection starts.
    public static let defaultContext = HardwareCatalog.defaultContext

    public init(device: String = Self.defaultDevice, target: String = Self.defaultTarget, context: Int = Self.defaultContext) {
        self.device = device
        self.target = target
        self.context = context
    }

    /// Device names a session may use.
    public static var deviceNames: [String] { HardwareCatalog.deviceNames.filter { $0 != HardwareCatalog.thisMachine } }
    /// Target names a session may use (`live` included).
    public static var targetNames: [String] { HardwareCatalog.targetNames }

    /// A setting's value as recorded.
    public func value(of setting: ProjectionSetting) -> String {
        switch setting {
        case .device: device
        case .target: target
        case .context: String(context)
        }
    }

    /// Sets one setting from its text, checking device and target names against the catalog; a
    /// refused value leaves the settings as they were.
    public mutating func set(_ setting: ProjectionSetting, to text: String) throws(SessionProblem) {
        var changed = self
        switch setting {
        case .device: changed.device = text
        case .target: changed.target = text
        case .context:
            guard let value = Int(text) else { throw SessionProblem("context '\(text.prefix(40))' is not a number of tokens") }
            changed.context = value
        }
        try changed.validate()
        self = changed
    }

    /// Checks the names against the catalog and the context's range.
    func validate() throws(SessionProblem) {
        guard Self.deviceNames.contains(device) else {
            throw SessionProblem("unknown device '\(device.prefix(40))' (\(Self.deviceNames.joined(separator: ", ")))")
        }
        guard Self.targetNames.contains(target) else {
            throw SessionProblem("unknown target '\(target.prefix(40))' (\(Self.targetNames.joined(separator: ", ")))")
        }
        guard (1...CapacityReport.contextSearchLimit).contains(context) else {
            throw SessionProblem("projected context must be between 1 and \(CapacityReport.contextSearchLimit), got \(context)")
        }
    }
}

/// A projection setting changed before token `step`.
public struct ProjectionChange: Sendable, Equatable, Codable {
    /// Tokens generated before it.
    public var step: Int
    /// Which setting.
    public var setting: ProjectionSetting
    /// Its value before.
    public var old: String
    /// Its value from now on.
    public var new: String

    public init(step: Int, setting: ProjectionSetting, old: String, new: String) {
        self.step = step
        self.setting = setting
        self.old = old
        self.new = new
    }
}

/// Projection settings resolved to a device profile and a target shape: projects a live run's
/// cache state after any step (the recorder, the replayer and the workbench's panel share it).
public struct SessionProjector: Sendable {
    /// The settings resolved.
    public let settings: ProjectionSettings
    /// The device profile.
    public let device: DeviceProfile
    /// The target shape.
    public let target: TargetShape

    /// Resolves `settings`; `live` is the shape of `model`.
    public init(settings: ProjectionSettings, model: LoadedModel) throws(SessionProblem) {
        try settings.validate()
        self.settings = settings
        do {
            device = try HardwareCatalog.device(settings.device)
            target = settings.target == HardwareCatalog.live
                ? TargetShape(config: model.config, tiedEmbeddings: model.weights.tiedClassifier, id: HardwareCatalog.live,
                              source: "the session's model")
                : try HardwareCatalog.target(settings.target)
        } catch { throw SessionProblem("projection: \(error)") }
    }

    /// A projector for a device and target already resolved (the workbench, which may also
    /// project onto the probed `this-machine`, which sessions leave out).
    public init(settings: ProjectionSettings, device: DeviceProfile, target: TargetShape) {
        self.settings = settings
        self.device = device
        self.target = target
    }

    /// The projector with one setting changed.
    public func setting(_ setting: ProjectionSetting, to text: String, model: LoadedModel) throws(SessionProblem) -> SessionProjector {
        var changed = settings
        try changed.set(setting, to: text)
        return try SessionProjector(settings: changed, model: model)
    }

    /// The decode step of the target at the projected context, with the state of `cache` (which has
    /// seen `positions` tokens, none: the methods' own budgets; `lastStep` is its last decode step's
    /// ledger) and the run's methods, weight type (stored weights: f16) and attention kernel; f16
    /// activations, batch 1. Nil when the KV quantization does not fit the target's heads.
    public func project(cache: PagedKVCache, positions: Int, lastStep: IOLedger?, settings run: RunSettings) -> Projection? {
        guard (try? run.quant.check(headDim: target.cacheKeyDim)) != nil else { return nil }
        let live = positions > 0 ? LiveKVState(cache: cache, positions: positions, lastStep: lastStep) : nil
        return Projection(ProjectionSetup(device: device, target: target, weights: run.weights ?? .f16, context: settings.context,
                                          eviction: run.eviction, quant: run.quant, sparse: run.sparse, kernel: kernel(for: run.attention),
                                          live: live))
    }

    /// The run's attention kernel on the target: a tiled kernel keeps its SRAM, raised where the
    /// target's heads need more for one tile row.
    public func kernel(for attention: AttentionKernel) -> AttentionKernel {
        guard case .tiled(let sram) = attention else { return .naive }
        return .tiled(sramBytes: max(sram, AttentionTileShape.minimumSRAMBytes(headDim: target.cacheKeyDim)))
    }

    /// The projection of `run` after the step that produced `last`.
    public func project(run: LiveRun, last: TokenMetrics) -> Projection? {
        project(cache: run.cache, positions: run.position, lastStep: last.report.ledger, settings: run.settings)
    }
}
