/// How much of a split a part asks for.
public enum Constraint: Hashable, Sendable {
    /// Exactly `n` cells (shrunk only when the fixed parts do not fit).
    case length(Int)
    /// A percentage of the space.
    case percentage(Int)
    /// `numerator / denominator` of the space.
    case ratio(Int, Int)
    /// At least `n` cells; grows when no `fill` part takes the leftover space, shrunk last.
    case min(Int)
    /// At most `n` cells; shrunk first when space runs short.
    case max(Int)
    /// A share of the leftover space, by weight.
    case fill(Int)
}

/// Which way a layout splits a rectangle.
public enum Direction: Sendable {
    /// Side by side, left to right.
    case horizontal
    /// Stacked, top to bottom.
    case vertical
}

/// Splits a rectangle into parts by constraints, with optional gaps between them.
///
/// Sizes are decided in three steps: each part asks for its size (`length`, `percentage`,
/// `ratio`, `min` and `max` their number, `fill` nothing); if the asks exceed the space, `max`
/// parts shrink first, then `length`/`percentage`/`ratio` parts in proportion, `min` parts last;
/// leftover space goes to `fill` parts by weight, else to `min` parts equally, else stays unused
/// after the last part. Every split covers at most the rectangle and is exact to the cell.
public struct Layout: Sendable {
    /// Which way the parts follow each other.
    public var direction: Direction
    /// One constraint per part.
    public var constraints: [Constraint]
    /// Cells left empty between neighbouring parts; -1 makes neighbours share one cell (panels
    /// whose borders merge).
    public var spacing: Int

    /// A layout of parts in `direction` sized by `constraints`.
    public init(_ direction: Direction, _ constraints: [Constraint], spacing: Int = 0) {
        self.direction = direction
        self.constraints = constraints
        self.spacing = spacing
    }

    /// The parts of `rect`, one per constraint, in order.
    public func split(_ rect: Rect) -> [Rect] {
        let total = direction == .horizontal ? rect.width : rect.height
        let gaps = spacing * max(constraints.count - 1, 0)
        let sizes = Self.sizes(total: max(total - gaps, 0), constraints)
        var offset = direction == .horizontal ? rect.x : rect.y
        let end = offset + total
        return sizes.map { size in
            let start = min(offset, end), length = min(size, end - start)
            offset += size + spacing
            return direction == .horizontal
                ? Rect(x: start, y: rect.y, width: length, height: rect.height)
                : Rect(x: rect.x, y: start, width: rect.width, height: length)
        }
    }

    /// The size of each part of a line of `total` cells.
    public static func sizes(total: Int, _ constraints: [Constraint]) -> [Int] {
        let total = max(total, 0)
        var sizes = constraints.map { constraint -> Int in
            switch constraint {
            case .length(let n), .min(let n), .max(let n): return max(n, 0)
            case .percentage(let p): return total * min(max(p, 0), 100) / 100
            case .ratio(let a, let b): return b > 0 ? total * min(max(a, 0), b) / b : 0
            case .fill: return 0
            }
        }
        var excess = sizes.reduce(0, +) - total
        let shrinkOrder: [(Constraint) -> Bool] = [
            { if case .max = $0 { true } else { false } },
            { switch $0 { case .length, .percentage, .ratio: true; default: false } },
            { if case .min = $0 { true } else { false } },
        ]
        for inGroup in shrinkOrder where excess > 0 {
            let members = constraints.indices.filter { inGroup(constraints[$0]) && sizes[$0] > 0 }
            let groupTotal = members.reduce(0) { $0 + sizes[$1] }
            let cut = min(excess, groupTotal)
            for (index, amount) in zip(members, distribute(cut, weights: members.map { sizes[$0] })) { sizes[index] -= amount }
            excess -= cut
        }
        if excess < 0 {
            var receivers: [(index: Int, weight: Int)] = constraints.indices.compactMap {
                if case .fill(let weight) = constraints[$0] { return ($0, max(weight, 0)) } else { return nil }
            }
            if receivers.allSatisfy({ $0.weight == 0 }) {
                receivers = constraints.indices.compactMap { if case .min = constraints[$0] { return ($0, 1) } else { return nil } }
            }
            for (receiver, amount) in zip(receivers, distribute(-excess, weights: receivers.map(\.weight))) { sizes[receiver.index] += amount }
        }
        return sizes
    }

    /// Splits `amount` in proportion to `weights`, exactly, by largest remainder (earlier parts
    /// win ties).
    static func distribute(_ amount: Int, weights: [Int]) -> [Int] {
        let sum = weights.reduce(0, +)
        guard sum > 0, amount > 0 else { return weights.map { _ in 0 } }
        var shares = weights.map { amount * $0 / sum }
        let remainders = weights.indices.sorted { a, b in
            let ra = (amount * weights[a]) % sum, rb = (amount * weights[b]) % sum
            return ra != rb ? ra > rb : a < b
        }
        for index in remainders.prefix(amount - shares.reduce(0, +)) { shares[index] += 1 }
        return shares
    }
}
