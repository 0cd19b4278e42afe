import Foundation
import Testing
@testable import KVLabHardware

/// The this-machine profile: measured figures (no timing assertions, only that they exist and
/// are cited), sysfs parsing, and the profile written as a device file that reads back.
@Suite struct MachineProbeTests {
    @Test func aSmallProbeGivesACitedCPUProfile() throws {
        var probe = MachineProbe.engine
        probe.bufferBytes = 8 << 20
        probe.runs = 2
        probe.matrixSize = 128
        let profile = probe.measure()
        #expect(profile.kind == .cpu)
        #expect(profile.hbmBandwidth > 0 && profile.peak[.fp32]! > 0)
        #expect(profile.smCount == ProcessInfo.processInfo.activeProcessorCount)
        #expect(profile.hbm == Double(ProcessInfo.processInfo.physicalMemory))
        #expect(profile.peak[.fp16] == nil && profile.pcieBandwidth == nil)
        #expect(profile.sources["hbm_bandwidth"]!.contains("8 MiB buffer"))
        let again = try DeviceProfile(path: "this-machine.json", data: Data(profile.json().rendered().utf8))
        #expect(again.kind == .cpu && again.smCount == profile.smCount && again.sources == profile.sources)
        #expect(abs(again.hbmBandwidth / profile.hbmBandwidth - 1) < 1e-3)
        #expect(abs(again.peak[.fp32]! / profile.peak[.fp32]! - 1) < 1e-3)
    }

    /// The buffer must outgrow the last-level cache, or the probe times the cache (a 2-vCPU VM
    /// here reported 300 MiB of L3, larger than the former fixed 256 MiB buffer).
    @Test func theBandwidthBufferOutgrowsTheLastLevelCache() {
        let gib: UInt64 = 1 << 30
        #expect(MachineProbe.defaultBufferBytes(lastLevel: 32 * 1_048_576, physicalMemory: 16 * gib) == 256 << 20)
        #expect(MachineProbe.defaultBufferBytes(lastLevel: 300 * 1_048_576, physicalMemory: 16 * gib) == 1200 << 20)
        #expect(MachineProbe.defaultBufferBytes(lastLevel: nil, physicalMemory: 16 * gib) == 256 << 20)
        #expect(MachineProbe.defaultBufferBytes(lastLevel: 300 * 1_048_576, physicalMemory: 2 * gib) == 512 << 20)
    }

    @Test func sysfsCachesAndSizes() throws {
        #expect(MachineProbe.parseSize("32K") == 32768.0)
        #expect(MachineProbe.parseSize("32M") == 33_554_432.0)
        #expect(MachineProbe.parseSize("512") == 512)
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("kvlab-sysfs-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: root) }
        func write(_ cpu: Int, _ index: Int, level: Int, type: String, size: String, shared: String) throws {
            let directory = root.appendingPathComponent("cpu\(cpu)/cache/index\(index)")
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            for (name, value) in [("level", "\(level)"), ("type", type), ("size", size), ("shared_cpu_list", shared)] {
                try Data((value + "\n").utf8).write(to: directory.appendingPathComponent(name))
            }
        }
        // Four cores, two L3 slices of 16 MiB, each shared by two cores.
        for cpu in 0..<4 {
            try write(cpu, 0, level: 1, type: "Data", size: "48K", shared: "\(cpu)")
            try write(cpu, 1, level: 1, type: "Instruction", size: "32K", shared: "\(cpu)")
            try write(cpu, 2, level: 2, type: "Unified", size: "2048K", shared: "\(cpu)")
            try write(cpu, 3, level: 3, type: "Unified", size: "16M", shared: cpu < 2 ? "0-1" : "2-3")
        }
        let caches = MachineProbe.caches(root: root.path)
        #expect(caches.l1 == 49152.0)
        #expect(caches.perCore == 2_097_152.0)
        #expect(caches.lastLevel == 33_554_432.0)
    }
}
