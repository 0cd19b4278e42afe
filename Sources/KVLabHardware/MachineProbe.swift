import Foundation
import KVLabFoundation

/// Measures the machine kvlab runs on as a `this-machine` device profile: memory bandwidth by a
/// timed parallel read of a buffer far larger than the caches (best of several runs), cache sizes
/// and core count from sysfs, and the fp32 peak from a timed BLAS matrix product on every core.
/// The profile is cached as a device file under `$XDG_CACHE_HOME/kvlab` (or `~/.cache/kvlab`).
public struct MachineProbe: Sendable {
    /// Bytes read per bandwidth run: nil reads at least 256 MiB and four times the last-level
    /// cache (a VM may report an LLC of 300 MiB, which a 256 MiB buffer would measure instead of
    /// memory), at most a quarter of physical memory.
    public var bufferBytes: Int?
    /// Runs of each measurement; the best is kept.
    public var runs = 5
    /// Side of the square matrix product timed for the fp32 peak.
    public var matrixSize = 2048

    /// Best seconds of `runs` square fp32 products of side `size` on `threads` threads: the
    /// engine's BLAS (`MachineProbe.engine` in KVLabRun), so this module needs no BLAS of its own.
    public typealias ProductTimer = @Sendable (_ size: Int, _ runs: Int, _ threads: Int) -> Double
    public var timeSquareProduct: ProductTimer

    /// A probe with the default sizes (a buffer beyond the caches, a 2048³ product, 5 runs).
    public init(timeSquareProduct: @escaping ProductTimer) {
        self.timeSquareProduct = timeSquareProduct
    }

    /// Where the measured profile is cached.
    public static var cacheFile: String {
        let environment = ProcessInfo.processInfo.environment
        let base = environment["XDG_CACHE_HOME"].flatMap { $0.isEmpty ? nil : $0 }
            ?? (NSHomeDirectory() as NSString).appendingPathComponent(".cache")
        return (base as NSString).appendingPathComponent("kvlab/\(HardwareCatalog.thisMachine).json")
    }

    /// The cached profile, or a new measurement (written to the cache) when there is none or
    /// `remeasure` is set. A damaged cache file is a one-line error naming it.
    public func profile(remeasure: Bool) throws -> (profile: DeviceProfile, measuredNow: Bool) {
        let path = Self.cacheFile
        if !remeasure, FileManager.default.fileExists(atPath: path) {
            do {
                return (try DeviceProfile(path: path), false)
            } catch {
                throw FileError(path: path, problem: "\((error as? FileError)?.problem ?? "\(error)") (re-measure with kvlab project --measure)")
            }
        }
        let profile = measure()
        do {
            try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            try OutputFile.write(Data(profile.json().rendered().utf8), to: path)
        } catch let error as FileError {
            throw error
        } catch {
            throw FileError(path: path, problem: "cannot be written (\(error.localizedDescription))")
        }
        return (profile, true)
    }

    /// Measures now (seconds: the buffer read `runs` times, the product `runs` times).
    public func measure() -> DeviceProfile {
        let cores = ProcessInfo.processInfo.activeProcessorCount
        let caches = Self.caches()
        let date = ISO8601DateFormatter().string(from: Date()).prefix(10)
        let bytes = bufferBytes ?? Self.defaultBufferBytes(lastLevel: caches.lastLevel)
        let bandwidth = readBandwidth(bytes: bytes, threads: cores)
        let seconds = timeSquareProduct(matrixSize, runs, cores)
        let flops = 2 * pow(Double(matrixSize), 3) / seconds
        let memory = Double(ProcessInfo.processInfo.physicalMemory)
        let perCore = caches.perCore ?? caches.l1 ?? 32 * 1024
        let shared = caches.lastLevel ?? perCore * Double(cores)
        let sysfs = "sysfs /sys/devices/system/cpu/cpu0/cache"
        let measured = "measured by kvlab on \(date)"
        let readSource = "\(measured): parallel read of a \(bytes >> 20) MiB buffer on \(cores) threads, best of \(runs)"
        return DeviceProfile(
            id: HardwareCatalog.thisMachine, name: "this machine (\(Self.cpuName() ?? "CPU"), \(cores) cores)", kind: .cpu,
            tiers: "CPU: SRAM = each core's private L2, L2 = the shared last-level cache, HBM = main memory (host DRAM is the same memory)",
            sramPerSM: perCore, smCount: cores, l2: shared, hbm: memory, hbmBandwidth: bandwidth, hostDRAM: memory,
            hostDRAMBandwidth: bandwidth, pcieBandwidth: nil, interconnectBandwidth: nil, nvmeBandwidth: nil,
            peak: [.fp32: flops], computeEfficiency: 1, memoryEfficiency: 1,
            sources: [
                "sram_per_sm": "\(sysfs) (per-core L2)", "sm_count": "active processors (\(measured))",
                "l2": "\(sysfs) (last-level cache, all instances)", "hbm": "physical memory (\(measured))",
                "hbm_bandwidth": readSource, "host_dram": "physical memory (\(measured))", "host_dram_bandwidth": readSource,
                "peak_fp32": "\(measured): OpenBLAS sgemm \(matrixSize)³ on \(cores) threads, best of \(runs)",
                "peak_fp16": "none: kvlab computes in fp32 on the CPU",
            ])
    }

