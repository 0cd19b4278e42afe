@testable import KVLabEngine
@testable import KVLabFoundation
@testable import KVLabMethods
import KVLabRun
@testable import KVLabRun
import Testing

/// A second configuration teacher-forced on a live run's tokens (the workbench's compare mode).
@Suite struct TeacherForcedFollowerTests {
    /// Steps the leader `count` times, the follower following each token; returns the follower's steps.
    static func follow(_ run: LiveRun, _ follower: TeacherForcedFollower, _ count: Int) throws -> [(TokenMetrics, FollowerStep)] {
        var steps: [(TokenMetrics, FollowerStep)] = []
        for _ in 0..<count {
            follower.capture(leader: run.engine.logits, ghost: run.ghostLogits)
            guard case .token(let token) = try run.step() else { break }
            steps.append((token, try #require(try follower.follow(token.token))))
        }
        return steps
    }

    @Test func aCopyOfTheLeaderStartedMidSequenceAgreesWithIt() throws {
        let model = try LiveRunTests.model()
        let run = try LiveRun(model: model, settings: try LiveRunTests.settings())
        try run.submit(prompt: "ROMEO:")
        _ = try LiveRunTests.generate(run, 10)
        let follower = try TeacherForcedFollower(model: model, settings: run.settings, tokens: run.tokens)
        let steps = try Self.follow(run, follower, 20)
        #expect(steps.count == 20)
        for (token, step) in steps {
            #expect(step.report.position == token.report.position, "the follower processes the leader's token at its position")
            #expect(step.kl < 1e-5, "same settings: the same distribution up to rounding (KL \(step.kl))")
            #expect(abs(step.nll - token.nll) < 1e-3 && abs(step.deltaNLL) < 1e-3)
            #expect(step.ghostKL == nil, "no ghost runs")
        }
    }

    @Test func aSmallerWindowHoldsLessAndDiffersFromTheLeaderAndTheGhost() throws {
        let model = try LiveRunTests.model()
        let run = try LiveRun(model: model, settings: try LiveRunTests.settings(), ghost: true)
        try run.submit(prompt: "ROMEO:")
        let follower = try TeacherForcedFollower(model: model, settings: run.settings, tokens: run.tokens)
        let change = try follower.set(.policy, to: "window:window=16", step: run.currentStep)
        #expect(change.old == "full" && change.new == "window:window=16")
        #expect(run.settings.eviction == .full, "the follower's knobs leave the leader alone")
        let steps = try Self.follow(run, follower, 60)
        #expect(steps.contains { $0.1.kl > 0.001 }, "a 16-token window changes the distribution")
        for (_, step) in steps {
            // The leader is the full fp32 cache, as the ghost: both KLs measure the same gap.
            let ghostKL = try #require(step.ghostKL)
            #expect(abs(ghostKL - step.kl) < 1e-3)
        }
        #expect(follower.cache.residency.total < run.cache.residency.total)
        try follower.restart(tokens: [1])
        #expect(follower.engine.position == 1)
    }
}
