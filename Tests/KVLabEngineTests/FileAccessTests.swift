import Foundation
@testable import KVLabEngine
import KVLabFoundation
import Testing

/// Opening files: only regular files are read or replaced; FIFOs, devices, directories and
/// symbolic links to them are refused in one line, before anything could block or be clobbered.
@Suite struct FileAccessTests {
    /// A fresh directory with a FIFO, a regular file, a subdirectory and symbolic links to each.
    final class Scratch {
        let directory: String
        var fifo: String { directory + "/pipe" }
        var file: String { directory + "/file.txt" }
        var subdirectory: String { directory + "/dir" }
        var linkToFIFO: String { directory + "/to-pipe" }
        var linkToFile: String { directory + "/to-file" }
        var linkToDirectory: String { directory + "/to-dir" }
        var dangling: String { directory + "/dangling" }

        init() throws {
            directory = NSTemporaryDirectory() + "kvlab-files-\(UUID().uuidString)"
            try FileManager.default.createDirectory(atPath: directory + "/dir", withIntermediateDirectories: true)
            guard mkfifo(directory + "/pipe", 0o600) == 0 else { throw CocoaError(.fileWriteUnknown) }
            try Data("old".utf8).write(to: URL(fileURLWithPath: directory + "/file.txt"))
            let links = [("pipe", "to-pipe"), ("file.txt", "to-file"), ("dir", "to-dir"), ("missing", "dangling")]
            for (target, link) in links { try FileManager.default.createSymbolicLink(atPath: directory + "/" + link, withDestinationPath: target) }
        }

        deinit { try? FileManager.default.removeItem(atPath: directory) }

        func kind(_ path: String) -> FileKind? { FileKind.of(path, following: false) }
        func contents(_ path: String) -> String? { (try? String(contentsOfFile: path, encoding: .utf8)) }
        /// Names in the directory other than the fixtures (a temporary file left behind).
        var leftovers: [String] {
            let fixtures: Set = ["pipe", "file.txt", "dir", "to-pipe", "to-file", "to-dir", "dangling"]
            return ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).filter { !fixtures.contains($0) }
        }
    }

    @Test func outputRefusesWhatIsNotARegularFile() throws {
        let s = try Scratch()
        let cases: [(String, String)] = [
            (s.fifo, "is a FIFO, not a regular file; refusing to replace it"),
            (s.subdirectory, "is a directory, not a regular file; refusing to replace it"),
            ("/dev/null", "is a character device, not a regular file; refusing to replace it"),
            (s.linkToFIFO, "is a symbolic link to a FIFO, not a regular file; refusing to write through it"),
            (s.linkToDirectory, "is a symbolic link to a directory, not a regular file; refusing to write through it"),
            (s.dangling, "is a dangling symbolic link; refusing to write through it"),
        ]
        for (path, problem) in cases {
            #expect(throws: FileError(path: path, problem: problem)) { try OutputFile.write(Data("new".utf8), to: path) }
            #expect(throws: FileError(path: path, problem: problem)) { _ = try OutputFile.openForAppending(path) }
        }
        #expect(s.kind(s.fifo) == .fifo && s.kind(s.linkToFIFO) == .symlink && s.kind(s.linkToDirectory) == .symlink)
        #expect(FileKind.of("/dev/null") == .characterDevice)
        #expect(s.leftovers.isEmpty)
    }

    @Test func outputReplacesARegularFileAndWritesThroughALinkToOne() throws {
        let s = try Scratch()
        try OutputFile.write(Data("new".utf8), to: s.file)
        #expect(s.contents(s.file) == "new")
        try OutputFile.write(Data("linked".utf8), to: s.linkToFile)
        #expect(s.kind(s.linkToFile) == .symlink, "the link stays a link")
        #expect(s.contents(s.file) == "linked")
        let fresh = s.directory + "/fresh.txt"
        try OutputFile.write(Data("fresh".utf8), to: fresh)
        #expect(s.contents(fresh) == "fresh")
        #expect(s.leftovers == ["fresh.txt"], "no temporary file is left behind")
    }

    @Test func aPathInAMissingDirectoryIsRefusedBeforeWriting() throws {
        let s = try Scratch()
        let path = s.directory + "/missing/out.json"
        let refusal = FileError(path: path, problem: "cannot be created (\(s.directory)/missing is not a directory)")
        #expect(throws: refusal) { _ = try OutputFile.target(path) }
        #expect(throws: FileError(path: s.file + "/x", problem: "cannot be created (\(s.file) is not a directory)")) {
            _ = try OutputFile.target(s.file + "/x")
        }
    }

    @Test func aFailedWriteLeavesTheOldFile() throws {
        let s = try Scratch()
        struct Stop: Error {}
        #expect(throws: FileError.self) {
            try OutputFile.write(to: s.file) { handle in
                try handle.write(contentsOf: Data("partial".utf8))
                throw Stop()
            }
        }
        #expect(s.contents(s.file) == "old")
        #expect(s.leftovers.isEmpty)
    }

    @Test func appendingTruncatesARegularFileThroughALink() throws {
        let s = try Scratch()
        let handle = try OutputFile.openForAppending(s.linkToFile)
        try handle.write(contentsOf: Data("line\n".utf8))
        try handle.close()
        #expect(s.contents(s.file) == "line\n")
        #expect(s.kind(s.linkToFile) == .symlink)
    }

    @Test func inputRefusesWhatIsNotARegularFile() throws {
        let s = try Scratch()
        let cases: [(String, String)] = [
            (s.fifo, "is a FIFO, not a regular file"),
            (s.linkToFIFO, "is a FIFO, not a regular file"),
            ("/dev/zero", "is a character device, not a regular file"),
            (s.subdirectory, "is a directory, expected a file"),
            (s.dangling, "is a dangling symbolic link"),
            (s.directory + "/missing", "no such file"),
        ]
        for (path, problem) in cases {
            #expect(throws: FileError(path: path, problem: problem)) { _ = try InputFile.read(path) }
            #expect(throws: FileError(path: path, problem: problem)) { _ = try InputFile.open(path) }
        }
        #expect(try InputFile.readText(s.linkToFile) == "old")
        let empty = s.directory + "/empty"
        try Data().write(to: URL(fileURLWithPath: empty))
        #expect(try InputFile.read(empty).isEmpty)
    }

    @Test func modelLoadingRefusesAFIFOAndADevice() throws {
        let s = try Scratch()
        #expect(throws: FileError(path: s.fifo, problem: "is a FIFO, not a regular file")) { _ = try ModelLoader.load(path: s.fifo) }
        #expect(throws: FileError(path: "/dev/zero", problem: "is a character device, not a regular file")) {
            _ = try ModelLoader.load(path: "/dev/zero")
        }
    }
}
