import Testing

/// KVLAB_KERNELS picks the kernels' vector path at run time in one binary: every path this CPU
/// runs generates the same greedy text, and a bad name is a one-line error.
@Suite struct KernelPathCLITests {
    static let arguments = ["generate", "-n", "12", "--prompt", "ROMEO:", "--weights", "q4_K"]

    @Test func everyPathGeneratesTheSameText() throws {
        let chosen = try CLITests.run(Self.arguments)
        #expect(chosen.status == 0, "\(chosen.stderr)")
        var ran = 0
        for path in ["portable", "avx2", "avx512-vnni"] {
            let result = try CLITests.run(Self.arguments, environment: ["KVLAB_KERNELS": path])
            if result.stderr == "Error: KVLAB_KERNELS=\(path): this CPU lacks that path's instructions\n" {
                #expect(result.status != 0)
                continue
            }
            #expect(result.status == 0, "\(path): \(result.stderr)")
            #expect(result.stdout == chosen.stdout, "\(path)")
            ran += 1
        }
        #expect(ran >= 1)
    }

    @Test func unknownPathIsOneLine() throws {
        let result = try CLITests.run(Self.arguments, environment: ["KVLAB_KERNELS": "sse9"])
        #expect(result.status != 0)
        #expect(result.stderr == "Error: KVLAB_KERNELS=sse9: not a kernel path (portable, avx2, avx512-vnni)\n")
    }
}
