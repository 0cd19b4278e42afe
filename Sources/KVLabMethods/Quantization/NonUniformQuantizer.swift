/// KVQuant's non-uniform levels (`nuq`): 2^b values fitted to a sample (per layer, from the
/// prompt's keys or values) by a deterministic 1-D k-means and stored as fp16; a value's code is
/// the index of its nearest level, packed like the uniform codes (`PackedCodes`). Inputs go
/// through `QuantizationInput.clean`, in fitting and in encoding.
public struct NonUniformQuantizer: Sendable, Hashable {
    /// The code widths offered, as for the uniform quantizer.
    public static let supportedBits = UniformQuantizer.supportedBits
    /// Lloyd iterations at most; 1-D k-means on sorted data settles long before this.
    package static let iterationLimit = 100

    /// Bits per code.
    public let bits: Int

    /// A quantizer with `bits`-bit codes, or nil unless `bits` is one of `supportedBits`.
    public init?(bits: Int) {
        guard Self.supportedBits.contains(bits) else { return nil }
        self.bits = bits
    }

    /// The number of levels, `2^b`.
    public var levelCount: Int { 1 << bits }

    /// Metadata bytes of one set of levels: `2·2^b` (fp16 each).
    public var metadataByteCount: Int { 2 * levelCount }

    /// Bytes of packed payload for `count` codes: `⌈count·b/8⌉`.
    public func payloadByteCount(codes count: Int) -> Int {
        PackedCodes.byteCount(codes: count, bits: bits)
    }

    /// Fits `levelCount` levels to `sample`, which it cleans and sorts in place, and writes them to
    /// `levels` as fp16 bits, ascending. Per-level state lives in temporary allocations (on the
    /// stack at these sizes), so a cache can fit levels mid-run without touching the heap.
    ///
    /// Lloyd's algorithm on the sorted sample: level j starts at the `(j + ½)/2^b` quantile; each
    /// value joins its nearest level (ties: the lower index); each level moves to the mean of its
    /// values, or stays when it has none; this repeats until no assignment changes or
    /// `iterationLimit`. An empty sample gives all-zero levels.
    package func fitLevels(_ sample: UnsafeMutableBufferPointer<Float>, into levelBits: UnsafeMutablePointer<UInt16>) {
        let k = levelCount
        let n = sample.count
        guard n > 0 else {
            levelBits.update(repeating: 0, count: k)
            return
        }
        for i in 0..<n { sample[i] = QuantizationInput.clean(sample[i]) }
        sample.heapSort(by: <)
        withUnsafeTemporaryAllocation(of: Float.self, capacity: k) { levels in
            withUnsafeTemporaryAllocation(of: Int.self, capacity: 3 * k) { ints in
                withUnsafeTemporaryAllocation(of: Double.self, capacity: k) { sums in
                    let members = ints.baseAddress!, nextDistinct = members + k, counts = members + 2 * k
                    for j in 0..<k {
                        levels[j] = sample[(2 * j + 1) * n / (2 * k)]
                        members[j] = -1
                    }
                    for _ in 0..<Self.iterationLimit {
                        // Levels stay ascending (means of consecutive runs of sorted values; sorting
                        // after an update puts an idle level back in order), so the nearest level of
                        // ascending values is found by one forward sweep over the first index of
                        // each run of equal levels.
                        nextDistinct[k - 1] = k
                        for j in stride(from: k - 2, through: 0, by: -1) {
                            nextDistinct[j] = levels[j + 1] == levels[j] ? nextDistinct[j + 1] : j + 1
                        }
                        counts.update(repeating: 0, count: k)
                        sums.initialize(repeating: 0)
                        var j = 0
                        for x in sample {
                            while nextDistinct[j] < k && abs(x - levels[nextDistinct[j]]) < abs(x - levels[j]) { j = nextDistinct[j] }
                            counts[j] += 1
                            sums[j] += Double(x)
                        }
                        // Sorted values assigned monotonically: the counts alone determine the assignment.
                        if (0..<k).allSatisfy({ counts[$0] == members[$0] }) { break }
                        members.update(from: counts, count: k)
                        for j in 0..<k where counts[j] > 0 { levels[j] = Float(sums[j] / Double(counts[j])) }
                        // Insertion sort: at most the idle levels are out of place.
                        levels.insertionSort(by: <)
                    }
                    // Rounding to fp16 is monotone, so the levels stay ascending.
                    for j in 0..<k { levelBits[j] = Half.fromFloat(levels[j]) }
                }
            }
        }
    }

    /// The index of the level nearest to `x` among ascending `levels` (ties: the lower index).
    @inline(__always)
    package func nearestLevel(_ x: Float, in levels: UnsafePointer<Float>) -> Int {
        // Binary search for the first level ≥ x; the answer is it or the last level below x.
        var lo = 0
        var hi = levelCount
        while lo < hi {
            let mid = (lo + hi) >> 1
            if levels[mid] < x { lo = mid + 1 } else { hi = mid }
        }
        if lo < levelCount && (lo == 0 || levels[lo] - x < x - levels[lo - 1]) { return lo }
        var below = lo - 1
        while below > 0 && levels[below - 1] == levels[below] { below -= 1 }
        return below
    }

    /// Writes the codes of `source[0], source[stride], …` (`count` values) at bit `bitOffset` of
    /// `codes`; `levels` are the `levelCount` fitted levels as floats, ascending.
    package func encode(_ source: UnsafePointer<Float>, count: Int, stride: Int, levels: UnsafePointer<Float>,
                into codes: UnsafeMutablePointer<UInt8>, bitOffset: Int) {
        for i in 0..<count {
            let code = nearestLevel(QuantizationInput.clean(source[i * stride]), in: levels)
            PackedCodes.store(UInt8(code), bits: bits, at: bitOffset + i * bits, in: codes)
        }
    }

    /// Decodes `count` codes at bit `bitOffset` of `codes` into `destination[0], destination[stride], …`.
    package func decode(_ codes: UnsafePointer<UInt8>, bitOffset: Int, count: Int, levels: UnsafePointer<Float>,
                into destination: UnsafeMutablePointer<Float>, stride: Int) {
        for i in 0..<count {
            destination[i * stride] = levels[Int(PackedCodes.load(bits: bits, at: bitOffset + i * bits, in: codes))]
        }
    }
}
