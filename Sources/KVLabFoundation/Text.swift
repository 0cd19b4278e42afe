extension Substring {
    /// The text without leading and trailing spaces (what method and size spellings allow).
    package var trimmingSpaces: Substring {
        var text = self
        while text.first == " " { text.removeFirst() }
        while text.last == " " { text.removeLast() }
        return text
    }
}
