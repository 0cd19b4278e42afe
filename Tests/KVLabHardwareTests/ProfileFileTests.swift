import Foundation
import Testing
import KVLabFoundation
@testable import KVLabHardware

/// Device profiles and target shapes as data files: every bundled one parses and cites its
/// figures; bad files are one line naming the file, the line and the key.
@Suite struct ProfileFileTests {
    static let devices = ["a100-40gb", "a100-80gb", "h100-sxm", "h100-pcie", "h200", "l4", "rtx-4090", "m2-ultra"]
    static let targets = ["llama-2-7b", "llama-3-8b", "llama-3.1-70b", "llama-3.1-8b", "mistral-7b", "qwen2.5-7b"]
    /// Hugging Face configs of sliding-window, MLA, MoE and hybrid models, listed after the dense
    /// shapes, with their model cards' total parameter counts (Gemma-3-27B: its text decoder).
    static let modern = ["deepseek-v2": 236e9, "deepseek-v3": 671e9, "gemma-2-9b": 9.24e9, "gemma-3-27b": 27.0e9, "gpt-oss-120b": 116.8e9,
                         "jamba-v0.1": 51.6e9, "kimi-k2": 1.03e12, "mistral-7b-v0.1": 7.24e9, "mixtral-8x7b": 46.7e9,
                         "qwen3-30b-a3b": 30.5e9, "qwen3-next-80b-a3b": 80e9]

    @Test func everyBundledDeviceParsesWithSources() throws {
        #expect(HardwareCatalog.deviceNames == Self.devices.sorted() + ["this-machine"])
        for name in Self.devices {
            let device = try HardwareCatalog.device(name)
            #expect(device.id == name)
            for key in DeviceProfile.figureKeys where !["pcie_bandwidth"].contains(key) || device.kind == .gpu {
                #expect(!(device.sources[key] ?? "").isEmpty, "\(name): \(key) has no source")
            }
            #expect(device.peak[.fp16]! >= device.peak[.fp32]!)
            #expect(device.computeEfficiency == 1 && device.memoryEfficiency == 1)
        }
        let h100 = try HardwareCatalog.device("h100-sxm")
        #expect(h100.hbmBandwidth == 3.35e12)
        #expect(h100.hbm == 80 * 1024 * 1024 * 1024)
        #expect(h100.sramPerSM == 228 * 1024 && h100.smCount == 132)
        #expect(h100.peak[.fp16] == 989.5e12)
        #expect(try HardwareCatalog.device("a100-40gb").peak[.fp8] == nil)
        #expect(try HardwareCatalog.device("m2-ultra").pcieBandwidth == nil)
    }

    /// Parameter counts against the model cards (Llama-2-7B 6.74B, Llama-3-8B 8.03B,
    /// Llama-3.1-70B 70.6B, Mistral-7B-v0.3 7.25B, Qwen2.5-7B 7.61B).
    @Test func everyBundledTargetParses() throws {
        #expect(HardwareCatalog.targetNames == Self.targets.sorted() + Self.modern.keys.sorted() + ["live"])
        for (name, parameters) in Self.modern {
            let shape = try HardwareCatalog.target(name)
            #expect(shape.source.hasPrefix("https://huggingface.co/"))
            #expect(abs(Double(shape.parameterCount) / parameters - 1) < 0.01, "\(name): \(shape.parameterCount)")
        }
        let published = ["llama-2-7b": 6.74e9, "llama-3-8b": 8.03e9, "llama-3.1-70b": 70.6e9, "llama-3.1-8b": 8.03e9, "mistral-7b": 7.25e9, "qwen2.5-7b": 7.61e9]
        for name in Self.targets {
            let shape = try HardwareCatalog.target(name)
            #expect(shape.source.hasPrefix("https://huggingface.co/"))
            #expect(abs(Double(shape.parameterCount) / published[name]! - 1) < 0.005, "\(name): \(shape.parameterCount)")
            #expect(shape.queryDim == shape.hidden)
        }
    }

    @Test func unknownNamesListTheValidOnes() {
        #expect(throws: UnknownProfileError.self) { try HardwareCatalog.device("h100") }
        do {
            _ = try HardwareCatalog.target("llama-9")
        } catch {
            #expect("\(error)".contains("unknown target 'llama-9' (llama-2-7b, llama-3-8b"))
        }
    }

