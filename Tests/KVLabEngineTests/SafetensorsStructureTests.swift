import Foundation
@testable import KVLabEngine
import KVLabFoundation
@testable import KVLabFoundation
import KVLabMethods
@testable import KVLabMethods
@testable import KVLabRun
import Testing

/// Structurally corrupt safetensors files and HF directories, against the reference reader's rules.
@Suite struct SafetensorsStructureTests {
    private func files(_ model: LoadedModel) throws -> [String: Data] {
        let encoded = try SafetensorsModel.encode(model.weights, tokenizer: model.tokenizer.spec, directory: "/mem")
        var files = [SafetensorsModel.weightsFile: joinedChunks(encoded.weights)]
        for (name, json) in encoded.json { files[name] = Data(json.rendered().utf8) }
        return files
    }

    private func expectProblem(_ files: [String: Data], contains texts: String..., sourceLocation: SourceLocation = #_sourceLocation) {
        let message = fileErrorProblem {
            _ = try SafetensorsModel.load(SafetensorsModel.Source(directory: "/mem") { files[$0] }, weights: nil, displayPath: "/mem")
        }
        for text in texts {
            #expect(message?.contains(text) == true, "got: \(message ?? "no error")", sourceLocation: sourceLocation)
        }
    }

    private func load(_ files: [String: Data]) throws -> LoadedModel {
        try SafetensorsModel.load(SafetensorsModel.Source(directory: "/mem") { files[$0] }, weights: nil, displayPath: "/mem")
    }

    private func tensors(_ data: Data) throws -> [SafetensorsTensor] {
        try data.withUnsafeBytes { try SafetensorsFile($0).tensors }
    }

    /// A weights file whose header entries are `header`'s (name, dtype, shape, data_offsets) over `data`.
    private func weightsFile(_ header: [(String, String, [Int], [Int])], data: Data, prefix: String = "") -> Data {
        let members: [(key: String, value: JSONValue)] = header.map { name, dtype, shape, offsets in
            (name, .object([("dtype", .string(dtype)), ("shape", .array(shape.map { .integer($0) })),
                            ("data_offsets", .array(offsets.map { .integer($0) }))]))
        }
        let text = Data((prefix + JSONValue.object(members).compactText()).utf8)
        var file = Data()
        withUnsafeBytes(of: UInt64(text.count).littleEndian) { file.append(contentsOf: $0) }
        return file + text + data
    }

    /// The valid tiny model's weights, with `edit` applied to each entry's data_offsets.
    private func editedOffsets(_ edit: (String, [Int]) -> [Int], extra: Data = Data()) throws -> [String: Data] {
        var files = try files(try TinyModel.make(seed: 21))
        let data = try #require(files[SafetensorsModel.weightsFile])
        let list = try tensors(data)
        let start = list.first?.range.lowerBound ?? 0
        let header = list.map { ($0.name, $0.dtype, $0.shape, edit($0.name, [$0.range.lowerBound - start, $0.range.upperBound - start])) }
        files[SafetensorsModel.weightsFile] = weightsFile(header, data: data[start...] + extra)
        return files
    }

    @Test func unchangedOffsetsLoad() throws {
        _ = try load(try editedOffsets { $1 })
    }

