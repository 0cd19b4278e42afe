/// A merge candidate of a BPE tokenizer: the heap pops the one that `precedes` all others.
protocol MergeCandidate {
    func precedes(_ other: Self) -> Bool
}

/// Binary heap of merge candidates (both BPE tokenizers merge in O(n log n) with it).
struct MergeHeap<Candidate: MergeCandidate> {
    private var items: [Candidate] = []

    mutating func push(_ candidate: Candidate) {
        items.append(candidate)
        var child = items.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard items[child].precedes(items[parent]) else { break }
            items.swapAt(child, parent)
            child = parent
        }
    }

    mutating func pop() -> Candidate? {
        guard let top = items.first else { return nil }
        let last = items.removeLast()
        if !items.isEmpty {
            items[0] = last
            var parent = 0
            while true {
                let left = 2 * parent + 1, right = left + 1
                var first = parent
                if left < items.count, items[left].precedes(items[first]) { first = left }
                if right < items.count, items[right].precedes(items[first]) { first = right }
                if first == parent { break }
                items.swapAt(parent, first)
                parent = first
            }
        }
        return top
    }
}
