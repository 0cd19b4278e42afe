import KVLabTUI
import Testing

/// Constraint layout, alone.
@Suite struct LayoutTests {
    @Test func fixedPartsAndFillShareTheSpaceExactly() {
        #expect(Layout.sizes(total: 80, [.length(10), .fill(1), .length(20)]) == [10, 50, 20])
        #expect(Layout.sizes(total: 100, [.fill(1), .fill(2), .fill(1)]) == [25, 50, 25])
        #expect(Layout.sizes(total: 10, [.fill(1), .fill(1), .fill(1)]) == [4, 3, 3])  // largest remainder, earlier wins ties
        #expect(Layout.sizes(total: 80, [.percentage(25), .ratio(1, 2), .fill(1)]) == [20, 40, 20])
    }

    @Test func minGrowsWhenNothingFillsAndShrinksLast() {
        #expect(Layout.sizes(total: 50, [.length(10), .min(10)]) == [10, 40])
        #expect(Layout.sizes(total: 50, [.min(10), .min(10)]) == [25, 25])
        #expect(Layout.sizes(total: 50, [.min(10), .fill(1)]) == [10, 40])
        #expect(Layout.sizes(total: 12, [.length(10), .min(8)]) == [4, 8])  // the length gives way first
        #expect(Layout.sizes(total: 6, [.length(10), .min(8)]) == [0, 6])
    }

    @Test func maxShrinksFirstAndNeverGrows() {
        #expect(Layout.sizes(total: 30, [.max(20), .length(20)]) == [10, 20])
        #expect(Layout.sizes(total: 60, [.max(20), .length(20)]) == [20, 20])  // 20 cells stay unused
        #expect(Layout.sizes(total: 60, [.max(20), .fill(1)]) == [20, 40])
    }

    @Test func oversizedRequestsShrinkInProportion() {
        #expect(Layout.sizes(total: 30, [.length(40), .length(20)]) == [20, 10])
        #expect(Layout.sizes(total: 10, [.percentage(80), .percentage(80)]) == [5, 5])
        #expect(Layout.sizes(total: 0, [.length(3), .fill(1)]) == [0, 0])
    }

    @Test func sizesNeverExceedTheTotal() {
        var state: UInt64 = 0x9E3779B97F4A7C15
        func next(_ bound: Int) -> Int {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Int(state >> 33) % bound
        }
        for _ in 0..<500 {
            let constraints: [Constraint] = (0..<(1 + next(5))).map { _ in
                switch next(6) {
                case 0: .length(next(40))
                case 1: .percentage(next(101))
                case 2: .ratio(next(4), 1 + next(4))
                case 3: .min(next(30))
                case 4: .max(next(30))
                default: .fill(1 + next(3))
                }
            }
            let total = next(120)
            let sizes = Layout.sizes(total: total, constraints)
            #expect(sizes.allSatisfy { $0 >= 0 })
            #expect(sizes.reduce(0, +) <= total, "\(constraints) in \(total): \(sizes)")
            if constraints.contains(where: { if case .fill = $0 { true } else { false } }) {
                #expect(sizes.reduce(0, +) == total, "a fill part takes what is left: \(constraints) in \(total): \(sizes)")
            }
        }
    }

    @Test func splitPlacesPartsWithSpacingOrSharedBorders() {
        let area = Rect(x: 2, y: 1, width: 20, height: 10)
        #expect(Layout(.horizontal, [.length(5), .fill(1)], spacing: 2).split(area)
            == [Rect(x: 2, y: 1, width: 5, height: 10), Rect(x: 9, y: 1, width: 13, height: 10)])
        #expect(Layout(.vertical, [.percentage(50), .fill(1)]).split(area)
            == [Rect(x: 2, y: 1, width: 20, height: 5), Rect(x: 2, y: 6, width: 20, height: 5)])
        // Spacing -1: neighbours share their border row.
        #expect(Layout(.vertical, [.fill(1), .fill(1)], spacing: -1).split(area)
            == [Rect(x: 2, y: 1, width: 20, height: 6), Rect(x: 2, y: 6, width: 20, height: 5)])
    }

    @Test func rectHelpers() {
        let rect = Rect(x: 0, y: 0, width: 10, height: 6)
        #expect(rect.inset(horizontal: 1, vertical: 2) == Rect(x: 1, y: 2, width: 8, height: 2))
        #expect(rect.centered(width: 4, height: 2) == Rect(x: 3, y: 2, width: 4, height: 2))
        #expect(rect.intersection(Rect(x: 8, y: 5, width: 5, height: 5)) == Rect(x: 8, y: 5, width: 2, height: 1))
        #expect(rect.intersection(Rect(x: 20, y: 0, width: 5, height: 5)).isEmpty)
        #expect(rect.row(6).isEmpty && rect.row(5) == Rect(x: 0, y: 5, width: 10, height: 1))
    }
}
