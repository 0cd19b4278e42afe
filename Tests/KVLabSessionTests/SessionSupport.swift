import Foundation
@testable import KVLabEngine
@testable import KVLabFoundation
@testable import KVLabMethods
import KVLabRun
@testable import KVLabRun
@testable import KVLabSession

/// The embedded model and a recorded session that exercises every event kind.
enum SessionSupport {
    static let model = Result { try EmbeddedModel.load() }

    /// A fresh temporary file path, removed by the caller.
    static func temporaryPath(_ name: String = "session") -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("kvlab-\(name)-\(UUID().uuidString).kvlab.jsonl").path
    }

    /// Records to `path`: a prompt, knob changes of every kind mid-stream, the ghost switched off
    /// and on, captions, a continuing prompt, checkpoints every 4 tokens. Returns the events written.
    @discardableResult
    static func record(to path: String, threads: Int = 1, temperature: Float = 0) throws -> [SessionEvent] {
        let model = try model.get()
        let settings = RunSettings(eviction: .full, sampler: SamplerSettings(temperature: temperature, topP: 0.9, seed: 11), threads: threads)
        let run = try LiveRun(model: model, settings: settings, ghost: true)
        let writer = try SessionWriter(path: path, header: SessionHeader(run: run, model: try ModelIdentity(model: model, path: nil),
                                                                         checkpointEvery: 4))
        var events: [SessionEvent] = []
        let recorder = SessionRecorder(run: run, checkpointEvery: 4) { event in
            events.append(event)
            try writer.append(event)
        }
        try recorder.caption("full cache, ghost on")
        try recorder.submit(prompt: "ROMEO:\nBut soft, what light")
        for step in 0..<44 {
            switch step {
            case 8: try recorder.set(.policy, to: "h2o:heavy=8,recent=8")
            case 14: try recorder.setGhost(false)
            case 18: try recorder.set(.kv, to: "kivi:bits=2,residual=8")
            case 22:
                try recorder.set(.sparse, to: "quest:page=16,budget=16")
                try recorder.caption("quest reads 16 entries")
            case 26: try recorder.setGhost(true)
            case 30: try recorder.set(.weights, to: "q8_0")
            case 34: try recorder.submit(prompt: "\nJULIET:\n", continuing: true)
            default: break
            }
            try recorder.step()
        }
        try recorder.finish()
        return events
    }

    /// The session of `record(to:)`, written once and copied for each case.
    static let recorded = Result { () throws -> Data in
        let path = temporaryPath("recorded")
        defer { try? FileManager.default.removeItem(atPath: path) }
        try record(to: path)
        return try Data(contentsOf: URL(fileURLWithPath: path))
    }

    /// A copy of the recorded session at a fresh path, removed by the caller.
    static func copy(_ bytes: Data? = nil) throws -> String {
        let path = temporaryPath()
        try (bytes ?? recorded.get()).write(to: URL(fileURLWithPath: path))
        return path
    }

    /// The lines of a file (without newlines).
    static func lines(_ path: String) throws -> [String] {
        try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
    }
}
