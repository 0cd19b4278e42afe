import Foundation
@testable import KVLabEngine
import KVLabFoundation
@testable import KVLabFoundation
import KVLabMethods
@testable import KVLabMethods
@testable import KVLabRun
import Testing

/// Structurally corrupt GGUF files: each is a valid tiny file with one field of its tensor table or
/// metadata changed, as a structure-aware fuzzer would, and each must be refused in one line naming
/// the tensor.
@Suite struct GGUFStructureTests {
    private func validFile(type: WeightType = .f32) throws -> Data {
        let model = try TinyModel.make(seed: 21, type: type)
        return joinedChunks(try GGUFModel.encode(model.weights, tokenizer: model.tokenizer.spec))
    }

    private func expectProblem(_ data: Data, contains texts: String..., sourceLocation: SourceLocation = #_sourceLocation) {
        let message = fileErrorProblem { _ = try GGUFModel.load(path: "bad.gguf", data: data) }
        for text in texts {
            #expect(message?.contains(text) == true, "got: \(message ?? "no error")", sourceLocation: sourceLocation)
        }
    }

    /// Where a tensor's type id and data offset sit in the table (found by its length-prefixed name).
    private func entry(_ name: String, in data: Data) throws -> (type: Int, offset: Int) {
        var needle = Data()
        withUnsafeBytes(of: UInt64(name.utf8.count).littleEndian) { needle.append(contentsOf: $0) }
        needle.append(Data(name.utf8))
        let found = try #require(data.range(of: needle), "no table entry for \(name)")
        let type = found.upperBound + 4 + 8 * Int(data[found.upperBound])
        return (type, type + 4)
    }

    private func offset(of name: String, in data: Data) throws -> UInt64 {
        let at = try entry(name, in: data).offset
        return data[at..<(at + 8)].reversed().reduce(0) { $0 << 8 | UInt64($1) }
    }

    @Test func overlappingTensorIsRejected() throws {
        var data = try validFile()
        let query = try offset(of: "blk.0.attn_q.weight", in: data)
        data.patch(query + 64, at: try entry("blk.0.attn_k.weight", in: data).offset)
        expectProblem(data, contains: "tensor blk.0.attn_k.weight data (8192 bytes at", "overlaps tensor blk.0.attn_q.weight (f32 [64, 64]")
    }

    @Test func aliasedTensorIsRejected() throws {
        var data = try validFile()
        let query = try offset(of: "blk.1.attn_q.weight", in: data)
        data.patch(query, at: try entry("blk.1.attn_output.weight", in: data).offset)
        expectProblem(data, contains: "tensor blk.1.attn_output.weight data", "overlaps tensor blk.1.attn_q.weight")
    }

    @Test func tensorsSwappingOffsetsAreRejected() throws {
        // Same sizes, so nothing overlaps; llama.cpp's table-order rule still catches it.
        var data = try validFile()
        let query = try offset(of: "blk.0.attn_q.weight", in: data), output = try offset(of: "blk.0.attn_output.weight", in: data)
        data.patch(output, at: try entry("blk.0.attn_q.weight", in: data).offset)
        data.patch(query, at: try entry("blk.0.attn_output.weight", in: data).offset)
        expectProblem(data, contains: "tensor token_embd.weight (f32 [300, 64], 76800 bytes) is followed by",
                      "bytes that belong to no tensor before tensor blk.0.attn_q.weight")
    }

    @Test(arguments: [
        // (file type, tensor, new ggml type id, problem): a smaller type leaves a hole after the tensor,
        // a larger one runs into the next tensor, and the last tensor leaves bytes at the end.
        (WeightType.f32, "blk.0.attn_q.weight", UInt32(1), "tensor blk.0.attn_q.weight (f16 [64, 64], 8192 bytes) is followed by 8192 bytes"),
        (.f16, "blk.0.attn_q.weight", 0, "overlaps tensor blk.0.attn_q.weight (f32 [64, 64], 16384 bytes"),
        (.q8_0, "blk.1.ffn_up.weight", 2, "tensor blk.1.ffn_up.weight (q4_0 [128, 64], 4608 bytes) is followed by"),
        (.q8_0, "blk.0.ffn_down.weight", 1, "overlaps tensor blk.0.ffn_down.weight (f16"),
        (.f32, "output_norm.weight", 1, "128 bytes after the last tensor output_norm.weight (f16 [64], 128 bytes) belong to no tensor"),
    ])
    func changedTensorTypeIsRejected(fileType: WeightType, name: String, typeID: UInt32, problem: String) throws {
        var data = try validFile(type: fileType)
        data.patch(typeID, at: try entry(name, in: data).type)
        expectProblem(data, contains: problem)
    }