    @Test func aliasedTensorIsRejected() throws {
        // o_proj points at q_proj's bytes (same size): its own bytes become a hole.
        let valid = try tensors(try #require(try files(try TinyModel.make(seed: 21))[SafetensorsModel.weightsFile]))
        let query = try #require(valid.first { $0.name == "model.layers.0.self_attn.q_proj.weight" })
        let start = valid[0].range.lowerBound
        let files = try editedOffsets { name, offsets in
            name == "model.layers.0.self_attn.o_proj.weight" ? [query.range.lowerBound - start, query.range.upperBound - start] : offsets
        }
        expectProblem(files, contains: "overlaps tensor model.layers.0.self_attn.", "self_attn.q_proj.weight")
    }

    @Test func overlappingTensorIsRejected() throws {
        let files = try editedOffsets { name, offsets in
            name == "model.layers.0.self_attn.k_proj.weight" ? offsets.map { $0 - 8 } : offsets
        }
        expectProblem(files, contains: "tensor model.layers.0.self_attn.k_proj.weight data (bytes",
                      "overlaps tensor model.layers.0.self_attn.q_proj.weight")
    }

    @Test func holeBetweenTensorsIsRejected() throws {
        let files = try editedOffsets { name, offsets in
            name == "model.layers.0.self_attn.k_proj.weight" ? offsets.map { $0 + 8 } : offsets
        }
        expectProblem(files, contains: "8 data bytes between tensor model.layers.0.self_attn.q_proj.weight",
                      "and tensor model.layers.0.self_attn.k_proj.weight", "belong to no tensor")
    }

    @Test func bytesAfterTheLastTensorAreRejected() throws {
        expectProblem(try editedOffsets({ $1 }, extra: Data(count: 16)), contains: "16 data bytes after the last tensor")
    }

    @Test func dataBeforeTheFirstTensorIsRejected() throws {
        let files = try editedOffsets({ _, offsets in offsets.map { $0 + 4 } }, extra: Data(count: 4))
        expectProblem(files, contains: "the first 4 data bytes, before tensor model.embed_tokens.weight")
    }

    @Test func reversedOffsetsAreRejected() throws {
        let files = try editedOffsets { name, offsets in name == "model.norm.weight" ? offsets.reversed() : offsets }
        expectProblem(files, contains: "tensor model.norm.weight has data_offsets that are not two ascending")
    }

    @Test func headerMustStartWithABrace() throws {
        var files = try files(try TinyModel.make(seed: 21))
        let data = try #require(files[SafetensorsModel.weightsFile])
        let list = try tensors(data)
        let start = list[0].range.lowerBound
        let header = list.map { ($0.name, $0.dtype, $0.shape, [$0.range.lowerBound - start, $0.range.upperBound - start]) }
        files[SafetensorsModel.weightsFile] = weightsFile(header, data: data[start...], prefix: " ")
        expectProblem(files, contains: #"header does not start with "{""#)
    }

    @Test func lowerLayerCountIsRejected() throws {
        var files = try files(try TinyModel.make(seed: 21))
        let config = try JSONValue.parse(try #require(files[SafetensorsModel.configFile]))
        files[SafetensorsModel.configFile] = Data(config.replacing("num_hidden_layers") { _ in .integer(1) }.rendered().utf8)
        expectProblem(files, contains: "tensor model.layers.1.", "is for layer 1, but config.json's num_hidden_layers is 1")
    }

    /// The tiny model's weights with `extra` tensors (4 floats each) appended.
    private func withExtraTensors(_ names: [String], tied: Bool = false) throws -> [String: Data] {
        var files = try files(try TinyModel.make(seed: 21, tied: tied))
        let data = try #require(files[SafetensorsModel.weightsFile])
        var entries = try data.withUnsafeBytes { bytes in
            try SafetensorsFile(bytes).tensors.map {
                SafetensorsFile.Entry(name: $0.name, dtype: $0.dtype, shape: $0.shape, data: .data(Data(bytes[$0.range])))
            }
        }
        entries += names.map { SafetensorsFile.Entry(name: $0, dtype: "F32", shape: [4], data: .data(Data(count: 16))) }
        files[SafetensorsModel.weightsFile] = joinedChunks(SafetensorsFile.encode(entries))
        return files
    }

    @Test func unknownTensorIsRejected() throws {
        expectProblem(try withExtraTensors(["model.extra.weight"]), contains: "unexpected tensor model.extra.weight")
    }

    @Test func explainedExtraTensorsLoad() throws {
        // Older checkpoints saved RoPE's inv_freq buffers; tied models may still store lm_head.
        _ = try load(try withExtraTensors(["model.layers.0.self_attn.rotary_emb.inv_freq"]))
        _ = try load(try withExtraTensors(["lm_head.weight"], tied: true))
    }

    /// The tiny model split into two shards, with the index built by `map` from each tensor's shard.
    private func sharded(_ map: ([(name: String, shard: Int)]) -> [(name: String, shard: Int)], duplicate: String? = nil) throws -> [String: Data] {
        var files = try files(try TinyModel.make(seed: 21))
        let data = try #require(files[SafetensorsModel.weightsFile])
        files[SafetensorsModel.weightsFile] = nil
        let list = try tensors(data)
        let shardNames = ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]
        var placed: [(name: String, shard: Int)] = []
        for (number, part) in [Array(list[..<(list.count / 2)]), Array(list[(list.count / 2)...])].enumerated() {
            var entries = part
            if number == 1, let duplicate, let copy = list.first(where: { $0.name == duplicate }) { entries.append(copy) }
            files[shardNames[number]] = joinedChunks(SafetensorsFile.encode(entries.map {
                SafetensorsFile.Entry(name: $0.name, dtype: $0.dtype, shape: $0.shape, data: .data(data[$0.range]))
            }))
            placed += part.map { ($0.name, number) }
        }
        let weightMap = map(placed).map { (key: $0.name, value: JSONValue.string(shardNames[$0.shard])) }
        files[SafetensorsModel.indexFile] = Data(JSONValue.object([("weight_map", .object(weightMap))]).rendered().utf8)
        return files
    }

    @Test func consistentShardsLoad() throws {
        _ = try load(try sharded { $0 })
    }

    @Test func shardTensorMissingFromTheIndexIsRejected() throws {
        let files = try sharded { $0.filter { $0.name != "model.norm.weight" } }
        expectProblem(files, contains: "holds tensor model.norm.weight, but model.safetensors.index.json does not list it")
    }

    @Test func tensorInTwoShardsIsRejected() throws {
        let files = try sharded({ $0 }, duplicate: "model.embed_tokens.weight")
        expectProblem(files, contains: "holds tensor model.embed_tokens.weight, but model.safetensors.index.json places it in model-00001-of-00002.safetensors")
    }
}
