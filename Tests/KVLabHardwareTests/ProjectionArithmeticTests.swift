import Testing
import KVLabMethods
@testable import KVLabHardware

/// The projection's arithmetic against hand computation: Llama-3-8B (32 layers, 8 KV heads of
/// 128, groups of 4) at 32,768 tokens on the h100-sxm profile (3.35 TB/s), fp16.
@Suite struct ProjectionArithmeticTests {
    static let context = 32768
    static let bandwidth = 3350e9
    static let kvHeads = 32.0 * 8  // (layer, KV head) pairs

    static func project(policy: String = "full", kv: String = "fp32", sparse: String = "dense",
                        kernel: AttentionKernel = .naive) throws -> Projection {
        Projection(ProjectionSetup(device: try HardwareCatalog.device("h100-sxm"), target: try HardwareCatalog.target("llama-3-8b"),
                                   context: context, eviction: try EvictionMethod(parsing: policy), quant: try KVQuantMethod(parsing: kv),
                                   sparse: try SparseMethod(parsing: sparse), kernel: kernel))
    }

    /// H2O at a 20% budget (heavy 3,276 + recent 3,277 = 6,553 of 32,768 tokens per head):
    /// the KV read shrinks in proportion, and the scores and per-entry scores it must keep cost
    /// their own traffic.
    @Test func h2oAtTwentyPercent() throws {
        let full = try Self.project()
        let h2o = try Self.project(policy: "h2o:heavy=3276,recent=3277")
        let n = 6553.0
        let entry = 128.0 * 2  // one fp16 key (or value)
        #expect(h2o.kv.fullPrecision == Self.kvHeads * n * 2 * entry)
        #expect(full.kv.fullPrecision == Self.kvHeads * 32768 * 2 * entry)
        // Positions (4 B) and H2O's accumulated score (4 B) per kept entry.
        #expect(h2o.kv.policyState == Self.kvHeads * n * 8)
        #expect(h2o.meanKept == n)
        // q·K: keys of every kept entry, the queries, and the group's 4 scores per entry written.
        let qk = Self.kvHeads * n * entry + 32 * 4096 * 2 + Self.kvHeads * 4 * n * 2
        #expect(h2o.decode.op("qk")!.bytes == qk)
        // The score update reads the group's probabilities, and reads and writes the 4-byte scores.
        #expect(h2o.decode.op("policy_state")!.bytes == Self.kvHeads * (4 * n * 2 + 2 * n * 4))
        #expect(full.decode.op("policy_state") == nil)
        // Attention ops are memory-bound: their time is their bytes over the bandwidth.
        let saved = full.decode.seconds - h2o.decode.seconds
        let attention = ["qk", "softmax", "pv", "policy_state", "kv_append"]
        let bytes = { (p: Projection) in attention.compactMap { p.decode.op($0)?.bytes }.reduce(0, +) }
        #expect(abs(saved - (bytes(full) - bytes(h2o)) / Self.bandwidth) < 1e-9)
        #expect(h2o.decode.seconds < full.decode.seconds * 0.85)
    }

    /// kivi 2-bit (groups of 32, residual 128): keys per channel, so a record packs 32 entries'
    /// 128 channels (1,024 B of 2-bit codes) with an fp16 scale and zero per channel (512 B);
    /// values per token, one entry per record (32 B of codes, 4 groups × 4 B).
    @Test func kivi2BitFootprintAndLatency() throws {
        let full = try Self.project()
        let kivi = try Self.project(kv: "kivi:bits=2")
        let keyRecords = ((32768.0 - 128) / 32).rounded(.down)
        let valueRecords = 32768.0 - 128
        let residual = 128.0 * 2 * 128 * 2  // 128 fp16 keys and values
        #expect(kivi.kv.quantizedPayload == Self.kvHeads * (keyRecords * 1024 + valueRecords * 32))
        #expect(kivi.kv.metadata == Self.kvHeads * (keyRecords * 512 + valueRecords * 16))
        #expect(kivi.kv.fullPrecision == Self.kvHeads * residual)
        #expect(kivi.kv.ideal == Self.kvHeads * 32768 * 2 * 128 * 2 / 8)
        // Reading the cache: codes and metadata of every entry, plus the window.
        let keys = Self.kvHeads * (keyRecords * 1536 + 128 * 256)
        let values = Self.kvHeads * (valueRecords * 48 + 128 * 256)
        let queries = 32.0 * 4096 * 2, outputs = queries
        let scores = Self.kvHeads * 4 * 32768 * 2
        #expect(abs(kivi.decode.op("qk")!.bytes - (keys + queries + scores)) < 1)
        #expect(abs(kivi.decode.op("pv")!.bytes - (values + scores + outputs)) < 1)
        // The KV read falls from 4 GiB to about 0.78 GiB; the rest of the step is unchanged.
        let fullKV = Self.kvHeads * 32768 * 2 * 256
        let expected = full.decode.seconds - (fullKV - keys - values) / Self.bandwidth
        #expect(abs(kivi.decode.seconds - expected) < 2e-6, "kivi \(kivi.decode.seconds) s, expected about \(expected) s")
        #expect(kivi.idealDecode.seconds < kivi.decode.seconds)
    }

