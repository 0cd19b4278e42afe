/// A problem with a file kvlab was asked to read or write, reported as one line naming the file.
public struct FileError: Error, CustomStringConvertible, Equatable {
    /// The file's path as the user gave it.
    public var path: String
    /// What is wrong, in a few words.
    public var problem: String

    public init(path: String, problem: String) {
        self.path = path
        self.problem = problem
    }

    public var description: String { "\(path): \(problem)" }
}

/// A malformed file content found while parsing; the loader adds the path.
package struct FormatError: Error, CustomStringConvertible {
    package var problem: String
    package init(_ problem: String) { self.problem = problem }
    package var description: String { problem }
}

/// Runs `body`, turning any parse failure into a `FileError` that names `path`.
package func withFileContext<T>(_ path: String, _ body: () throws -> T) throws -> T {
    do {
        return try body()
    } catch let error as FileError {
        throw error
    } catch let error as FormatError {
        throw FileError(path: path, problem: error.problem)
    } catch {
        throw FileError(path: path, problem: "\(error)")
    }
}
