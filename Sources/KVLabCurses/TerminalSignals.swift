import CNCursesW
import Glibc
import Synchronization

/// The process-wide state signal handlers touch: atomics only, so every handler is
/// async-signal-safe (it sets a flag, or writes precomputed bytes and restores saved tty modes).
enum TerminalSignals {
    /// Set by SIGWINCH; the run loop resizes on its next key poll.
    static let resizePending = Atomic<Bool>(false)
    /// The first SIGINT, SIGTERM, SIGHUP or SIGQUIT received (0: none); the run loop quits cleanly.
    static let stopSignal = Atomic<Int32>(0)
    /// Address of the `EmergencyRestore` record of the open terminal (0: none open).
    static let emergency = Atomic<Int>(0)
    /// Address of the saved previous action of each signal, indexed by signal number (0: none).
    static let previousActions = Atomic<Int>(0)
    /// Whether the `atexit` hook is registered (once per process).
    static let atExitRegistered = Atomic<Bool>(false)
    /// Whether a curses terminal is open (curses has one current screen per process).
    static let terminalOpen = Atomic<Bool>(false)

    static let stopSignals: [Int32] = [SIGINT, SIGTERM, SIGHUP, SIGQUIT]
    /// Faults and aborts: Swift traps arrive as SIGILL (x86) or SIGTRAP (arm64).
    static let fatalSignals: [Int32] = [SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT, SIGTRAP]
    static let handled: [Int32] = [SIGWINCH] + stopSignals + fatalSignals
    static let signalCount = 65

    /// What a signal handler needs to give the terminal back without curses: the tty modes from
    /// before curses started and the bytes that leave its screen mode.
    struct EmergencyRestore {
        static let capacity = 256
        var fd: Int32
        var hasModes: Bool
        var modes: termios
        var count: Int
        var bytes: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64,
                    UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64,
                    UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64,
                    UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64)
    }

    /// The one record, allocated once for the life of the process (a handler may read it at any
    /// time); written only while no terminal is open.
    static let record: Int = {
        let record = UnsafeMutablePointer<EmergencyRestore>.allocate(capacity: 1)
        record.initialize(to: EmergencyRestore(fd: -1, hasModes: false, modes: termios(), count: 0,
                                               bytes: (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)))
        return Int(bitPattern: record)
    }()

    /// Fills the record for a terminal about to open and publishes it to the handlers.
    static func arm(fd: Int32, modes: termios?, leaveSequence: [UInt8]) {
        let pointer = UnsafeMutablePointer<EmergencyRestore>(bitPattern: record)!
        pointer.pointee.fd = fd
        pointer.pointee.hasModes = modes != nil
        pointer.pointee.modes = modes ?? termios()
        let count = min(leaveSequence.count, EmergencyRestore.capacity)
        withUnsafeMutableBytes(of: &pointer.pointee.bytes) { bytes in
            for index in 0..<count { bytes[index] = leaveSequence[index] }
        }
        pointer.pointee.count = count
        emergency.store(record, ordering: .releasing)
    }

    /// Installs the handlers, saving the previous actions to restore on `uninstall`.
    static func install() {
        // Touch every atomic first: a handler must never be the first to initialize a global.
        _ = (resizePending.load(ordering: .relaxed), stopSignal.load(ordering: .relaxed), emergency.load(ordering: .relaxed), record)
        CrashReport.prepare()
        resizePending.store(false, ordering: .relaxed)
        stopSignal.store(0, ordering: .relaxed)
        var table = previousActions.load(ordering: .acquiring)
        if table == 0 {
            // One table for the life of the process: a handler may read it at any time.
            let actions = UnsafeMutablePointer<sigaction>.allocate(capacity: signalCount)
            actions.initialize(repeating: sigaction(), count: signalCount)
            table = Int(bitPattern: actions)
            previousActions.store(table, ordering: .releasing)
        }
        let actions = UnsafeMutablePointer<sigaction>(bitPattern: table)!
        for signal in handled {
            var action = sigaction()
            action.__sigaction_handler.sa_handler = { TerminalSignals.handle($0) }
            sigemptyset(&action.sa_mask)
            // On the alternate stack where one is set up (the Swift runtime's), so a stack
            // overflow still restores the terminal.
            action.sa_flags = fatalSignals.contains(signal) ? SA_ONSTACK : 0
            sigaction(signal, &action, actions + Int(signal))
        }
        if !atExitRegistered.exchange(true, ordering: .acquiringAndReleasing) {
            // exit() while the screen is open (an error path calling exit): leave curses properly.
            atexit {
                if TerminalSignals.emergency.exchange(0, ordering: .acquiringAndReleasing) != 0 { endwin() }
            }
        }
    }

    /// Puts back the actions saved by `install`.
    static func uninstall() {
        guard let actions = UnsafeMutablePointer<sigaction>(bitPattern: previousActions.load(ordering: .acquiring)) else { return }
        for signal in handled { sigaction(signal, actions + Int(signal), nil) }
    }

    /// The handler of every signal in `handled`.
    static func handle(_ signal: Int32) {
        switch signal {
        case SIGWINCH:
            resizePending.store(true, ordering: .releasing)
        case SIGINT, SIGTERM, SIGHUP, SIGQUIT:
            // First time: ask the run loop to quit. Again (the loop is stuck): restore and leave now.
            if stopSignal.exchange(signal, ordering: .acquiringAndReleasing) != 0 {
                restoreWithoutCurses()
                _exit(128 + signal)
            }
        default:
            restoreWithoutCurses()
            CrashReport.write(signal: signal)
            // Die of the signal at once: the runtime's crash reporter would wait up to 30 s for
            // a key on the terminal just given back. The signal stays blocked until this
            // handler returns, then the default action ends the process.
            Glibc.signal(signal, SIG_DFL)
            raise(signal)
        }
    }

    /// Writes the leave sequence and restores the saved tty modes, once; async-signal-safe.
    static func restoreWithoutCurses() {
        let address = emergency.exchange(0, ordering: .acquiringAndReleasing)
        guard let record = UnsafeMutablePointer<EmergencyRestore>(bitPattern: address) else { return }
        withUnsafeBytes(of: &record.pointee.bytes) { bytes in _ = write(record.pointee.fd, bytes.baseAddress, record.pointee.count) }
        if record.pointee.hasModes {
            var modes = record.pointee.modes
            _ = tcsetattr(record.pointee.fd, TCSANOW, &modes)
        }
    }
}