    /// The tiled kernel writes no scores: decode reads keys, values, queries and outputs only.
    @Test func tiledDecodeMovesNoScores() throws {
        let tiled = try Self.project(kernel: .tiled(sramBytes: 228 * 1024))
        let kv = Self.kvHeads * 32768 * 2 * 256
        #expect(tiled.decode.op("attention")!.bytes == kv + 2 * 32 * 4096 * 2)
        #expect(tiled.decode.op("qk") == nil)
        // Prefill: K/V re-read once per block of B_r = min(⌈M/4d⌉, d) query rows.
        #expect(tiled.tileEntries == (228 * 1024 / 2 + 511) / 512)
        let naive = try Self.project()
        #expect(tiled.prefill.seconds < naive.prefill.seconds)
    }

    /// Quest reads its page bounds and the chosen pages; block-retrieval fetches chosen blocks
    /// from host DRAM once past blocks outgrow the LRU.
    @Test func sparseModesReadWhatTheySelect() throws {
        let quest = try Self.project(sparse: "quest:page=16,budget=128")
        let pages = 32768.0 / 16
        #expect(quest.decode.op("sparse_select")!.bytes == Self.kvHeads * pages * 2 * 128 * 2)
        #expect(quest.decode.op("pv")!.bytes == Self.kvHeads * (144 * 256 + 4 * 144 * 2) + 32 * 4096 * 2)
        let retrieval = try Self.project(sparse: "block-retrieval:block=16,reps=4,top=4,local=64,sinks=4,lru=8")
        let fetched = Self.kvHeads * 4 * 16 * 512
        #expect(retrieval.decode.hostBytes == fetched)
        #expect(retrieval.decode.op("qk")!.bound == .host)
        let past = ((32768.0 - 68) / 16).rounded(.down) * 16
        #expect(abs(retrieval.kv.hostResident - Self.kvHeads * (past - 8 * 16) * 512) < 1)
    }

    /// Weights in a ggml block type cost their block bytes (q8_0: 34 per 32 weights, q4_0: 18);
    /// norms stay in the float format. A decode step reads each once, whatever the batch.
    @Test func weightBytesFollowTheBlockFormat() throws {
        let target = try HardwareCatalog.target("llama-2-7b")
        let norms = 2.0 * 4096 * 32 + 4096
        let matrices = Double(target.parameterCount) - norms
        for (type, bytesPer32) in [(WeightType.q8_0, 34.0), (.q4_0, 18), (.f16, 64)] {
            let setup = ProjectionSetup(device: try HardwareCatalog.device("h100-sxm"), target: target, weights: type, context: 1024)
            #expect(Projection(setup).capacity.weights == matrices * bytesPer32 / 32 + norms * 2)
        }
        var batched = ProjectionSetup(device: try HardwareCatalog.device("h100-sxm"), target: target, context: 1024)
        let one = Projection(batched).decode.op("gate_proj")!
        batched.batch = 8
        let eight = Projection(batched).decode.op("gate_proj")!
        #expect(eight.bytes - one.bytes == 7 * 32 * (4096 + 11008) * 2)
        #expect(eight.flops == 8 * one.flops)
    }

    /// Batches share the weight reads; capacity is the largest batch that fits, exactly.
    @Test func capacityIsExact() throws {
        let p = try Self.project()
        let c = p.capacity
        let perSequence = c.kvPerSequence + c.activationsPerSequence
        #expect(c.weights + Double(c.maxBatch) * perSequence <= c.deviceMemory)
        #expect(c.weights + Double(c.maxBatch + 1) * perSequence > c.deviceMemory)
        let longest = try #require(c.maxContext)
        func used(_ context: Int) throws -> Double {
            let q = Projection(ProjectionSetup(device: p.setup.device, target: p.setup.target, context: context)).capacity
            return q.weights + q.kvPerSequence + q.activationsPerSequence
        }
        #expect(try used(longest) <= c.deviceMemory)
        #expect(try used(longest + 1) > c.deviceMemory)
        // A budgeted method bounds the KV, so any context fits.
        #expect(try Self.project(policy: "window:window=1024").capacity.maxContext == nil)
    }
}
