/// A capacity bar of stacked segments (a memory tier: weights, KV payload, KV metadata,
/// activations), drawn to an eighth of a cell: where two segments meet inside a cell, the cell
/// shows a left eighth block in the first segment's colour on the second's.
public struct CapacityBar: Widget {
    /// One stacked part of the bar.
    public struct Segment: Hashable, Sendable {
        /// The amount, in the capacity's unit.
        public var value: Double
        /// The segment's paint (a tier role).
        public var paint: Paint

        /// A segment of `value` painted with `paint`.
        public init(_ value: Double, _ paint: Paint) {
            self.value = value
            self.paint = paint
        }
    }

    /// The parts, stacked from the left.
    public var segments: [Segment]
    /// The amount a full bar stands for.
    public var capacity: Double
    /// The paint of unused capacity.
    public var trackPaint: Paint
    /// Segments told apart by fill glyph instead of colour (mono, ASCII); cells go whole to the
    /// segment that covers most of them.
    public var patterned: Bool
    /// Caps around the bar (`▕ ▏`, `[ ]`).
    public var caps: Bool
    /// The glyphs drawn with.
    public var glyphs: GlyphSet

    /// A bar of `segments` out of `capacity`.
    public init(segments: [Segment], capacity: Double, trackPaint: Paint = .role(.tierFree), patterned: Bool = false,
                caps: Bool = true, glyphs: GlyphSet = .unicode) {
        self.segments = segments
        self.capacity = capacity
        self.trackPaint = trackPaint
        self.patterned = patterned
        self.caps = caps
        self.glyphs = glyphs
    }

    public func render(area: Rect, buffer: inout Buffer) {
        let area = area.intersection(buffer.area)
        guard !area.isEmpty else { return }
        var bar = area
        if caps && area.width >= 3 {
            for y in area.y..<area.bottom {
                buffer.put(glyphs.barCaps.left, x: area.x, y: y, style: .role(.border))
                buffer.put(glyphs.barCaps.right, x: area.right - 1, y: y, style: .role(.border))
            }
            bar = area.inset(horizontal: 1)
        }
        // Segment ends in eighths of a cell; values past the capacity are cut at the end of the bar.
        let eighths = bar.width * 8
        var ends: [Int] = []
        var sum = 0.0
        for segment in segments {
            sum += max(segment.value, 0)
            let end = capacity > 0 && sum.isFinite ? Int((sum / capacity * Double(eighths)).rounded()) : 0
            ends.append(min(max(end, ends.last ?? 0), eighths))
        }
        func owner(at position: Int) -> Int? { ends.firstIndex { position < $0 } }  // nil: the track
        func paint(_ index: Int?) -> Paint { index.map { segments[$0].paint } ?? trackPaint }

        for column in 0..<bar.width {
            let start = column * 8
            let left = owner(at: start)
            let leftLength = min(left.map { ends[$0] } ?? (start + 8), start + 8) - start
            let right = leftLength < 8 ? owner(at: start + leftLength) : left
            let cell: Cell
            if patterned {
                let majority = leftLength >= 4 ? left : right
                cell = majority.map { Cell(glyphs.patternedFills[$0 % glyphs.patternedFills.count], style: Style(foreground: paint($0))) }
                    ?? Cell(glyphs.barTrack, style: Style(foreground: trackPaint))
            } else if left == nil {
                cell = Cell(" ", style: Style(background: trackPaint))
            } else if leftLength == 8 {
                cell = Cell(glyphs.horizontalEighths[8], style: Style(foreground: paint(left)))
            } else {
                cell = Cell(glyphs.horizontalEighths[leftLength], style: Style(foreground: paint(left), background: paint(right)))
            }
            for y in bar.y..<bar.bottom { buffer.putCluster(cell.symbol, width: 1, x: bar.x + column, y: y, style: cell.style) }
        }
    }
}
