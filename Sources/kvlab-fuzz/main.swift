import Foundation

// kvlab-fuzz FORMAT|all [--count N] [--seed S] [--timeout-ms T] [--batch B] [--jobs J]
// kvlab-fuzz FORMAT --seed S --only I [--keep DIR]   reruns one input in-process and keeps its files
// (--one is the child mode the parent starts; see Harness.)

let usage = """
    usage: kvlab-fuzz FORMAT|all [--count N] [--seed S] [--timeout-ms T] [--batch B] [--jobs J]
           kvlab-fuzz FORMAT [--seed S] --only INDEX [--keep DIR]
    Mutates valid seed files of each format kvlab reads and reads each result as kvlab does, in child
    processes (B inputs to a child) so a crash or a hang (T ms) is reported rather than fatal.
    Exits 1 when any input crashed, hung, or was structurally corrupt and still accepted.
    """

func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data("kvlab-fuzz: \(message)\n\(usage)\n".utf8))
    exit(2)
}

var arguments = Array(CommandLine.arguments.dropFirst())
var options: [String: String] = [:]
var positional: [String] = []
while !arguments.isEmpty {
    let argument = arguments.removeFirst()
    if argument.hasPrefix("--") {
        guard !arguments.isEmpty else { fail("\(argument) needs a value") }
        options[String(argument.dropFirst(2))] = arguments.removeFirst()
    } else {
        positional.append(argument)
    }
}
@MainActor func number(_ name: String, _ fallback: Int, _ range: ClosedRange<Int>) -> Int {
    guard let text = options[name] else { return fallback }
    guard let value = Int(text), range.contains(value) else { fail("--\(name) \(text) is not a whole number in \(range)") }
    return value
}
let known: Set = ["count", "seed", "timeout-ms", "batch", "jobs", "only", "keep", "one", "from", "to", "dir"]
if let unknown = options.keys.first(where: { !known.contains($0) }) { fail("unknown option --\(unknown)") }

let targets: [FuzzTarget]
do { targets = try FuzzTarget.all() } catch { fail("cannot build the seed files: \(error)") }
let seed = UInt64(number("seed", 1, 0...Int.max))

if let name = options["one"] {
    guard let target = targets.first(where: { $0.name == name }), let directory = options["dir"] else { fail("bad --one") }
    Child.run(target, seed: seed, range: number("from", 0, 0...Int.max)..<number("to", 0, 0...Int.max), directory: directory)
}

guard positional.count == 1 else { fail("name one format: \(targets.map(\.name).joined(separator: ", ")) or all") }
let chosen = positional[0] == "all" ? targets : targets.filter { $0.name == positional[0] }
guard !chosen.isEmpty else { fail("unknown format \(positional[0]); formats: \(targets.map(\.name).joined(separator: ", ")), all") }

if options["only"] != nil {
    let target = chosen[0]
    let index = number("only", 0, 0...Int.max)
    let (input, mutation) = target.input(seed: seed, index: index)
    let directory = options["keep"] ?? FileManager.default.temporaryDirectory.appendingPathComponent("kvlab-fuzz-\(target.name)-\(seed)-\(index)").path
    do { try Child.write(target.companions + [Seed(file: input.file, bytes: mutation.bytes)], under: directory) } catch { fail("\(error)") }
    let path = directory + "/" + (target.loadPath ?? input.file)
    print("\(target.name) seed \(seed) input \(index): \(mutation.name)\(mutation.corrupt ? " (known corrupt)" : "")\nfiles kept in \(directory)")
    do {
        try target.read(path)
        print("accepted")
    } catch {
        print("refused: \(error)")
    }
    exit(0)
}

// Every seed must be accepted, or the figures would only measure a broken seed.
for target in chosen {
    for (number, input) in target.seeds.enumerated() {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("kvlab-fuzz-seed-\(getpid())-\(target.name)-\(number)").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        do {
            try Child.write(target.companions + [input], under: directory)
            try target.read(directory + "/" + (target.loadPath ?? input.file))
        } catch {
            fail("seed \(number) of \(target.name) is refused: \(error)")
        }
    }
}

let executable = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().path
let harness = Harness(executable: executable, seed: seed, timeoutMilliseconds: number("timeout-ms", 5000, 1...3_600_000),
                      batch: number("batch", 1000, 1...Int.max))
let count = number("count", 1000, 0...Int.max)
let jobs = number("jobs", 1, 1...64)
let start = Date()
let tallies = Scheduler(targets: chosen).run(harness, count: count, jobs: jobs)

let header = ["format", "inputs", "clean errors", "unclean errors", "crashes", "hangs", "accepted", "corrupt", "corrupt accepted"]
print("kvlab-fuzz seed \(seed), \(count) inputs per format, timeout \(harness.timeoutMilliseconds) ms")
let widths = header.map { max($0.count, 8) }.enumerated().map { $0.offset == 0 ? 18 : $0.element }
func row(_ cells: [String]) -> String { zip(cells, widths).map { $0.padding(toLength: $1, withPad: " ", startingAt: 0) }.joined(separator: "  ") }
print(row(header))
var failed = false
for (target, tally) in zip(chosen, tallies) {
    let figures = [target.name, "\(tally.inputs)", "\(tally.clean)", "\(tally.unclean)", "\(tally.crashes)", "\(tally.hangs)",
                   "\(tally.accepted)", "\(tally.corrupt)", "\(tally.corruptAccepted)"]
    print(row(figures))
    failed = failed || tally.failed
}
for (target, tally) in zip(chosen, tallies) {
    for failure in tally.failures { print("\(target.name): \(failure)") }
    for (mutator, entry) in tally.corruptClasses.sorted(by: { $0.key < $1.key }) {
        print("\(target.name): CORRUPT ACCEPTED \(entry.count)× \(mutator); first: input \(entry.first) (\(entry.name)); "
            + "reproduce: kvlab-fuzz \(target.name) --seed \(seed) --only \(entry.first)")
    }
    for example in tally.uncleanExamples { print("\(target.name): unclean error: \(example)") }
}
print(String(format: "%.1f s", Date().timeIntervalSince(start)))
exit(failed ? 1 : 0)

/// Runs formats on `jobs` threads (formats are independent), each thread one child at a time.
final class Scheduler: @unchecked Sendable {
    let targets: [FuzzTarget]
    private let lock = NSLock()
    private var next = 0
    private var tallies: [Tally?]

    init(targets: [FuzzTarget]) {
        self.targets = targets
        tallies = Array(repeating: nil, count: targets.count)
    }

    func run(_ harness: Harness, count: Int, jobs: Int) -> [Tally] {
        DispatchQueue.concurrentPerform(iterations: jobs) { _ in
            while true {
                let index: Int = lock.withLock { defer { next += 1 }; return next }
                guard index < targets.count else { return }
                let tally = harness.run(targets[index], count: count)
                lock.withLock { tallies[index] = tally }
            }
        }
        return tallies.map { $0! }
    }
}
