import Foundation

/// Writing files without clobbering what is not kvlab's: only a regular file (or nothing) at the
/// path is replaced. A device, FIFO, socket or directory there is refused, and a symbolic link
/// is followed only when it resolves to a regular file, which is then written in its own
/// directory (the link stays a link).
public enum OutputFile {
    /// The path to write for `path`: `path` itself when nothing or a regular file is there, the
    /// resolved file of a symbolic link to a regular file; anything else is a one-line refusal.
    public static func target(_ path: String) throws -> String {
        guard let kind = FileKind.of(path, following: false) else {
            // A new file: its directory must exist, so a pre-check refuses the path before a long run.
            let parent = (path as NSString).deletingLastPathComponent
            guard FileKind.of(parent.isEmpty ? "." : parent) == .directory else {
                throw FileError(path: path, problem: "cannot be created (\(parent) is not a directory)")
            }
            return path
        }
        switch kind {
        case .regular:
            return path
        case .symlink:
            guard let resolved = FileKind.of(path) else {
                throw FileError(path: path, problem: "is a dangling symbolic link; refusing to write through it")
            }
            guard resolved == .regular else {
                throw FileError(path: path, problem: "is a symbolic link to \(resolved.phrase), not a regular file; refusing to write through it")
            }
            guard let real = realpath(path, nil) else {
                throw FileError(path: path, problem: "cannot be resolved (\(String(cString: strerror(errno))))")
            }
            defer { free(real) }
            return String(cString: real)
        default:
            throw FileError(path: path, problem: "is \(kind.phrase), not a regular file; refusing to replace it")
        }
    }

    /// Writes `data` to `path` atomically (see `write(to:_:)`).
    public static func write(_ data: Data, to path: String) throws {
        try write(to: path) { try $0.write(contentsOf: data) }
    }

    /// Writes `path` through a new temporary file beside its target, synced and renamed into
    /// place, so a failed or killed write never leaves a truncated file and a reader sees the old
    /// file or the new one. `body` writes the content to the temporary file.
    public static func write(to path: String, _ body: (FileHandle) throws -> Void) throws {
        let target = try target(path)
        let directory = (target as NSString).deletingLastPathComponent
        let name = (target as NSString).lastPathComponent
        var temporary = "", descriptor: Int32 = -1
        // O_EXCL on a fresh random name: the temporary file can be nothing but a new regular file.
        for _ in 0..<8 where descriptor < 0 {
            let suffix = String(UInt32.random(in: 0...UInt32.max), radix: 16)
            temporary = (directory.isEmpty ? "" : directory + "/") + ".\(name).kvlab-\(suffix)"
            descriptor = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o666)
            if descriptor < 0, errno != EEXIST { break }
        }
        guard descriptor >= 0 else { throw FileError(path: path, problem: "cannot be created (\(String(cString: strerror(errno))))") }
        let handle = FileHandle(fileDescriptor: descriptor, closeOnDealloc: true)
        do {
            try body(handle)
            try handle.synchronize()
            try handle.close()
        } catch {
            try? handle.close()
            unlink(temporary)
            throw FileError(path: path, problem: "cannot be written (\((error as? FileError)?.problem ?? error.localizedDescription))")
        }
        guard rename(temporary, target) == 0 else {
            let reason = String(cString: strerror(errno))
            unlink(temporary)
            throw FileError(path: path, problem: "cannot be written (\(reason))")
        }
    }

    /// Creates or truncates `path` for a file written as it happens and never renamed (a session
    /// recording: each line must be on the disk the moment it is written). Refuses non-regular
    /// targets as `target(_:)` does; the open cannot follow a link swapped in since (`O_NOFOLLOW`),
    /// cannot block on a FIFO (`O_NONBLOCK`), and the descriptor is checked to be a regular file
    /// before anything is truncated.
    public static func openForAppending(_ path: String) throws -> FileHandle {
        let target = try target(path)
        let descriptor = open(target, O_WRONLY | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0o666)
        guard descriptor >= 0 else { throw FileError(path: path, problem: "cannot be created (\(String(cString: strerror(errno))))") }
        let kind = FileKind.of(descriptor: descriptor) ?? .other
        guard kind == .regular else {
            close(descriptor)
            throw FileError(path: path, problem: "is \(kind.phrase), not a regular file; refusing to replace it")
        }
        guard ftruncate(descriptor, 0) == 0 else {
            let reason = String(cString: strerror(errno))
            close(descriptor)
            throw FileError(path: path, problem: "cannot be written (\(reason))")
        }
        _ = fcntl(descriptor, F_SETFL, fcntl(descriptor, F_GETFL) & ~O_NONBLOCK)
        return FileHandle(fileDescriptor: descriptor, closeOnDealloc: true)
    }
}
