import Foundation
@testable import KVLabEngine
@testable import KVLabMethods
import Testing

/// kvpress's wrapper, composition and budget presses on hand-built heads (kvpress itself is the
/// oracle in `KVPressCLITests`, through scripts/kvpress_check.py).
@Suite struct KVPressWrapperTests {
    typealias T = KVPressMethodTests

    /// Two heads of 12 entries with the given key norms (and keys, for keydiff), prompt end 12:
    /// `finishPrefill` with the entries' vectors.
    static func finish(_ policy: any EvictionPolicy, norms: [[Float]], scores: [[Float]]? = nil, keys: [[[Float]]]? = nil) -> [[Int]] {
        let heads = norms.indices.map { _ in HandHead(groupSize: 2) }
        for (h, head) in heads.enumerated() {
            for i in norms[h].indices {
                head.append(norm: norms[h][i])
                head.scores[i] = scores?[h][i] ?? 0
            }
        }
        let buffer = UnsafeMutableBufferPointer<HeadEntries>.allocate(capacity: heads.count)
        defer { buffer.deallocate() }
        for (h, head) in heads.enumerated() { (buffer.baseAddress! + h).initialize(to: head.entries) }
        let vectors = T.GivenVectors(keys: keys ?? norms.map { $0.map { [$0, 0] } })
        policy.finishPrefill(layer: 0, heads: buffer, promptEnd: norms[0].count, vectors: vectors)
        return buffer.map { e in (0..<e.count).map { Int(e.positions[$0]) } }
    }

    static let falling: [[Float]] = [[12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1], [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]]

