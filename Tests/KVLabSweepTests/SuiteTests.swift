import Foundation
import Testing
import KVLabRun
@testable import KVLabSweep

/// The long-context suite: RULER's generation (deterministic, fitted to lengths in tokens) and
/// scoring (string match on hand-made answers), and suite files' errors.
@Suite struct SuiteTests {
    static let model = try! EmbeddedModel.load()
    static let essay = (0..<80).map { "Line \($0) of the essay: the quick brown fox jumps over the lazy dog." }.joined(separator: "\n")

    static func spec(_ yaml: String) throws -> SuiteSpec { try SuiteSpec(yaml: yaml, source: "test.yaml") }

    static let mixed = """
        name: mixed
        seed: 7
        lengths: [320, 384]
        depths: [0.0, 1.0]
        tasks:
          - {name: single, type: niah, haystack: repeat, tokens: 8}
          - {name: essay4, type: niah, haystack: essay, keys: 2, values: 2, queries: 2, tokens: 8}
          - {name: distract, type: niah, haystack: needle, key: uuids, value: names, tokens: 8}
          - {name: vt, type: vt, hops: 3, tokens: 8}
          - {name: cwe, type: cwe, common: 3, tokens: 8}
        """

    /// The mixed suite's samples, generated once for the tests that read them.
    static let samples = Result { try SuiteGenerator.samples(try spec(mixed), tokenizer: model.tokenizer, context: 1024, essay: essay) }

    @Test func sameSeedSameBytesOtherSeedOtherSamples() throws {
        let spec = try Self.spec(Self.mixed)
        let a = try Self.samples.get()
        let b = try SuiteGenerator.samples(spec, tokenizer: Self.model.tokenizer, context: 1024, essay: Self.essay)
        #expect(try SuiteGenerator.jsonLines(a) == SuiteGenerator.jsonLines(b))
        // 5 tasks × 2 lengths × 2 depths × 1 sample.
        #expect(a.count == 20)
        // Another seed, other samples; another task before this one leaves its samples as they were.
        var other = spec
        other.tasks = [spec.tasks[0]]
        other.seed = 8
        let c = try SuiteGenerator.samples(other, tokenizer: Self.model.tokenizer, context: 1024, essay: Self.essay)
        #expect(c.map(\.input) != a.filter { $0.task == "single" }.map(\.input))
        var more = spec
        var extra = CommonWordsTask()
        extra.common = 2
        extra.tokens = 8
        more.tasks = [SuiteTask(name: "extra", kind: .commonWords(extra)), spec.tasks[0]]
        let d = try SuiteGenerator.samples(more, tokenizer: Self.model.tokenizer, context: 1024, essay: Self.essay)
        #expect(d.filter { $0.task != "extra" }.map(\.input) == a.filter { $0.task == "single" }.map(\.input))
    }

