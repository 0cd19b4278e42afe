/// KVQuant's dense-and-sparse split of one vector: the largest magnitudes are kept as (UInt16
/// index, fp16 value) pairs and the dense rest is quantized with them left out of its min and max,
/// so one outlier does not stretch the whole group's scale. Values go through
/// `QuantizationInput.clean`, so outlier values are finite fp16.
///
/// Use: `select` the outliers, `mark` them in a mask, take each group's `inlierRange`, quantize the
/// group against the parameters of that range (outliers get an end code), and after dequantizing
/// `restore` them.
public enum OutlierSplit {
    /// Metadata bytes per outlier: a UInt16 index and an fp16 value.
    public static let metadataBytesPerOutlier = 4

    /// The outliers kept for `count` elements at `percent`%: `⌈percent/100 · count⌉`, at most
    /// `count`. A 1e-9 slack keeps products such as 7.000000000000001 from rounding up.
    public static func outlierCount(elements count: Int, percent: Double) -> Int {
        min(count, max(0, Int((percent * Double(count) / 100 - 1e-9).rounded(.up))))
    }

    /// Whether entry `a` outranks entry `b`: larger magnitude, then lower index.
    @inline(__always)
    private static func outranks(_ a: Int, _ b: Int, in vector: UnsafePointer<Float>) -> Bool {
        let ma = abs(QuantizationInput.clean(vector[a]))
        let mb = abs(QuantizationInput.clean(vector[b]))
        return ma > mb || (ma == mb && a < b)
    }

    /// Picks the `outlierCount` entries of largest magnitude among `count` (at most 65536; ties: the
    /// lower index) and writes their indices, ascending, and their fp16 values.
    package static func select(_ vector: UnsafePointer<Float>, count: Int, outlierCount k: Int,
                       indices: UnsafeMutablePointer<UInt16>, values: UnsafeMutablePointer<UInt16>) {
        precondition(count <= 1 << 16 && k <= count, "outlier indices are UInt16")
        guard k > 0 else { return }
        // Insertion into the best-first list held in `indices`: O(count·k) with no scratch, and k
        // is a few percent of a head.
        var kept = 0
        for i in 0..<count {
            if kept == k && !outranks(i, Int(indices[k - 1]), in: vector) { continue }
            var slot = min(kept, k - 1)
            while slot > 0 && outranks(i, Int(indices[slot - 1]), in: vector) {
                indices[slot] = indices[slot - 1]
                slot -= 1
            }
            indices[slot] = UInt16(i)
            kept = min(kept + 1, k)
        }
        // Ascending index order: the stored list is canonical and `restore` walks the vector once.
        UnsafeMutableBufferPointer(start: indices, count: k).insertionSort(by: <)
        for i in 0..<k { values[i] = Half.fromFloat(QuantizationInput.clean(vector[Int(indices[i])])) }
    }

    /// The min and max of the clean values `vector[0], vector[stride], …` (`count` of them) that
    /// `outliers` (read with the same stride) does not mark, or of all of them when `outliers` is
    /// nil; (0, 0) when every value is marked. A mask rather than the index list, because a
    /// per-channel group crosses the vectors of several entries, each with its own outliers.
    @inline(__always)
    package static func inlierRange(_ vector: UnsafePointer<Float>, count: Int, stride: Int,
                            outliers: UnsafePointer<Bool>?) -> (min: Float, max: Float) {
        var lo = Float.infinity
        var hi = -Float.infinity
        if let outliers {
            for i in 0..<count where !outliers[i * stride] {
                let x = QuantizationInput.clean(vector[i * stride])
                lo = min(lo, x)
                hi = max(hi, x)
            }
        } else {
            for i in 0..<count {
                let x = QuantizationInput.clean(vector[i * stride])
                lo = min(lo, x)
                hi = max(hi, x)
            }
        }
        return lo <= hi ? (lo, hi) : (0, 0)
    }

    /// Sets `mask` at the `k` outlier indices to `marked`.
    @inline(__always)
    package static func mark(_ indices: UnsafePointer<UInt16>, outlierCount k: Int, in mask: UnsafeMutablePointer<Bool>, _ marked: Bool) {
        for i in 0..<k { mask[Int(indices[i])] = marked }
    }

    /// Writes the outliers' values back over a dequantized vector.
    package static func restore(indices: UnsafePointer<UInt16>, values: UnsafePointer<UInt16>, outlierCount k: Int,
                        into vector: UnsafeMutablePointer<Float>) {
        for i in 0..<k { vector[Int(indices[i])] = Half.toFloat(values[i]) }
    }
}