    @Test func wrappersParseWithKvpressNamesAndPrintCanonically() throws {
        #expect(try EvictionMethod(parsing: "kvpress:chunk,ratio=0.25").description == "kvpress:chunk,scorer=knorm,chunk_length=1024,ratio=0.25")
        #expect(try EvictionMethod(parsing: "kvpress:block,scorer=keydiff,budget=16").description == "kvpress:block,scorer=keydiff,block_size=128,budget=16")
        #expect(try EvictionMethod(parsing: "kvpress:perlayer,scorer=knorm,compression_ratios=0.25/0.5").description
                == "kvpress:perlayer,scorer=knorm,compression_ratios=0.25/0.5")
        #expect(try EvictionMethod(parsing: "kvpress:composed,window_size=16").description
                == "kvpress:composed,scorer=snapkv,window_size=16,kernel_size=5,then_ratio=0.5,ratio=0.5,then=knorm")
        #expect(try EvictionMethod(parsing: "kvpress:prefilldecoding,scorer=tova,ratio=0.25,target_size=64").description
                == "kvpress:prefilldecoding,scorer=tova,compression_interval=512,target_size=64,ratio=0.25,decoding_scorer=knorm")
        #expect(try EvictionMethod(parsing: "kvpress:compressionratiodecoding").description
                == "kvpress:compressionratiodecoding,scorer=knorm,target_compression_ratio=0.5,compression_interval=512")
        #expect(try EvictionMethod(parsing: "kvpress:finch,window_size=8").description
                == "kvpress:finch,window_size=8,chunk_length=0,normalize_scores=true,rerotate_keys=true,ratio=0.5")
        #expect(try EvictionMethod(parsing: "kvpress:simlayerkv,lazy_threshold=0.8").description
                == "kvpress:simlayerkv,lazy_threshold=0.8,n_last=1,n_recent=1024,n_initial=4")
        #expect(try EvictionMethod(parsing: "kvpress:dms,threshold=-2").description
                == "kvpress:dms,scorer=knorm,threshold=-2,sliding_window_size=128,decoding=false")
        #expect(try EvictionMethod(parsing: "kvpress:keyrerotation,scorer=knorm").rerotatesAtPromptEnd)
        #expect(try !EvictionMethod(parsing: "kvpress:finch,rerotate_keys=false").rerotatesAtPromptEnd)
        #expect(try EvictionMethod(parsing: "kvpress:dms,decoding=true").actsOnlyAtPromptEnd == false)
        #expect(try EvictionMethod(parsing: "kvpress:chunk").actsOnlyAtPromptEnd)
    }

    @Test func everyReRunsAPromptEndMethod() throws {
        let method = try EvictionMethod(parsing: "snapkv:budget=32,observation=8+every:steps=16")
        #expect(method.description == "snapkv:budget=32,observation=8,pool=7+every:steps=16")
        #expect(method.every == 16)
        #expect(!method.actsOnlyAtPromptEnd)
        #expect(try EvictionMethod(parsing: "kvpress:knorm+every").description == "kvpress:knorm,ratio=0.5+every:steps=64")
        #expect(throws: MethodSpecError("every re-runs a method that acts at a prompt's end; h2o already acts during decode")) {
            try EvictionMethod(parsing: "h2o+every:steps=8")
        }
    }

    @Test(arguments: [
        ("kvpress:chunk,scorer=snapkv", "kvpress:chunk: scorer=snapkv is not one of knorm, keydiff"),
        ("kvpress:perlayer", "kvpress:perlayer: give compression_ratios=…"),
        ("kvpress:perlayer,compression_ratios=0.5/1", "kvpress:perlayer: compression_ratios=0.5/1 is not ratios (each at least 0 and below 1) separated by '/'"),
        ("kvpress:perlayer,compression_ratios=0.5,ratio=0.5", "kvpress:perlayer: unknown parameter 'ratio' (known: scorer, window_size, kernel_size, compression_ratios)"),
        ("kvpress:entropygatedchunkkv,chunk_length=4,low_entropy_chunk_length=4",
         "kvpress:entropygatedchunkkv: low_entropy_chunk_length must be below chunk_length"),
        ("kvpress:simlayerkv,n_recent=1", "kvpress:simlayerkv: n_recent must be above n_last (kvpress keeps the last n_recent − n_last entries)"),
        ("kvpress:finch,window_size=16,chunk_length=32,ratio=0.5", "kvpress:finch: chunk_length must exceed window_size / (1 − ratio) (kvpress asserts it)"),
        ("kvpress:lukv,curve=/nonexistent/curve.npy", "kvpress:lukv: curve /nonexistent/curve.npy: cannot be read"),
        ("kvpress:keyrerotation,scorer=knorm+think", "kvpress:keyrerotation re-rotates keys, which think's pruned channels cannot be; use one of them"),
    ])
    func badWrappersSayWhat(text: String, message: String) {
        #expect(throws: MethodSpecError(message)) { try EvictionMethod(parsing: text) }
    }

    @Test func chunkKeepsItsShareOfEveryChunk() throws {
        // Chunks of 5, 5 and 2 at ratio 0.5: ⌊2.5⌋ = 2, 2 and 1 smallest norms of each.
        let kept = Self.finish(try T.policy("kvpress:chunk,chunk_length=5,ratio=0.5"), norms: Self.falling)
        #expect(kept == [[3, 4, 8, 9, 11], [0, 1, 5, 6, 10]])
    }

    @Test func blockRescoresTheKeptWithEachBlock() throws {
        // knorm scores each entry alone: block by block ends where one global top-k does.
        let block = Self.finish(try T.policy("kvpress:block,block_size=3,budget=4"), norms: Self.falling)
        #expect(block == Self.finish(try T.policy("kvpress:knorm,budget=4"), norms: Self.falling))
        // keydiff's anchor is the mean direction of what it scores: four x keys among eight y keys are the rare
        // ones of the whole, but blocks of 2 against the kept 4 see x and then y as the majority in turn.
        let (x, y): ([Float], [Float]) = ([1, 0], [0, 1])
        let keys = Array(repeating: [y, y, y, y, x, x, x, x, y, y, y, y], count: 2)
        #expect(Self.finish(try T.policy("kvpress:keydiff,budget=4"), norms: Self.falling, keys: keys) == [[4, 5, 6, 7], [4, 5, 6, 7]])
        let blocks = Self.finish(try T.policy("kvpress:block,scorer=keydiff,block_size=2,budget=4"), norms: Self.falling, keys: keys)
        #expect(blocks == [[6, 7, 10, 11], [6, 7, 10, 11]])
    }

    @Test func perLayerGivesEachLayerItsRatio() throws {
        let layout = KVLayout(layerCount: 2, kvHeadCount: 2, headDim: 4, groupSize: 2, capacity: 200)
        let method = try EvictionMethod(parsing: "kvpress:perlayer,scorer=knorm,compression_ratios=0.25/0.75")
        guard case .kvpress(let press) = method.kind else { Issue.record("not a kvpress method"); return }
        #expect(T.keptCount(press, layer: 0, of: 200, layout: layout) == 150)
        #expect(T.keptCount(press, layer: 1, of: 200, layout: layout) == 50)
        #expect(throws: MethodSpecError("kvpress:perlayer: compression_ratios has 2 values, the model has 4 layers")) {
            try method.check(layout: T.layout)
        }
    }

    @Test func composedRescoresWhatTheFirstKept() throws {
        // snapkv (window 2, kernel 1) keeps 8: the window 10, 11 and its best six, 0…5; knorm then keeps half of those.
        let scores: [Float] = [9, 9, 9, 9, 9, 9, 1, 1, 1, 1, 0, 0]
        let kept = Self.finish(try T.policy("kvpress:composed,window_size=2,kernel_size=1,budget=8,then=knorm,then_ratio=0.5"),
                               norms: Self.falling, scores: [scores, scores])
        #expect(kept == [[4, 5, 10, 11], [0, 1, 2, 3]])
    }

    @Test func finchWeightsEachQueryByItsPosition() throws {
        guard case .kvpress(let press) = try EvictionMethod(parsing: "kvpress:finch,window_size=4").kind,
              let policy = press.makePolicy(layout: T.layout) as? KVPressPolicy else { Issue.record("not a finch policy"); return }
        #expect(policy.scorer.queryWeight(position: 7) == 7)
        #expect(policy.prefillObservation == 4)
        guard case .kvpress(let plain) = try EvictionMethod(parsing: "kvpress:finch,window_size=4,normalize_scores=false").kind,
              let unweighted = plain.makePolicy(layout: T.layout) as? KVPressPolicy else { Issue.record("not a finch policy"); return }
        #expect(unweighted.scorer.queryWeight(position: 7) == 1)
    }

    @Test func simLayerKVKeepsSinksAndRecentInALazyLayer() throws {
        // One last query (group of 2 per head, 4 query heads): its attention, mean over query heads, is
        // 0.9 on the first entry and the 4 before it; above 0.5 the layer is lazy.
        var lazy = [Float](repeating: 0.05 / 7, count: 12)
        lazy[0] = 0.5
        for i in 7..<11 { lazy[i] = 0.1 }
        let head = lazy.map { $0 * 2 }
        let kept = Self.finish(try T.policy("kvpress:simlayerkv,lazy_threshold=0.5,n_last=1,n_recent=4,n_initial=1"),
                               norms: Self.falling, scores: [head, head])
        #expect(kept == [[0, 9, 10, 11], [0, 9, 10, 11]])
        let busy = Self.finish(try T.policy("kvpress:simlayerkv,lazy_threshold=0.95,n_last=1,n_recent=4,n_initial=1"),
                               norms: Self.falling, scores: [head, head])
        #expect(busy == [Array(0..<12), Array(0..<12)])
    }

    /// A .npy budget curve [99, 1, 2] whose row for ratio r prunes (r − 0.1, r + 0.1) of heads 0 and 1.
    static func curveFile() throws -> String {
        var values: [Float] = []
        for t in 0..<99 {
            let r = Float(t + 1) / 100
            values += [max(0, r - 0.1), min(1, r + 0.1)]
        }
        var header = "{'descr': '<f4', 'fortran_order': False, 'shape': (99, 1, 2), }"
        while (10 + header.count + 1) % 64 != 0 { header += " " }
        header += "\n"
        var data = Data([0x93] + Array("NUMPY".utf8) + [1, 0, UInt8(header.count & 0xff), UInt8(header.count >> 8)])
        data += Data(header.utf8)
        for v in values { withUnsafeBytes(of: v.bitPattern.littleEndian) { data += Data($0) } }
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("lukv-\(UUID().uuidString).npy").path
        FileManager.default.createFile(atPath: path, contents: data)
        return path
    }

    @Test func lukvGivesEachHeadItsCurvesBudget() throws {
        let path = try Self.curveFile()
        defer { try? FileManager.default.removeItem(atPath: path) }
        // Ratio 0.5: heads prune 0.4 and 0.6 of 12, keeping 7.2 and 4.8: 7 and 5 (the larger fraction rounds up);
        // sink 1 and window 1 always stay, then the smallest norms.
        let kept = Self.finish(try T.policy("kvpress:lukv,scorer=knorm,curve=\(path),ratio=0.5,sink=1,window=1"), norms: Self.falling)
        #expect(kept == [[0, 7, 8, 9, 10, 11, 6].sorted(), [0, 1, 2, 3, 11]])
        #expect(throws: MethodSpecError("kvpress:lukv: curve \(path) is for 1 layers × 2 KV heads, the model has 4 × 2")) {
            try EvictionMethod(parsing: "kvpress:lukv,curve=\(path)").check(layout: T.layout)
        }
    }

    @Test func entropyGateTrimsSpikyImportantChunks() throws {
        // Both heads' −norms summed, chunks of 4, budget ⌊12 · 0.75⌋ = 9. Chunk 0 is one small key among large
        // ones (spiky: entropy 0), chunks 1 and 2 alternate (entropy 0.5); means −12.5, −4.5, −18.5.
        let norm: [Float] = [1, 8, 8, 8, 2, 2.5, 2, 2.5, 9, 9.5, 9, 9.5]
        let kept = Self.finish(try T.policy("kvpress:entropygatedchunkkv,chunk_length=4,low_entropy_chunk_length=2,ratio=0.25"),
                               norms: [norm, norm])
        // Chunk 1 whole; chunk 0 is at the median score with entropy below the median: only its best 2 (0 and
        // the newest of the tied 8s); chunk 2 gets the last 3 (8, 10, then the newest of the tied 9.5s).
        #expect(kept == [[0, 3, 4, 5, 6, 7, 8, 10, 11], [0, 3, 4, 5, 6, 7, 8, 10, 11]])
    }

    @Test func dmsEvictsLowScoresLeavingTheWindow() throws {
        // knorm's score is −norm: below −6.5 means a norm above 6.5. Window 3: 9…11 stay whatever they score.
        let policy = try T.policy("kvpress:dms,threshold=-6.5,sliding_window_size=3,decoding=true")
        let kept = Self.finish(policy, norms: Self.falling)
        #expect(kept == [[6, 7, 8, 9, 10, 11], [0, 1, 2, 3, 4, 5, 9, 10, 11]])
        // During decode each step's entry is scored alone and judged `window` steps later.
        let head = HandHead()
        let vectors = T.GivenVectors(keys: [Array(repeating: [0, 0], count: 64)])
        let single = try EvictionMethod(parsing: "kvpress:dms,threshold=-6.5,sliding_window_size=2,decoding=true")
            .makePolicy(layout: KVLayout(layerCount: 1, kvHeadCount: 1, headDim: 2, groupSize: 1, capacity: 64))
        for norm: Float in [9, 1, 9, 1, 1, 1] {
            head.append(norm: norm)
            head.run { single.afterAttention(layer: 0, heads: $0, vectors: vectors) }
        }
        #expect(head.kept == [1, 3, 4, 5])
    }

    @Test func compressionRatioDecodingTargetsAShareOfTheTokensSeen() {
        let decoding = KVPressDecoding(interval: 8, targetSize: 1, targetRatio: 0.75)
        #expect(decoding.target(seen: 208) == 52)
        #expect(decoding.target(seen: 2) == 1)
        #expect(KVPressDecoding(interval: 8, targetSize: 100).target(seen: 500) == 100)
    }
}