    static func defaultBufferBytes(lastLevel: Double?, physicalMemory: UInt64 = ProcessInfo.processInfo.physicalMemory) -> Int {
        let wanted = max(256 << 20, Int(4 * (lastLevel ?? 0)))
        return max(64 << 20, min(wanted, Int(physicalMemory / 4)))
    }

    /// Best bytes/s of reading `bytes` with `threads` threads, each summing its own slice.
    func readBandwidth(bytes: Int, threads: Int) -> Double {
        let count = bytes / MemoryLayout<SIMD16<Float>>.stride
        let buffer = UnsafeMutablePointer<SIMD16<Float>>.allocate(capacity: count)
        defer { buffer.deallocate() }
        buffer.initialize(repeating: SIMD16(repeating: 1), count: count)
        let slice = (count + threads - 1) / threads
        var best = 0.0
        let sums = UnsafeMutablePointer<Float>.allocate(capacity: threads)
        defer { sums.deallocate() }
        let shared = SharedBuffers(buffer: buffer, sums: sums)
        for _ in 0..<runs {
            let start = DispatchTime.now().uptimeNanoseconds
            DispatchQueue.concurrentPerform(iterations: threads) { t in
                var accumulator = SIMD16<Float>()
                for i in (t * slice)..<min(count, (t + 1) * slice) { accumulator += shared.buffer[i] }
                shared.sums[t] = accumulator.sum()
            }
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            // The sums are used, so the reads cannot be optimized away.
            if (0..<threads).reduce(0, { $0 + sums[$1] }) > 0 { best = max(best, Double(count * 64) / seconds) }
        }
        return best
    }

    /// The probe's buffers, shared with the reading threads (each writes only its own sum).
    private struct SharedBuffers: @unchecked Sendable {
        let buffer: UnsafeMutablePointer<SIMD16<Float>>
        let sums: UnsafeMutablePointer<Float>
    }

    /// Cache sizes from sysfs: L1 data and per-core L2 of cpu0, and the last level (all instances).
    static func caches(root: String = "/sys/devices/system/cpu") -> (l1: Double?, perCore: Double?, lastLevel: Double?) {
        struct Level { var level: Int; var type: String; var bytes: Double; var index: String }
        func read(_ path: String) -> String? {
            (try? String(contentsOfFile: path, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines)
        }
        let directory = "\(root)/cpu0/cache"
        let levels: [Level] = ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).filter { $0.hasPrefix("index") }.compactMap { index in
            guard let level = read("\(directory)/\(index)/level").flatMap(Int.init), let type = read("\(directory)/\(index)/type"),
                  let bytes = read("\(directory)/\(index)/size").flatMap(parseSize) else { return nil }
            return Level(level: level, type: type, bytes: bytes, index: index)
        }
        let l1 = levels.first { $0.level == 1 && $0.type == "Data" }?.bytes
        let l2 = levels.first { $0.level == 2 }?.bytes
        guard let last = levels.filter({ $0.type != "Instruction" }).max(by: { $0.level < $1.level }), last.level >= 3 else {
            return (l1, l2, nil)
        }
        // One instance per distinct set of CPUs sharing it.
        let cpus = ((try? FileManager.default.contentsOfDirectory(atPath: root)) ?? []).filter { $0.hasPrefix("cpu") && Int($0.dropFirst(3)) != nil }
        let instances = Set(cpus.compactMap { read("\(root)/\($0)/cache/\(last.index)/shared_cpu_list") }).count
        return (l1, l2, last.bytes * Double(max(1, instances)))
    }

    /// sysfs sizes: `32K`, `1024K`, `32M`.
    static func parseSize(_ text: String) -> Double? {
        let factors: [Character: Double] = ["K": 1024, "M": 1024 * 1024, "G": 1024 * 1024 * 1024]
        if let last = text.last, let factor = factors[last], let number = Double(text.dropLast()) { return number * factor }
        return Double(text)
    }

    /// The CPU's model name from /proc/cpuinfo.
    public static func cpuName() -> String? {
        guard let info = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8) else { return nil }
        for line in info.split(separator: "\n") where line.hasPrefix("model name") {
            return line.split(separator: ":", maxSplits: 1).last.map { $0.trimmingCharacters(in: .whitespaces) }
        }
        return nil
    }
}
