import KVLabTUI

/// A buffer with `widget` rendered over all of it.
func rendered(_ widget: some Widget, width: Int, height: Int) -> Buffer {
    var buffer = Buffer(width: width, height: height)
    widget.render(area: buffer.area, buffer: &buffer)
    return buffer
}
