import KVLabMethods

/// topk: every visible key is scored; each query head keeps its `k` best scores, the others are
/// masked in its row, and P·V reads the values any head kept.
final class TopKSelector: SparseSelector {
    let k: Int

    init(k: Int) { self.k = k }

    var scoresEveryKey: Bool { true }

    func select(_ step: SparseStep, attention: CacheAttention, log: StepReadLog, ledger: inout IOLedger) -> Int {
        let visible = step.visible
        attention.scorePages(index: step.index, queries: step.queries, pages: 0..<((visible + PageStore.pageSize - 1) / PageStore.pageSize))
        let selected = attention.selectedSlots, marks = attention.selectedMarks, sorted = attention.sortScratch
        guard k < visible else {
            for i in 0..<visible { selected[i] = Int32(i) }
            return visible
        }
        for i in 0..<visible { marks[i] = false }
        for g in 0..<attention.store.layout.groupSize {
            let row = attention.probabilities + g * attention.scoreStride
            sorted.update(from: row, count: visible)
            let kth = Self.kthLargest(sorted, count: visible, k: k)
            var above = 0
            for i in 0..<visible where row[i] > kth { above += 1 }
            // Ties at the k-th score keep the older slots, so exactly k survive.
            var ties = k - above
            for i in 0..<visible {
                if row[i] > kth || (row[i] == kth && ties > 0) {
                    if row[i] == kth { ties -= 1 }
                    marks[i] = true
                } else {
                    row[i] = CacheAttention.masked
                }
            }
        }
        var n = 0
        for i in 0..<visible where marks[i] {
            selected[n] = Int32(i)
            n += 1
        }
        return n
    }

    /// The k-th largest of `count` values (1-based), by in-place quickselect: the standard
    /// library's sort allocates, and decode steps must not.
    static func kthLargest(_ values: UnsafeMutablePointer<Float>, count: Int, k: Int) -> Float {
        var low = 0, high = count - 1
        let target = k - 1
        while low < high {
            let pivot = values[(low + high) / 2]
            var i = low, j = high
            while i <= j {
                while values[i] > pivot { i += 1 }
                while values[j] < pivot { j -= 1 }
                if i <= j {
                    (values[i], values[j]) = (values[j], values[i])
                    i += 1
                    j -= 1
                }
            }
            if target <= j { high = j } else if target >= i { low = i } else { break }
        }
        return values[target]
    }
}
