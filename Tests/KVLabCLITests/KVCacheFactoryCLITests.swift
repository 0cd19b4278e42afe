import Foundation
import Testing

/// kvlab's `headkv` and `cam` against KVCache-Factory itself (scripts/kvcache_factory_check.py): its source is not
/// on PyPI, so the test needs a copy in .cache/kvcache-factory (github:Zefan-Cai/KVCache-Factory) and kvpress's venv
/// for torch and transformers.
@Suite struct KVCacheFactoryCLITests {
    static let source = CLITests.packageRoot.appendingPathComponent(".cache/kvcache-factory").path

    /// Why the oracle cannot run here; nil when it can.
    static let missing: String? = {
        if KVPressCLITests.venvPython == nil { return "no .cache/kvpress-venv (scripts/kvpress-venv creates it)" }
        guard FileManager.default.fileExists(atPath: source + "/pyramidkv/pyramidkv_utils.py") else {
            return "no KVCache-Factory source in .cache/kvcache-factory (a copy of github:Zefan-Cai/KVCache-Factory)"
        }
        return nil
    }()

    static let available: Bool = {
        if let missing { print("KVCacheFactoryCLITests: KVCache-Factory oracle skipped: \(missing)") }
        return missing == nil
    }()

    /// The script's default cases (CAM with init_CAM's window 32 and start 0.1, without merges, with window 8;
    /// HeadKV with run_longbench's settings and with head_beta 2) on the tiny Llama, Qwen3 and Gemma 3 at
    /// budgets 50, 100 and 150 of the 200-token prompt: every (layer, KV head) keeps KVCache-Factory's positions
    /// (HeadKV's torch.sort made stable, so that its max-pooled ties go to the older entry, as kvlab's do).
    @Test(.enabled(if: available, "needs .cache/kvcache-factory and .cache/kvpress-venv"))
    func headKVAndCAMKeepKVCacheFactorysSets() throws {
        let (status, text) = try KVPressCLITests.check(["--source", Self.source, "--stable-sort"], script: "kvcache_factory_check.py")
        #expect(status == 0, "\(text)")
        #expect(!text.contains("DIFF"))
        #expect(text.split(separator: "\n").filter { $0.contains("exact") || $0.contains("tie") }.count == 5 * 3 * 3)
    }
}
