import Foundation
import KVLabMethods

/// Element-wise and normalization kernels of the llama forward pass (fp32 activations).
enum Ops {
    /// `out = x / rms(x) · weight`, with `rms = sqrt(mean(x²) + eps)` (llama2.c's rmsnorm).
    @inline(__always)
    static func rmsNorm(_ x: UnsafePointer<Float>, _ weight: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>,
                        count: Int, eps: Float) {
        var sumSquares: Float = 0
        for i in 0..<count { sumSquares += x[i] * x[i] }
        let scale = 1 / (sumSquares / Float(count) + eps).squareRoot()
        for i in 0..<count { out[i] = weight[i] * (scale * x[i]) }
    }

    /// RoPE on `heads` vectors of `headDim` channels, with precomputed cos/sin per frequency.
    @inline(__always)
    static func rotate(_ v: UnsafeMutablePointer<Float>, heads: Int, headDim: Int, style: RoPEStyle,
                       cos: UnsafePointer<Float>, sin: UnsafePointer<Float>) {
        let half = headDim / 2
        for h in 0..<heads {
            let head = v + h * headDim
            for i in 0..<half {
                // Interleaved rotates (2i, 2i+1); half-rotation rotates (i, i + d/2). Same frequency i.
                let a = style == .interleaved ? 2 * i : i
                let b = style == .interleaved ? 2 * i + 1 : i + half
                let x0 = head[a], x1 = head[b]
                head[a] = x0 * cos[i] - x1 * sin[i]
                head[b] = x0 * sin[i] + x1 * cos[i]
            }
        }
    }

    /// `a[i] = silu(a[i]) · b[i]` (SwiGLU's gate).
    @inline(__always)
    static func swiGLU(_ a: UnsafeMutablePointer<Float>, _ b: UnsafePointer<Float>, count: Int) {
        for i in 0..<count {
            let g = a[i]
            a[i] = g / (1 + expf(-g)) * b[i]
        }
    }

    /// RMSNorm of each `headDim`-channel head of `v` in place, with one weight per channel
    /// (Qwen3's q_norm and k_norm).
    @inline(__always)
    static func rmsNormHeads(_ v: UnsafeMutablePointer<Float>, heads: Int, headDim: Int, weight: UnsafePointer<Float>, eps: Float) {
        for h in 0..<heads { rmsNorm(v + h * headDim, weight, v + h * headDim, count: headDim, eps: eps) }
    }

    /// `a[i] *= s`.
    @inline(__always)
    static func scale(_ a: UnsafeMutablePointer<Float>, by s: Float, count: Int) {
        for i in 0..<count { a[i] *= s }
    }

    /// `a[i] += b[i]`.
    @inline(__always)
    static func add(_ a: UnsafeMutablePointer<Float>, _ b: UnsafePointer<Float>, count: Int) {
        for i in 0..<count { a[i] += b[i] }
    }
}

/// Cos/sin of RoPE angles for one position, computed in Double (as the reference does) from the
/// per-frequency inverse wavelengths (`RoPEScaling.inverseFrequencies`, scaling applied).
struct RoPETable {
    let inverseFrequencies: [Double]

    init(inverseFrequencies: [Double]) {
        self.inverseFrequencies = inverseFrequencies
    }

    /// Plain RoPE: `theta^(-2i/d)`.
    init(headDim: Int, theta: Double) {
        self.init(inverseFrequencies: RoPEScaling.none.inverseFrequencies(headDim: headDim, theta: theta))
    }

    /// Fills `cos` and `sin` (headDim/2 each) for `position`.
    @inline(__always)
    func fill(position: Int, cos: UnsafeMutablePointer<Float>, sin: UnsafeMutablePointer<Float>) {
        for (i, frequency) in inverseFrequencies.enumerated() {
            let angle = Double(position) * frequency
            cos[i] = Float(Foundation.cos(angle))
            sin[i] = Float(Foundation.sin(angle))
        }
    }
}

/// RoPE cos/sin of every position below `positions` (from `RoPETable`), for a cache that stores
/// keys before RoPE and rotates each one to its position as attention reads it.
final class RoPEAngles {
    private let half: Int
    private let style: RoPEStyle
    private let cos, sin, negatedSin: UnsafeMutablePointer<Float>

    /// The angles of the model's frequencies (`KVLayout.ropeInverseFrequencies`, scaling applied).
    init(inverseFrequencies: [Double], style: RoPEStyle, positions: Int) {
        half = inverseFrequencies.count
        self.style = style
        let table = RoPETable(inverseFrequencies: inverseFrequencies)
        cos = .allocate(capacity: positions * half)
        sin = .allocate(capacity: positions * half)
        negatedSin = .allocate(capacity: positions * half)
        for p in 0..<positions { table.fill(position: p, cos: cos + p * half, sin: sin + p * half) }
        for i in 0..<(positions * half) { negatedSin[i] = -sin[i] }
    }

    /// Plain RoPE: `theta^(-2i/d)`.
    convenience init(headDim: Int, theta: Double, style: RoPEStyle, positions: Int) {
        self.init(inverseFrequencies: RoPEScaling.none.inverseFrequencies(headDim: headDim, theta: theta), style: style, positions: positions)
    }

    deinit {
        cos.deallocate()
        sin.deallocate()
        negatedSin.deallocate()
    }

    /// Rotates one head's vector to `position`, or back from it (`inverse`: the transposed rotation).
    @inline(__always)
    func rotate(_ v: UnsafeMutablePointer<Float>, position: Int, inverse: Bool = false) {
        Ops.rotate(v, heads: 1, headDim: 2 * half, style: style, cos: cos + position * half,
                   sin: (inverse ? negatedSin : sin) + position * half)
    }
}