    @Test func reshapedTensorOfTheSameSizeIsRejectedByTheModel() throws {
        // [300, 64] stored as [600, 32]: the bytes still fit, so the model's shape check catches it.
        var data = try validFile()
        let dims = try entry("token_embd.weight", in: data).type - 16
        data.patch(UInt64(32), at: dims)
        data.patch(UInt64(600), at: dims + 8)
        expectProblem(data, contains: "tensor token_embd is 600×32, expected 300×64")
    }

    @Test func firstTensorMustStartTheDataSection() throws {
        var data = try validFile()
        data.patch(UInt64(32), at: try entry("token_embd.weight", in: data).offset)
        expectProblem(data, contains: "tensor token_embd.weight is the first tensor but starts at offset 32")
    }

    @Test func bytesAfterTheLastTensorAreRejected() throws {
        let data = try validFile() + Data(count: 64)
        expectProblem(data, contains: "64 bytes after the last tensor")
    }

    @Test func lowerBlockCountIsRejected() throws {
        var data = try validFile()
        let key = try data.range(of: "llama.block_count")
        data.patch(UInt32(1), at: key.upperBound + 4)  // after the value type
        expectProblem(data, contains: "tensor blk.1.attn_q.weight is for layer 1, but llama.block_count is 1",
                      "layers 0...1")
        // A hardware projection reads the same shape, so it refuses the same file.
        let directory = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("lowered.gguf").path
        try data.write(to: URL(fileURLWithPath: path))
        let message = fileErrorProblem { _ = try ModelLoader.readShape(path: path) }
        #expect(message?.contains("is for layer 1, but llama.block_count is 1") == true, "got: \(message ?? "no error")")
    }

    @Test func vocabOnlyFileStillGivesAShape() throws {
        // No tensors at all (as llama.cpp's ggml-vocab-*.gguf): a projection reads the shape from the metadata.
        var data = try validFile()
        data.patch(UInt64(0), at: 8)
        let directory = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("vocab.gguf").path
        try data.write(to: URL(fileURLWithPath: path))
        #expect(try ModelLoader.readShape(path: path).config.layerCount == 2)
    }

    @Test(arguments: [
        ("outpux.weight", "unexpected tensor outpux.weight: not part of a llama model"),
        ("output_n.bias", "tensor output_n.bias is a bias"),
        ("blk.7.ffn_up7", "tensor blk.7.ffn_up7 is for layer 7, but llama.block_count is 2"),
    ])
    func unknownTensorIsRejected(name: String, problem: String) throws {
        var data = try validFile()
        let at = try entry("output.weight", in: data).type - 4 - 16 - name.utf8.count
        data.replaceSubrange(at..<(at + name.utf8.count), with: Data(name.utf8))
        expectProblem(data, contains: problem)
    }

    @Test func corruptMagicOfAGGUFFileIsReportedAsSuch() throws {
        var data = try validFile()
        data[3] = UInt8(ascii: "X")
        let directory = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("model.gguf").path
        try data.write(to: URL(fileURLWithPath: path))
        let reads: [() throws -> Void] = [{ _ = try ModelLoader.load(path: path) }, { _ = try ModelLoader.readShape(path: path) }]
        for read in reads {
            let message = fileErrorProblem(read)
            #expect(message == #"not a GGUF file: the magic is "GGUX", expected "GGUF""#, "got: \(message ?? "no error")")
        }
    }
}
