import Foundation
import ArgumentParser

// Arguments with invalid UTF-8 would be silently repaired by Swift's String; refuse them instead.
for index in 1..<Int(CommandLine.argc) {
    guard let raw = CommandLine.unsafeArgv[index] else { continue }
    let bytes = UnsafeBufferPointer(start: UnsafeRawPointer(raw).assumingMemoryBound(to: UInt8.self), count: strlen(raw))
    if String(validating: bytes, as: UTF8.self) == nil {
        FileHandle.standardError.write(Data("kvlab: argument \(index) is not valid UTF-8\n".utf8))
        exit(64)
    }
}

KVLab.main()
