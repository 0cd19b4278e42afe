import Foundation
@testable import KVLabEngine
@testable import KVLabFoundation
import KVLabMethods
@testable import KVLabRun
import Testing

/// Chat prompts from a model's own template, and the template's way through the file formats.
@Suite struct ChatPromptTests {
    /// A Llama-3-style template that writes BOS itself.
    static let template = """
        {{- bos_token }}{% for m in messages %}<|pad|>{{ m.role }}
        {{ m.content | trim }}<|end_of_text|>{% endfor %}{% if add_generation_prompt %}<|pad|>assistant
        {% endif %}
        """

    static func instruct() throws -> LoadedModel {
        var spec = TinyModel.byteLevelSpec()
        spec.chatTemplate = template
        return try TinyModel.make(tokenizer: spec)
    }

    @Test func chatPromptRendersTheUserTurnAfterTheSystemTurn() throws {
        let text = try Self.instruct().chatPrompt(user: " the hat ", system: "be brief")
        #expect(text == "<|begin_of_text|><|pad|>system\nbe brief<|end_of_text|><|pad|>user\nthe hat<|end_of_text|><|pad|>assistant\n")
    }

    @Test func aTemplateThatWritesBOSGetsNoSecondOne() throws {
        let model = try Self.instruct()
        let run = try LiveRun(model: model, settings: try LiveRunTests.settings())
        let submission = try run.submit(prompt: try model.chatPrompt(user: "the hat"))
        #expect(submission.tokens.first == 297)
        #expect(submission.tokens.dropFirst().first != 297)
        #expect(submission.tokens.filter { $0 == 299 }.count == 2)
    }

    /// kvpress's KVzip wraps its repeat request in the user turn: a template kvlab cannot render
    /// stops the press in one line instead of feeding the request bare.
    @Test func kvzipSplitsTheUserTurnOrStopsOnATemplateItCannotRender() throws {
        let turn = try #require(try Self.instruct().promptTexts.userTurn)
        #expect(turn.prefix == "<|begin_of_text|><|pad|>user\n" && turn.suffix == "<|end_of_text|><|pad|>assistant\n")
        var spec = TinyModel.byteLevelSpec()
        spec.chatTemplate = "{{ messages | from_json }}"
        let model = try TinyModel.make(tokenizer: spec)
        let texts = model.promptTexts
        #expect(texts.userTurn == nil && texts.problem?.contains("from_json") == true)
        let method = try EvictionMethod(parsing: "kvpress:kvzip,ratio=0.5")
        let engine = InferenceEngine(weights: model.weights, cache: PagedKVCache(layout: KVLayout(config: model.config), eviction: method))
        engine.promptTexts = texts
        let error = #expect(throws: EngineError.self) { try engine.prefill(model.tokenizer.encode("the hat and the cat")) }
        #expect(error?.description.contains("from_json") == true && error?.description.contains("\n") == false)
    }

    @Test func aModelWithoutATemplateIsRefusedInOneLine() throws {
        let error = #expect(throws: ChatTemplateError.self) { try TinyModel.make().chatPrompt(user: "hi") }
        #expect(error?.description.contains("no chat template") == true)
        #expect(error?.description.contains("\n") == false)
    }

    @Test(arguments: [ModelFormat.gguf, .safetensors])
    func theTemplateAndTokenizerFlagsSurviveConversion(_ format: ModelFormat) throws {
        var spec = TinyModel.sentencePieceSpec()
        spec.chatTemplate = Self.template
        spec.addSpacePrefix = false
        let model = try TinyModel.make(tokenizer: spec)
        let directory = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent(format == .gguf ? "model.gguf" : "model").path
        try ModelLoader.write(model, to: path, as: format)
        let loaded = try ModelLoader.load(path: path)
        #expect(loaded.chatTemplate == Self.template)
        #expect(loaded.tokenizer.spec.addSpacePrefix == false)
        #expect(loaded.tokenizer.encode("the hat") == model.tokenizer.encode("the hat"))
        #expect(model.tokenizer.encode("the hat") != (try TinyModel.sentencePieceSpec().makeTokenizer()).encode("the hat"))
    }

    @Test func tokenizerConfigTemplatesAndTheJinjaFileAreRead() throws {
        let json = try HFTokenizer.tokenizerJSON(TinyModel.byteLevelSpec())
        func spec(_ config: String, file: String? = nil) throws -> TokenizerSpec {
            try HFTokenizer.spec(tokenizer: json, tokenizerConfig: try JSONValue.parse(Data(config.utf8)), modelConfig: nil,
                                 chatTemplateFile: file)
        }
        #expect(try spec(#"{"chat_template": "A"}"#).chatTemplate == "A")
        #expect(try spec(#"{"chat_template": [{"name": "tool_use", "template": "T"}, {"name": "default", "template": "D"}]}"#).chatTemplate == "D")
        #expect(try spec(#"{"chat_template": "A"}"#, file: "J").chatTemplate == "J")
        #expect(try spec("{}").chatTemplate == nil)
        #expect(throws: FormatError.self) { try spec(#"{"chat_template": [{"name": "rag", "template": "R"}]}"#) }
    }

    @Test func specialTokensStripTheWhitespaceTheyAreMarkedTo() throws {
        var spec = TinyModel.byteLevelSpec()
        spec.stripsRight = [299]
        spec.stripsLeft = [298]
        let tokenizer = try spec.makeTokenizer()
        #expect(tokenizer.encode("<|pad|>\n the  \n<|end_of_text|>") == tokenizer.encode("<|pad|>the<|end_of_text|>"))
    }
}
