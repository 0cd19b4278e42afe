import Testing
@testable import KVLabSweep

/// `kvlab heads`' retrieval score: which query heads hit at a copy step.
@Suite struct RetrievalHeadsTests {
    /// The value [5, 6] sits at positions 1–2 and 4–5; copying 6, a head hits only by attending
    /// most to a 6 inside a copy (position 2 or 5), not to a 5, to a 6 outside, or to nothing yet.
    @Test func aHeadHitsWhenItsTopPositionHoldsTheCopiedNeedleToken() {
        let probe = RetrievalHeads.Probe(prompt: [1, 5, 6, 7, 5, 6, 6], answer: [5, 6], needle: [1, 2, 4, 5])
        #expect(RetrievalHeads.hits(top: [2, 1, 6, -1, 5], probe: probe, copied: 6) == [true, false, false, false, true])
    }
}
