import Testing
@testable import KVLabEngine

/// Each sparse selector alone, over a page store filled with seeded random entries.
@Suite struct SparseSelectorTests {
    @Test func quickselectFindsTheKthLargest() {
        var generator = Xoshiro256(seed: 5)
        for trial in 0..<200 {
            let count = 1 + trial % 40
            // Few distinct values, so ties are common.
            let values = (0..<count).map { _ in Float(Int.random(in: 0..<6, using: &generator)) }
            let sorted = values.sorted(by: >)
            for k in 1...count {
                var scratch = values
                #expect(TopKSelector.kthLargest(&scratch, count: count, k: k) == sorted[k - 1])
            }
        }
        var slots: [Int32] = [3, 9, 1, 9, 4]
        slots.withUnsafeMutableBufferPointer { $0.insertionSort(by: >) }
        #expect(slots == [9, 9, 4, 3, 1])
    }
}
