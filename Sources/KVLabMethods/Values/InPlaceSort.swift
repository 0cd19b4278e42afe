/// Sorts that never allocate: the standard library's sort takes a merge buffer and a run stack
/// from the heap, and decode steps must not touch it.
extension UnsafeMutableBufferPointer {
    /// Insertion sort: for the handful of elements one step orders (stable).
    package func insertionSort(by areInIncreasingOrder: (Element, Element) -> Bool) {
        guard count > 1 else { return }
        for i in 1..<count {
            let element = self[i]
            var j = i
            while j > 0, areInIncreasingOrder(element, self[j - 1]) {
                self[j] = self[j - 1]
                j -= 1
            }
            self[j] = element
        }
    }

    /// Heap sort: O(n log n) for larger samples (not stable).
    package func heapSort(by areInIncreasingOrder: (Element, Element) -> Bool) {
        func siftDown(_ start: Int, _ end: Int) {
            var root = start
            while 2 * root + 1 < end {
                var child = 2 * root + 1
                if child + 1 < end, areInIncreasingOrder(self[child], self[child + 1]) { child += 1 }
                guard areInIncreasingOrder(self[root], self[child]) else { return }
                swapAt(root, child)
                root = child
            }
        }
        let n = count
        for start in stride(from: n / 2 - 1, through: 0, by: -1) { siftDown(start, n) }
        for end in stride(from: n - 1, to: 0, by: -1) {
            swapAt(0, end)
            siftDown(0, end)
        }
    }
}
