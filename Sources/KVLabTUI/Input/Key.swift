/// A key press, as the backend decodes it.
public enum Key: Hashable, Sendable {
    /// A printable character (space included).
    case character(Character)
    /// Control plus a letter (`.control("c")` is Ctrl-C in raw mode).
    case control(Character)
    case enter, tab, backTab, backspace, delete, insert, escape
    case up, down, left, right, home, end, pageUp, pageDown
    /// F1…F63.
    case function(Int)
    /// The terminal changed size.
    case resize

    /// How help screens name the key (`↑` or `Up` without Unicode).
    public func label(unicode: Bool = true) -> String {
        switch self {
        case .character(" "): "Space"
        case .character(let character): String(character)
        case .control(let letter): "Ctrl-" + letter.uppercased()
        case .enter: "Enter"
        case .tab: "Tab"
        case .backTab: "Shift-Tab"
        case .backspace: "Backspace"
        case .delete: "Del"
        case .insert: "Ins"
        case .escape: "Esc"
        case .up: unicode ? "↑" : "Up"
        case .down: unicode ? "↓" : "Down"
        case .left: unicode ? "←" : "Left"
        case .right: unicode ? "→" : "Right"
        case .home: "Home"
        case .end: "End"
        case .pageUp: "PgUp"
        case .pageDown: "PgDn"
        case .function(let number): "F\(number)"
        case .resize: "resize"
        }
    }
}

/// One entry of a key table: the keys, what they do, and the action they stand for.
public struct KeyBinding<Action: Sendable>: Sendable {
    public var keys: [Key]
    /// What the help overlay and the README say the keys do.
    public var summary: String
    /// The heading the binding is listed under.
    public var group: String
    public var action: Action

    public init(_ keys: [Key], _ summary: String, group: String, action: Action) {
        self.keys = keys
        self.summary = summary
        self.group = group
        self.action = action
    }

    /// The keys as help screens show them (`e/E`).
    public func label(unicode: Bool = true) -> String { keys.map { $0.label(unicode: unicode) }.joined(separator: "/") }
}

/// The one table that maps keys to actions and also produces the help overlay and the README
/// keymap, so neither can drift from what the keys do.
public struct KeyTable<Action: Sendable>: Sendable {
    public var bindings: [KeyBinding<Action>]

    public init(_ bindings: [KeyBinding<Action>]) {
        self.bindings = bindings
    }

    /// The action of the first binding listing `key`.
    public func action(for key: Key) -> Action? {
        bindings.first { $0.keys.contains(key) }?.action
    }

    /// Groups in the order they first appear, with their bindings' labels and summaries.
    public func helpRows(unicode: Bool = true) -> [(group: String, rows: [(keys: String, summary: String)])] {
        var groups: [(group: String, rows: [(keys: String, summary: String)])] = []
        for binding in bindings {
            let row = (binding.label(unicode: unicode), binding.summary)
            if let index = groups.firstIndex(where: { $0.group == binding.group }) { groups[index].rows.append(row) } else { groups.append((binding.group, [row])) }
        }
        return groups
    }

    /// The table as Markdown (the README keymap).
    public func markdown() -> String {
        var text = "| keys | action |\n|---|---|\n"
        for (group, rows) in helpRows() {
            text += "| **\(group)** | |\n"
            for row in rows { text += "| `\(row.keys.replacingOccurrences(of: "|", with: "\\|"))` | \(row.summary) |\n" }
        }
        return text
    }
}
