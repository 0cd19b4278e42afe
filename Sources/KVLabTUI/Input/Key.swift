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

/// A heading of a help screen and the key bindings listed under it.
public struct HelpSection: Hashable, Sendable {
    /// One line of help: the keys as shown and what they do.
    public struct Row: Hashable, Sendable {
        /// The keys as shown (`e/E`).
        public var keys: String
        /// What they do.
        public var summary: String

        /// A help line.
        public init(keys: String, summary: String) {
            self.keys = keys
            self.summary = summary
        }
    }

    /// The heading.
    public var title: String
    /// The bindings under it.
    public var rows: [Row]

    /// A section under `title`.
    public init(title: String, rows: [Row]) {
        self.title = title
        self.rows = rows
    }
}

/// One entry of a key table: the keys, what they do, and the action they stand for.
public struct KeyBinding<Action: Sendable>: Sendable {
    /// The keys that trigger the action.
    public var keys: [Key]
    /// What the help overlay and the README say the keys do.
    public var summary: String
    /// The heading the binding is listed under.
    public var group: String
    /// What the keys stand for; the app maps it to a change of state.
    public var action: Action

    /// A binding of `keys` to `action`, listed under `group`.
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
    /// The bindings, in the order help lists them.
    public var bindings: [KeyBinding<Action>]

    /// A table of these bindings.
    public init(_ bindings: [KeyBinding<Action>]) {
        self.bindings = bindings
    }

    /// The action of the first binding listing `key`.
    public func action(for key: Key) -> Action? {
        bindings.first { $0.keys.contains(key) }?.action
    }

    /// One section per group, in the order groups first appear, with the bindings' labels.
    public func helpSections(unicode: Bool = true) -> [HelpSection] {
        var sections: [HelpSection] = []
        for binding in bindings {
            let row = HelpSection.Row(keys: binding.label(unicode: unicode), summary: binding.summary)
            if let index = sections.firstIndex(where: { $0.title == binding.group }) {
                sections[index].rows.append(row)
            } else {
                sections.append(HelpSection(title: binding.group, rows: [row]))
            }
        }
        return sections
    }

    /// The table as Markdown (the README keymap).
    public func markdown() -> String {
        var text = "| keys | action |\n|---|---|\n"
        for section in helpSections() {
            text += "| **\(section.title)** | |\n"
            for row in section.rows { text += "| `\(row.keys.replacingOccurrences(of: "|", with: "\\|"))` | \(row.summary) |\n" }
        }
        return text
    }
}
