import Foundation
import KVLabFoundation
import KVLabTUI

/// An asciinema v2 cast built from frames: a header line (version 2, width, height), then one
/// `[seconds, "o", text]` line per frame with the ANSI text of the cells that changed.
public struct AsciicastWriter {
    /// Columns.
    public let width: Int
    /// Rows.
    public let height: Int
    /// The colours frames are written with.
    public let palette: Palette
    /// The cast so far.
    public private(set) var text: String
    private var previous: Buffer?
    private var lastTime = -1.0

    /// A cast of `width` × `height` titled `title`.
    public init(width: Int, height: Int, palette: Palette, title: String) {
        self.width = width
        self.height = height
        self.palette = palette
        let term = palette.depth == .truecolor ? "xterm-direct" : "xterm-256color"
        let header: JSONValue = .object([("version", .integer(2)), ("width", .integer(width)), ("height", .integer(height)),
                                         ("title", .string(title)), ("env", .object([("TERM", .string(term))]))])
        text = header.compactText() + "\n"
    }

    /// Adds a frame shown at `seconds` (kept after the previous frame's time); a frame with no
    /// changed cell adds nothing.
    public mutating func add(_ frame: Buffer, at seconds: Double) {
        precondition(frame.width == width && frame.height == height, "a cast's frames keep its size")
        let output = ANSISerializer.frame(frame, previous: previous, palette: palette)
        previous = frame
        guard !output.isEmpty else { return }
        // Microsecond times, strictly increasing: players order events by time.
        let time = max((seconds * 1e6).rounded() / 1e6, lastTime + 1e-6)
        lastTime = time
        text += JSONValue.array([.number(time), .string("o"), .string(output)]).compactText() + "\n"
    }
}

/// Renders a whole session as a cast: every event played, a frame after each token or caption.
public enum SessionCast {
    /// The cast of `player`'s session on a `width` × `height` screen; each token lasts its recorded
    /// latency, or `tokenMilliseconds` when given, and a caption holds `captionHoldMilliseconds`.
    public static func render(_ player: SessionPlayer, width: Int, height: Int, palette: Palette, glyphs: GlyphSet = .unicode,
                              tokenMilliseconds: Double?, captionHoldMilliseconds: Double) -> String {
        var cast = AsciicastWriter(width: width, height: height, palette: palette, title: "kvlab replay \(player.path)")
        var buffer = Buffer(width: width, height: height)
        let pace = ReplayPace(fixedTokenMilliseconds: tokenMilliseconds, captionHoldMilliseconds: captionHoldMilliseconds)
        var seconds = 0.0
        func frame() {
            player.prepareFrame()
            ReplayScreen(player: player, pace: pace, glyphs: glyphs).render(into: &buffer)
            cast.add(buffer, at: seconds)
            player.markDrawn()
        }
        frame()
        while let record = player.next {
            player.playNext()
            switch record.event {
            case .token, .caption:
                frame()
                seconds += pace.delayMilliseconds(after: record.event) / 1000
            default:
                if player.finished { frame() }
            }
        }
        return cast.text
    }
}
