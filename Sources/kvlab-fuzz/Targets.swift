import Foundation
import KVLabEngine
import KVLabFoundation
import KVLabHardware
import KVLabRun
import KVLabSession
import KVLabTUI

/// A valid file of a format, and the name it is written under.
struct Seed {
    var file: String
    var bytes: [UInt8]
}

/// A themes' diagnostics as a refusal: the first one, or the first that is not one line naming the file.
struct ThemeFlagged: Error, CustomStringConvertible {
    var description: String
}

/// One format kvlab reads: valid seeds, its structure-aware mutator, and how kvlab reads a file of it.
struct FuzzTarget {
    var name: String
    var seeds: [Seed]
    /// Bytes at the start that a byte mutation aims at half the time (the header).
    var focus: Int
    var structural: ((_ seed: [UInt8], _ random: inout FuzzRandom) -> Mutation?)?
    /// Files written beside each input (a model's tokenizer, a safetensors directory's other files).
    var companions: [Seed] = []
    /// The path kvlab is given, relative to the input's directory (the file itself when nil).
    var loadPath: String?
    /// Reads the file at `path` as kvlab does; throws when kvlab refuses it.
    var read: (_ path: String) throws -> Void

    /// Input `index` of run `seed`: a structure-aware mutation half the time when the format has
    /// one (retried when a mutator does not apply to the seed drawn), else byte damage.
    func input(seed: UInt64, index: Int) -> (seed: Seed, mutation: Mutation) {
        var random = FuzzRandom(seed: seed, format: name, index: index)
        let chosen = random.pick(seeds)
        if let structural, random.chance(2) {
            for _ in 0..<16 {
                if let mutation = structural(chosen.bytes, &random) { return (chosen, mutation) }
            }
        }
        return (chosen, ByteMutator.mutate(chosen.bytes, focus: focus, others: seeds.map(\.bytes), random: &random))
    }

    /// The formats, by name, in the order `all` runs them.
    static func all() throws -> [FuzzTarget] {
        let f32 = try SeedModels.model(type: .f32, tied: false, seed: 1)
        let q8 = try SeedModels.model(type: .q8_0, tied: true, seed: 2)
        let tiedF32 = try SeedModels.model(type: .f32, tied: true, seed: 3)
        // Sorted: a dictionary's order changes from process to process, and children must agree on input i.
        let safetensors = try SeedModels.written(f32, as: .safetensors).sorted { $0.key < $1.key }
        let safetensorsWeights = safetensors.first { $0.key == "model.safetensors" }!.value
        let hfJSON = safetensors.filter { $0.key.hasSuffix(".json") }.map { Seed(file: "model/" + $0.key, bytes: $0.value) }
        let ggufSeeds = try [f32, q8].map { Seed(file: "model.gguf", bytes: try SeedModels.written($0, as: .gguf)["model.gguf"]!) }
        let checkpoint = Seed(file: "model.bin", bytes: SeedModels.llama2c(f32, tied: false))
        let tokenizer = Seed(file: "tokenizer.bin", bytes: SeedModels.llama2cTokenizer())
        func model(_ path: String) throws {
            _ = try? ModelLoader.readShape(path: path)
            _ = try ModelLoader.load(path: path)
        }
        return [
            FuzzTarget(name: "gguf", seeds: ggufSeeds, focus: 4096, structural: GGUFMutators.mutate, read: model),
            FuzzTarget(name: "llama2c", seeds: [checkpoint, Seed(file: "model.bin", bytes: SeedModels.llama2c(tiedF32, tied: true))],
                       focus: 28, structural: Llama2cMutators.checkpoint, companions: [tokenizer], read: model),
            FuzzTarget(name: "llama2c-tokenizer", seeds: [tokenizer], focus: 64, structural: Llama2cMutators.tokenizer,
                       companions: [checkpoint], loadPath: "model.bin", read: model),
            FuzzTarget(name: "safetensors", seeds: [Seed(file: "model/model.safetensors", bytes: safetensorsWeights)],
                       focus: 4096, structural: SafetensorsMutators.mutate, companions: hfJSON, loadPath: "model", read: model),
            // The input replaces its own file among the companions.
            FuzzTarget(name: "hf-json", seeds: hfJSON, focus: 512,
                       structural: HFMutators.mutate,
                       companions: [Seed(file: "model/model.safetensors", bytes: safetensorsWeights)] + hfJSON, loadPath: "model", read: model),
            FuzzTarget(name: "session", seeds: try sessionSeeds(), focus: 1024, structural: SessionMutators.mutate,
                       read: { _ = try SessionReader(path: $0).readAll() }),
            FuzzTarget(name: "theme", seeds: try bundled(ThemeCatalog.bundleName, "themes", suffix: ".theme"), focus: 256,
                       structural: ThemeMutators.mutate, read: readTheme),
            FuzzTarget(name: "device", seeds: try bundled("kvlab_KVLabHardware.resources", "devices", suffix: ".json"), focus: 512,
                       structural: { seed, random in ProfileMutators.mutate(seed, strict: true, random: &random) },
                       read: { _ = try HardwareCatalog.device($0) }),
            FuzzTarget(name: "target", seeds: try bundled("kvlab_KVLabHardware.resources", "targets", suffix: ".json"), focus: 256,
                       structural: { seed, random in ProfileMutators.mutate(seed, strict: true, random: &random) },
                       read: { _ = try HardwareCatalog.target($0) }),
        ]
    }

    /// The shipped files of one kind, from the resource bundle beside the binary.
    private static func bundled(_ bundle: String, _ folder: String, suffix: String) throws -> [Seed] {
        guard let directory = PackageResources.directory(named: bundle)?.appendingPathComponent(folder).path else {
            throw FileError(path: bundle, problem: "resource bundle not beside kvlab-fuzz")
        }
        let names = try FileManager.default.contentsOfDirectory(atPath: directory).filter { $0.hasSuffix(suffix) }.sorted()
        return try names.map { Seed(file: "input" + suffix, bytes: [UInt8](try Data(contentsOf: URL(fileURLWithPath: directory + "/" + $0)))) }
    }

    /// The first 40 lines of each shipped demo (every event kind appears early; whole demos are 200 KB).
    private static func sessionSeeds() throws -> [Seed] {
        guard let directory = DemoCatalog.directory() else { throw FileError(path: DemoCatalog.bundleName, problem: "demo sessions not found") }
        return try DemoCatalog.demos(in: directory).map { demo in
            let text = try String(contentsOfFile: demo.path, encoding: .utf8)
            let lines = text.split(separator: "\n", omittingEmptySubsequences: false).prefix(40)
            return Seed(file: "input" + DemoCatalog.fileSuffix, bytes: Array((lines.joined(separator: "\n") + "\n").utf8))
        }
    }

    /// As `kvlab themes --check` reads a file: UTF-8 text, then the parser; any diagnostic is a refusal.
    private static func readTheme(_ path: String) throws {
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        guard let text = String(data: data, encoding: .utf8) else { throw FileError(path: path, problem: "not valid UTF-8 text") }
        let diagnostics = ThemeParser.parse(text, path: path, name: "fuzz", fallback: .plain).diagnostics
        guard let first = diagnostics.first else { return }
        let unclean = diagnostics.first { !Outcome.isClean($0.description, path: path) }
        throw ThemeFlagged(description: (unclean ?? first).description)
    }
}
