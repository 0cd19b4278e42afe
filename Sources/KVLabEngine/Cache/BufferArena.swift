/// Fixed-size buffers that live as long as the component owning the arena: allocated once, all
/// freed together when the arena goes, so no component frees pointers by hand. Elements must be
/// trivial (numbers, pointers, structs of them), which is what lets one raw deallocation free any.
final class BufferArena {
    private var buffers: [UnsafeMutableRawPointer] = []

    deinit { for buffer in buffers { buffer.deallocate() } }

    /// `count` elements left uninitialized: for buffers always written before they are read.
    func allocate<Element>(_: Element.Type, count: Int) -> UnsafeMutablePointer<Element> {
        let buffer = UnsafeMutablePointer<Element>.allocate(capacity: count)
        buffers.append(UnsafeMutableRawPointer(buffer))
        return buffer
    }

    /// `count` elements set to `value`.
    func allocate<Element>(count: Int, repeating value: Element) -> UnsafeMutablePointer<Element> {
        let buffer = allocate(Element.self, count: count)
        buffer.initialize(repeating: value, count: count)
        return buffer
    }
}
