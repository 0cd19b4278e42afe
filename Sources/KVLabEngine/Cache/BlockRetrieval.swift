/// InfLLM-style block retrieval for one cache: past entries form blocks of `blockSize` positions
/// that live in the host-DRAM tier, each summarized by the `representatives` entries that had
/// received the most attention when the block left the local window; a step reads sinks, the
/// local window and the `top` blocks whose representatives score highest. Blocks read stay in
/// an LRU cache in HBM; a miss is a DRAM→HBM fetch.
///
/// Blocks are identified by position (block b holds positions `sinks + b·blockSize ..<`), so
/// eviction by another method only thins a block out.
final class BlockRetrieval {
    let sinks: Int
    let local: Int
    let blockSize: Int
    let representatives: Int
    let top: Int
    let lruCapacity: Int
    private let heads: Int
    private let capacity: Int
    private let blocksPerHead: Int
    private let arena = BufferArena()
    /// Attention each position has received while it was read (chooses representatives).
    private let received: UnsafeMutablePointer<Float>
    /// Per (head, block): representative positions (−1 unused); `formed` once chosen.
    private let representativePositions: UnsafeMutablePointer<Int32>
    private let formed: UnsafeMutablePointer<Bool>
    /// Per head: LRU of blocks resident in HBM (block id, last step used; −1 empty).
    private let lruBlocks: UnsafeMutablePointer<Int32>
    private let lruStamps: UnsafeMutablePointer<Int>
    private var clock = 0

    init(sinks: Int, local: Int, blockSize: Int, representatives: Int, top: Int, lruCapacity: Int, heads: Int, capacity: Int) {
        self.sinks = sinks
        self.local = local
        self.blockSize = blockSize
        self.representatives = representatives
        self.top = top
        self.lruCapacity = lruCapacity
        self.heads = heads
        blocksPerHead = capacity / blockSize + 1
        received = arena.allocate(Float.self, count: heads * capacity)
        representativePositions = arena.allocate(Int32.self, count: heads * blocksPerHead * representatives)
        formed = arena.allocate(Bool.self, count: heads * blocksPerHead)
        lruBlocks = arena.allocate(Int32.self, count: heads * lruCapacity)
        lruStamps = arena.allocate(Int.self, count: heads * lruCapacity)
        self.capacity = capacity
        reset()
    }

    func reset() {
        received.initialize(repeating: 0, count: heads * capacity)
        formed.initialize(repeating: false, count: heads * blocksPerHead)
        lruBlocks.initialize(repeating: -1, count: heads * lruCapacity)
        lruStamps.initialize(repeating: 0, count: heads * lruCapacity)
        clock = 0
    }

    /// The block of a position, or nil for sinks.
    func block(of position: Int) -> Int? { position < sinks ? nil : (position - sinks) / blockSize }

    /// Blocks entirely older than the local window of a query at `position`.
    func pastBlocks(at position: Int) -> Int { max(0, (position - local + 1 - sinks) / blockSize) }

    /// Whether an entry at `entry` is always read by a query at `position` (sink, local window,
    /// or a block still partly inside the window).
    func alwaysRead(_ entry: Int, at position: Int) -> Bool {
        guard let block = block(of: entry) else { return true }
        return block >= pastBlocks(at: position)
    }

    func addReceived(head: Int, position: Int, _ score: Float) { received[head * capacity + position] += score }

    /// Chooses each newly past block's representatives from its kept positions (sorted),
    /// highest received attention first (ties: the older position).
    func formBlocks(head: Int, at position: Int, kept: UnsafePointer<Int32>, count: Int) {
        let past = pastBlocks(at: position)
        var i = 0
        for b in 0..<past where !formed[head * blocksPerHead + b] {
            let first = Int32(sinks + b * blockSize), end = first + Int32(blockSize)
            while i < count, kept[i] < first { i += 1 }
            var j = i
            while j < count, kept[j] < end { j += 1 }
            let reps = representativePositions + (head * blocksPerHead + b) * representatives
            for r in 0..<representatives {
                var best = -1
                for k in i..<j {
                    let p = Int(kept[k])
                    if (0..<r).contains(where: { reps[$0] == Int32(p) }) { continue }
                    if best < 0 || received[head * capacity + p] > received[head * capacity + best] { best = p }
                }
                reps[r] = Int32(best)
            }
            formed[head * blocksPerHead + b] = true
            i = j
        }
    }

    /// Representative positions of a formed block (−1 where the block had fewer entries).
    func representatives(head: Int, block: Int) -> UnsafePointer<Int32> {
        UnsafePointer(representativePositions + (head * blocksPerHead + block) * representatives)
    }

    /// Starts a step (the LRU clock).
    func beginStep() { clock += 1 }

    /// Marks `block` read; returns true on a miss (the block had to come from host DRAM).
    func touch(head: Int, block: Int) -> Bool {
        let ids = lruBlocks + head * lruCapacity, stamps = lruStamps + head * lruCapacity
        var victim = 0
        for k in 0..<lruCapacity {
            if ids[k] == Int32(block) {
                stamps[k] = clock
                return false
            }
            if ids[k] < 0 || (ids[victim] >= 0 && stamps[k] < stamps[victim]) { victim = k }
        }
        ids[victim] = Int32(block)
        stamps[victim] = clock
        return true
    }

    /// Blocks resident in HBM for one head.
    func residentBlocks(head: Int) -> [Int] {
        (0..<lruCapacity).compactMap { lruBlocks[head * lruCapacity + $0] >= 0 ? Int(lruBlocks[head * lruCapacity + $0]) : nil }.sorted()
    }
}
