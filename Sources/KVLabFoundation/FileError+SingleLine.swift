extension FileError {
    /// The longest problem text kept; longer ones (a huge token or regex quoted back) are shortened.
    package static let maxProblemLength = 400

    /// The error with control and line-break characters in its problem escaped and an overlong
    /// problem shortened, so names quoted from a file cannot break the one-line message.
    public var singleLine: FileError {
        var text = ""
        for scalar in problem.unicodeScalars {
            switch scalar {
            case "\n": text += "\\n"
            case "\r": text += "\\r"
            case "\t": text += "\\t"
            case _ where scalar.value < 0x20 || (0x7F...0x9F).contains(scalar.value) || scalar == "\u{2028}" || scalar == "\u{2029}":
                text += "\\u{\(String(scalar.value, radix: 16))}"
            default:
                text.unicodeScalars.append(scalar)
            }
        }
        if text.count > Self.maxProblemLength { text = text.prefix(Self.maxProblemLength) + "…" }
        return FileError(path: path, problem: text)
    }
}

/// Runs a loader or writer, keeping every `FileError` it throws to one line.
package func singleLineErrors<T>(_ body: () throws -> T) throws -> T {
    do {
        return try body()
    } catch let error as FileError {
        throw error.singleLine
    }
}
