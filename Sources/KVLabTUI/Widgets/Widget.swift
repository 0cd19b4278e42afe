/// Something that draws itself into an area of a buffer. Widgets are plain values built for each
/// frame; rendering never reads the terminal.
public protocol Widget {
    /// Draws into `area` of `buffer`, never outside it.
    func render(area: Rect, buffer: inout Buffer)
}

/// Horizontal placement of a line in its area.
public enum Alignment: Hashable, Sendable {
    case left, center, right
}

/// Blanks an area in a style (under popups).
public struct Clear: Widget {
    /// The style the area is blanked in.
    public var style: Style

    /// A clear in `style` (the theme background by default).
    public init(style: Style = Style(background: .role(.background))) {
        self.style = style
    }

    public func render(area: Rect, buffer: inout Buffer) {
        buffer.fill(area, with: Cell(" ", style: style))
    }
}
