import KVLabHardware
import KVLabMethods
import KVLabRun
import KVLabSession

/// The run's clock: each step lasts what KVLabHardware's roofline projection gives for it on a
/// device × target shape, with the run's KV methods, at the live batch and the live mean context:
/// one decode step of the sequences that decode, plus a prefill of the step's prompt tokens.
/// A pure function of what the step did, so a serve run replays identically; the wall time the
/// engine took here is measured beside it.
public final class ProjectedClock: StepClock {
    public let projector: SessionProjector
    /// The KV methods and attention kernel the projection applies (knob changes update them).
    public var settings: RunSettings

    public init(projector: SessionProjector, settings: RunSettings) {
        self.projector = projector
        self.settings = settings
    }

    public func seconds(of step: StepShape) -> Double {
        var seconds = 0.0
        let context = max(1, Int(step.meanContext.rounded()))
        if step.decodes > 0, let decode = projection(context: context, batch: step.decodes) { seconds += decode.decodeSeconds }
        if step.prefillTokens > 0, let prefill = projection(context: step.prefillTokens, batch: 1) { seconds += prefill.ttft }
        return seconds
    }

    /// The projection of `batch` sequences of `context` tokens; nil when the KV quantization does
    /// not fit the target's heads (the step then costs nothing on that clock).
    public func projection(context: Int, batch: Int) -> Projection? {
        let target = projector.target
        guard (try? settings.quant.check(headDim: target.cacheKeyDim)) != nil else { return nil }
        return Projection(ProjectionSetup(device: projector.device, target: target, weights: settings.weights ?? .f16, context: context,
                                          batch: batch, eviction: settings.eviction, quant: settings.quant, sparse: settings.sparse,
                                          kernel: projector.kernel(for: settings.attention)))
    }
}
