import Foundation

/// What a path names, from `lstat` (`following: false`) or `stat`.
public enum FileKind: Equatable, Sendable {
    case regular, directory, symlink, fifo, characterDevice, blockDevice, socket, other

    init(mode: mode_t) {
        switch mode & S_IFMT {
        case S_IFREG: self = .regular
        case S_IFDIR: self = .directory
        case S_IFLNK: self = .symlink
        case S_IFIFO: self = .fifo
        case S_IFCHR: self = .characterDevice
        case S_IFBLK: self = .blockDevice
        case S_IFSOCK: self = .socket
        default: self = .other
        }
    }

    /// The kind of `path`, or nil when nothing is there (a dangling symlink, when followed).
    public static func of(_ path: String, following: Bool = true) -> FileKind? {
        var info = stat()
        let status = following ? stat(path, &info) : lstat(path, &info)
        return status == 0 ? FileKind(mode: info.st_mode) : nil
    }

    /// The kind of an open descriptor.
    static func of(descriptor: Int32) -> FileKind? {
        var info = stat()
        return fstat(descriptor, &info) == 0 ? FileKind(mode: info.st_mode) : nil
    }

    /// "a FIFO", "a directory", … for messages.
    public var phrase: String {
        switch self {
        case .regular: "a regular file"
        case .directory: "a directory"
        case .symlink: "a symbolic link"
        case .fifo: "a FIFO"
        case .characterDevice: "a character device"
        case .blockDevice: "a block device"
        case .socket: "a socket"
        case .other: "not a file kvlab can use"
        }
    }
}

/// Opening files for reading: only regular files are opened, checked before opening (so a FIFO
/// with no writer, or a device such as `/dev/zero`, can never block or feed an endless read) and
/// again on the open descriptor (so a swap between the check and the open is caught too).
public enum InputFile {
    /// Throws a one-line `FileError` unless `path` is a regular file (a symlink to one is fine).
    public static func check(_ path: String) throws {
        guard let kind = FileKind.of(path) else {
            let reason = errno
            if FileKind.of(path, following: false) == .symlink { throw FileError(path: path, problem: "is a dangling symbolic link") }
            let missing = reason == ENOENT || reason == ENOTDIR
            throw FileError(path: path, problem: missing ? "no such file" : "cannot be read (\(String(cString: strerror(reason))))")
        }
        try refuse(kind, path: path)
    }

    private static func refuse(_ kind: FileKind, path: String) throws {
        switch kind {
        case .regular: return
        case .directory: throw FileError(path: path, problem: "is a directory, expected a file")
        default: throw FileError(path: path, problem: "is \(kind.phrase), not a regular file")
        }
    }

    /// Opens a regular file for reading.
    public static func open(_ path: String) throws -> FileHandle {
        try check(path)
        // Non-blocking, so that if a FIFO replaced the file since the check, the open itself
        // cannot wait for a writer; the descriptor is checked below and made blocking again.
        let descriptor = Foundation.open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)
        guard descriptor >= 0 else { throw FileError(path: path, problem: "cannot be read (\(String(cString: strerror(errno))))") }
        let kind = FileKind.of(descriptor: descriptor) ?? .other
        guard kind == .regular else {
            close(descriptor)
            throw FileError(path: path, problem: "is \(kind.phrase), not a regular file")
        }
        _ = fcntl(descriptor, F_SETFL, fcntl(descriptor, F_GETFL) & ~O_NONBLOCK)
        return FileHandle(fileDescriptor: descriptor, closeOnDealloc: true)
    }

    /// A whole regular file, memory-mapped (the bytes stay valid while the `Data` lives).
    public static func read(_ path: String) throws -> Data {
        let handle = try open(path)
        defer { try? handle.close() }
        let descriptor = handle.fileDescriptor
        var info = stat()
        guard fstat(descriptor, &info) == 0 else { throw FileError(path: path, problem: "cannot be read (\(String(cString: strerror(errno))))") }
        let size = Int(info.st_size)
        guard size > 0 else { return Data() }
        guard let mapped = mmap(nil, size, PROT_READ, MAP_PRIVATE, descriptor, 0), mapped != MAP_FAILED else {
            throw FileError(path: path, problem: "cannot be read (\(String(cString: strerror(errno))))")
        }
        return Data(bytesNoCopy: mapped, count: size, deallocator: .custom { pointer, count in munmap(pointer, count) })
    }

    /// A whole regular file as UTF-8 text.
    public static func readText(_ path: String) throws -> String {
        let data = try read(path)
        guard let text = String(data: data, encoding: .utf8) else { throw FileError(path: path, problem: "not valid UTF-8 text") }
        return text
    }
}
