/// The normalized fast Walsh–Hadamard transform (the `rotate` option, RotateKV / QuaRot): H/√n is
/// symmetric and orthogonal, so rotating q and k leaves q·k unchanged, applying it twice restores
/// the input, and the rotation spreads a channel's outlier over all channels before quantization.
package enum Hadamard {
    /// Transforms `count` values in place (Sylvester order); `count` must be a power of two.
    package static func transform(_ x: UnsafeMutablePointer<Float>, count: Int) {
        precondition(count > 0 && count & (count - 1) == 0, "Hadamard length \(count) is not a power of two")
        var half = 1
        while half < count {
            for start in stride(from: 0, to: count, by: 2 * half) {
                for i in start..<(start + half) {
                    let a = x[i]
                    let b = x[i + half]
                    x[i] = a + b
                    x[i + half] = a - b
                }
            }
            half *= 2
        }
        let norm = 1 / Float(count).squareRoot()
        for i in 0..<count { x[i] *= norm }
    }
}
