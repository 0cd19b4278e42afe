import KVLabTUI

/// The tour's card: the highlighted panel's border in the warning colour, and beside it a box
/// with the stop's lines and the key it waits for.
struct TourCard {
    var tour: Tour
    var glyphs: GlyphSet

    func render(panel: Rect, body: Rect, buffer: inout Buffer) {
        let highlight = Style(foreground: .role(.warning), attributes: .bold)
        for edge in [Rect(x: panel.x, y: panel.y, width: panel.width, height: 1), Rect(x: panel.x, y: panel.bottom - 1, width: panel.width, height: 1),
                     Rect(x: panel.x, y: panel.y, width: 1, height: panel.height), Rect(x: panel.right - 1, y: panel.y, width: 1, height: panel.height)] {
            buffer.setStyle(edge, highlight)
        }
        let stop = tour.stop
        let prompt = Line([Span("press ", style: .role(.dimText)), Span(tour.key, style: .role(.key, .bold)),
                           Span(" · Esc ends the tour", style: .role(.dimText))])
        let lines = stop.lines.map { Line($0) } + [prompt]
        let width = min(max(lines.map(\.width).max() ?? 0, CharacterWidth.of(stop.title) + 12) + 4, body.width)
        let height = lines.count + 2
        // Over the half of the screen the panel is not in, so the panel stays visible.
        let upper = panel.y + panel.height / 2 > body.y + body.height / 2
        let y = upper ? body.y + 1 : body.bottom - height - 1
        let card = Rect(x: body.x + (body.width - width) / 2, y: max(y, body.y), width: width, height: min(height, body.height))
        Clear().render(area: card, buffer: &buffer)
        let block = Block(titles: [Block.Title(Line("Tour \(tour.index + 1)/\(Tour.stops.count): \(stop.title)", style: .role(.warning, .bold)))],
                          borderStyle: highlight, mergesBorders: false, horizontalPadding: 1, glyphs: glyphs)
        block.render(area: card, buffer: &buffer)
        let inner = block.inner(card)
        for (index, line) in lines.enumerated() where index < inner.height {
            buffer.put(line, row: inner.row(index), glyphs: glyphs)
        }
    }
}