    static func deviceError(_ text: String) -> String {
        do {
            _ = try DeviceProfile(path: "bad.json", data: Data(text.utf8))
            return "parsed"
        } catch {
            return "\(error)"
        }
    }

    /// A copy of a bundled device file with one line replaced.
    static func h100(replacing old: String, with new: String) throws -> String {
        let path = try #require(PackageResources.file("devices/h100-sxm.json", inBundle: HardwareCatalog.bundleName))
        let text = try String(contentsOfFile: path, encoding: .utf8)
        #expect(text.contains(old))
        return text.replacingOccurrences(of: old, with: new)
    }

    @Test func badDeviceFilesNameFileLineAndKey() throws {
        let wrongUnit = Self.deviceError(try Self.h100(replacing: "\"3350 GB/s\"", with: "\"3350 GB\""))
        #expect(wrongUnit.hasPrefix("bad.json: line 21: hbm_bandwidth: value \"3350 GB\" is not a bandwidth"), "\(wrongUnit)")
        let missing = Self.deviceError(try Self.h100(replacing: "\"sm_count\"", with: "\"sm_counts\""))
        #expect(missing.hasPrefix("bad.json: line 9: sm_counts: unknown key"), "\(missing)")
        let null = Self.deviceError(try Self.h100(replacing: "\"80 GiB\"", with: "null"))
        #expect(null.hasPrefix("bad.json: line 17: hbm: value is missing or null"), "\(null)")
        let syntax = Self.deviceError("{\n  \"name\": \"x\",\n  \"kind\": gpu\n}")
        #expect(syntax.hasPrefix("bad.json: invalid JSON at line 3 column 11"), "\(syntax)")
        let kind = Self.deviceError(try Self.h100(replacing: "\"kind\": \"gpu\"", with: "\"kind\": \"tpu\""))
        #expect(kind.hasPrefix("bad.json: line 3: kind: \"tpu\" is not one of gpu, unified, cpu"), "\(kind)")
        let unsourced = Self.deviceError("{\"name\": \"x\", \"kind\": \"gpu\", \"tiers\": \"t\", \"sram_per_sm\": {\"value\": 1}}")
        #expect(unsourced.contains("sram_per_sm: has no source"), "\(unsourced)")
        for message in [wrongUnit, missing, null, syntax, kind, unsourced] { #expect(!message.contains("\n")) }
    }

    @Test func badShapeFilesNameFileLineAndKey() throws {
        let text = "{\n  \"name\": \"m\",\n  \"source\": \"s\",\n  \"layers\": 2,\n  \"hidden\": 64,\n  \"heads\": 4,\n  \"kv_heads\": 3,\n"
            + "  \"head_dim\": 16,\n  \"ffn\": 128,\n  \"vocab\": 10,\n  \"max_context\": 64\n}"
        do {
            _ = try TargetShape(path: "shape.json", data: Data(text.utf8))
            Issue.record("a KV head count that does not divide the heads must be refused")
        } catch {
            #expect("\(error)" == "shape.json: line 7: kv_heads: 3 does not divide heads 4")
        }
        do {
            _ = try TargetShape(path: "shape.json", data: Data(text.replacingOccurrences(of: "\"layers\": 2", with: "\"layers\": \"two\"").utf8))
        } catch {
            #expect("\(error)" == "shape.json: line 4: layers: is a string, expected a whole number")
        }
    }

    /// Units in strings or base units in numbers; a profile written back reads the same.
    @Test func quantitiesAndRoundTrip() throws {
        #expect(QuantityKind.bytes.parse("228 KiB") == 233_472.0)
        #expect(QuantityKind.bandwidth.parse("3.35 TB/s") == 3.35e12)
        #expect(QuantityKind.flops.parse("989.5 TFLOP/s") == 989.5e12)
        #expect(QuantityKind.bytes.parse("80 GB/s") == nil)
        #expect(QuantityKind.bandwidth.parse("fast") == nil)
        for name in Self.devices {
            let device = try HardwareCatalog.device(name)
            var again = try DeviceProfile(path: "\(name).json", data: Data(device.json().rendered().utf8))
            #expect(abs(again.hbmBandwidth / device.hbmBandwidth - 1) < 1e-3)
            again.hbmBandwidth = device.hbmBandwidth
            #expect(again == device)
        }
    }
}
