import Foundation
import Dispatch
import Synchronization

/// The engine on its own thread: it owns an `EngineCore`, applies the commands the UI sends
/// between two tokens, generates while not paused, and posts a snapshot after each command and
/// token for the UI to drain.
public final class EngineWorker: Sendable {
    private struct Mailbox {
        var commands: [EngineCommand] = []
        var snapshots: [EngineSnapshot] = []
        var quit = false
    }

    private let mailbox = Mutex(Mailbox())
    private let wake = DispatchSemaphore(value: 0)
    private let finished = DispatchSemaphore(value: 0)

    /// Starts the thread; `core` belongs to it from now on.
    public init(core: sending EngineCore) {
        let handOver = HandOver(core)
        let thread = Thread { [self] in
            loop(core: handOver.value)
            finished.signal()
        }
        thread.name = "kvlab-engine"
        // The model's forward pass and the methods' bookkeeping recurse little but use large frames.
        thread.stackSize = 16 << 20
        thread.start()
    }

    /// Queues a command for the engine thread.
    public func send(_ command: EngineCommand) {
        mailbox.withLock { $0.commands.append(command) }
        wake.signal()
    }

    /// The snapshots posted since the last call, oldest first.
    public func drain() -> [EngineSnapshot] {
        mailbox.withLock { box in
            defer { box.snapshots.removeAll(keepingCapacity: true) }
            return box.snapshots
        }
    }

    /// Stops the thread after the token in progress and waits for it.
    public func stop() {
        let already = mailbox.withLock { box in
            defer { box.quit = true }
            return box.quit
        }
        guard !already else { return }
        wake.signal()
        finished.wait()
    }

    private func loop(core: EngineCore) {
        // When the next token may start, by the core's pace; commands still run at once.
        var nextToken = DispatchTime.now()
        while true {
            let (commands, quit) = mailbox.withLock { box in
                defer { box.commands.removeAll(keepingCapacity: true) }
                return (box.commands, box.quit)
            }
            if quit {
                // A recording in progress is closed complete; the UI is gone, so nothing reports a failure.
                _ = try? core.stopRecording()
                return
            }
            for command in commands {
                let snapshot = core.handle(command)
                mailbox.withLock { $0.snapshots.append(snapshot) }
                if case .pace = command { nextToken = .now() }
            }
            let start = DispatchTime.now()
            if start < nextToken {
                _ = wake.wait(timeout: nextToken)  // a command wakes it early
                continue
            }
            if let snapshot = core.advance() {
                mailbox.withLock { $0.snapshots.append(snapshot) }
                if let pace = core.pace { nextToken = start + .nanoseconds(1_000_000_000 / pace) }
            } else if commands.isEmpty {
                _ = wake.wait(timeout: .now() + .milliseconds(250))
            }
        }
    }
}

/// Carries a value the caller gave up (`sending`) into the worker thread's closure, which Swift
/// requires to be `@Sendable`: only that thread ever uses the value afterwards, so no two threads
/// share it, which is what `Sendable` would guarantee.
private final class HandOver<Value>: @unchecked Sendable {
    let value: Value
    init(_ value: sending Value) { self.value = value }
}