    @Test func samplesFillTheirLengthAndHoldTheirAnswers() throws {
        let samples = try Self.samples.get()
        for s in samples {
            let used = SuiteGenerator.promptTokens(s.prompt, tokenizer: Self.model.tokenizer).count + s.tokensToGenerate
            #expect(used == s.promptTokens + s.tokensToGenerate)
            #expect(used <= s.length, "\(s.task) \(s.length): \(used)")
            // One more haystack unit would not have fitted: the sample is within a unit of its length.
            #expect(used > s.length - 64, "\(s.task) \(s.length): only \(used)")
            for answer in s.outputs { #expect(s.input.contains(answer), "\(s.task): \(answer) not in the prompt") }
        }
        let cwe = try #require(samples.first { $0.task == "cwe" })
        #expect(cwe.outputs.count == 3)
        for word in cwe.outputs { #expect(cwe.input.components(separatedBy: ". \(word) ").count - 1 + (cwe.input.contains(". \(word)\n") ? 1 : 0) == 6) }
        let vt = try #require(samples.first { $0.task == "vt" })
        #expect(vt.outputs.count == 4 && vt.answerPrefix.contains("4 variables"))
        let multi = try #require(samples.first { $0.task == "essay4" })
        #expect(multi.outputs.count == 4 && multi.depth == nil)
        #expect(multi.input.components(separatedBy: "One of the special magic numbers for").count - 1 == 4)
        // One expected value: RULER's singular wording.
        let single = try #require(samples.first { $0.task == "single" })
        #expect(single.input.hasPrefix("A special magic number is hidden") && single.answerPrefix.hasSuffix("mentioned in the provided text is"))
    }

    @Test func depthPlacesTheSingleNeedle() throws {
        let samples = try Self.samples.get()
        for s in samples where s.task == "single" {
            let lines = s.input.components(separatedBy: "\n")
            let needle = try #require(lines.firstIndex { $0.hasPrefix("One of the special magic") })
            // The template's first line, then the context, then the question.
            #expect(s.depth == 0 ? needle == 1 : needle == lines.count - 2, "depth \(String(describing: s.depth)): line \(needle) of \(lines.count)")
        }
    }

    @Test func stringMatchAllOnHandMadeAnswers() {
        #expect(SuiteScoring.stringMatchAll(" 1234567 and 7654321.", ["1234567", "7654321"]) == 1)
        #expect(SuiteScoring.stringMatchAll("only 1234567", ["1234567", "7654321"]) == 0.5)
        #expect(SuiteScoring.stringMatchAll("Bright-Lake\u{1}", ["bright-lake"]) == 1)
        #expect(SuiteScoring.stringMatchAll("", ["x"]) == 0)
        #expect(SuiteScoring.postprocess("\u{0}\tanswer\u{1f} \n") == "answer")
        // Split across a control character, a reference is not found.
        #expect(SuiteScoring.stringMatchAll("12\u{1}34", ["1234"]) == 0)
    }

    @Test func scoresAreMeansOfTaskMeans() {
        func sample(_ index: Int, _ task: String, _ length: Int, _ outputs: [String]) -> SuiteSample {
            SuiteSample(index: index, task: task, length: length, depth: nil, input: "", answerPrefix: "", outputs: outputs,
                        tokensToGenerate: 1, promptTokens: 1)
        }
        let samples = [sample(0, "a", 100, ["x"]), sample(1, "a", 200, ["x"]), sample(2, "a", 200, ["x"]),
                       sample(3, "b", 100, ["p", "q"]), sample(4, "b", 200, ["p", "q"])]
        let score = SuiteScoring.score(suite: "s", samples: samples, predictions: ["x", "no", "x", "p q", "q"], compressionRatio: 0.5)
        #expect(score.tasks.map(\.name) == ["a", "b"])
        #expect(abs(score.tasks[0].score - 200.0 / 3) < 1e-9)
        #expect(score.tasks[1].score == 75)
        #expect(abs(score.score - (200.0 / 3 + 75) / 2) < 1e-9)
        // Length 100: a 100, b 100; length 200: a 50, b 50.
        #expect(score.lengths.map(\.name) == ["100", "200"])
        #expect(score.lengths.map(\.score) == [100, 50])
        #expect(score.outcomes.map(\.score) == [100, 0, 100, 100, 50])
    }

    @Test(arguments: [
        ("tasks: [", "is not YAML"),
        ("- a\n- b", "is not a YAML mapping"),
        ("lengths: [64]\ntasks: []", "'tasks' must be a non-empty list"),
        ("lengths: [64]\ncolour: red\ntasks: [{name: a, type: vt}]", "unknown key 'colour'"),
        ("tasks: [{name: a, type: vt}]", "'lengths' must list at least one length"),
        ("lengths: [1.5]\ntasks: [{name: a, type: vt}]", "length 1.5 must be"),
        ("lengths: [64]\ndepths: [2]\ntasks: [{name: a, type: vt}]", "'depths' must list numbers from 0 to 1"),
        ("lengths: [64]\ntasks: [{name: a, type: sorting}]", "type must be niah, vt or cwe, got 'sorting'"),
        ("lengths: [64]\ntasks: [{name: a, type: vt, keys: 2}]", "task 'a': unknown parameter 'keys'"),
        ("lengths: [64]\ntasks: [{name: a, type: niah, haystack: sand}]", "haystack must be repeat, essay or needle"),
        ("lengths: [64]\ntasks: [{name: a, type: niah, needle: no value}]", "the needle must contain {value}"),
        ("lengths: [64]\ntasks: [{name: a, type: cwe, common_frequency: 2, uncommon_frequency: 3}]", "uncommon_frequency must be below"),
        ("lengths: [64]\ntasks: [{name: a, type: vt}, {name: a, type: cwe}]", "task 'a' appears twice"),
        ("lengths: [64]\nsamples: 0\ntasks: [{name: a, type: vt}]", "'samples' must be a whole number from 1"),
    ])
    func badSuiteFilesAreOneLineErrors(_ yaml: String, _ problem: String) {
        do {
            _ = try Self.spec(yaml)
            Issue.record("accepted: \(yaml)")
        } catch {
            let text = "\(error)"
            #expect(text.hasPrefix("test.yaml: ") && text.contains(problem) && !text.contains("\n"), "\(text)")
        }
    }

    @Test func suitesThatCannotBeGeneratedSayWhy() throws {
        let tooLong = try Self.spec("lengths: [2048]\ntasks: [{name: a, type: vt}]")
        #expect(throws: SweepError.self) { try SuiteGenerator.samples(tooLong, tokenizer: Self.model.tokenizer, context: 1024, essay: "") }
        let tooShort = try Self.spec("lengths: [20]\ntasks: [{name: a, type: vt, tokens: 8}]")
        do {
            _ = try SuiteGenerator.samples(tooShort, tokenizer: Self.model.tokenizer, context: 1024, essay: "")
            Issue.record("a 20-token variable tracking sample was generated")
        } catch { #expect("\(error)".contains("does not fit in 20 tokens")) }
        let noEssay = try Self.spec("lengths: [64]\ntasks: [{name: a, type: niah, haystack: essay}]")
        #expect(throws: SweepError.self) { try SuiteGenerator.samples(noEssay, tokenizer: Self.model.tokenizer, context: 1024, essay: " \n") }
        #expect(throws: SweepError.self) { try SuiteSpec.load("no-such-suite") }
        // The built-in suites parse.
        for name in SuiteSpec.builtIn.keys { _ = try SuiteSpec.load(name) }
    }
}
