import Foundation
@testable import KVLabEngine
@testable import KVLabFoundation
import Testing

/// kvlab's Jinja interpreter against transformers' `apply_chat_template` (jinja2) on every chat
/// template in llama.cpp's models/templates, for several conversations.
@Suite struct ChatTemplateTests {
    typealias Message = ChatTemplate.Message

    static let conversations: [(messages: [Message], addGenerationPrompt: Bool)] = [
        ([Message(role: "system", content: "You are a helpful assistant."), Message(role: "user", content: "Hello! 🦙 Say \"hi\".")], true),
        ([Message(role: "user", content: "What is 2+2?")], true),
        ([Message(role: "user", content: "Hi"), Message(role: "assistant", content: "Hello, how can I help?"),
          Message(role: "user", content: "  Tell me a joke.\n")], true),
        ([Message(role: "system", content: "Be brief."), Message(role: "user", content: "Hi"), Message(role: "assistant", content: "Hey.")], false),
    ]

    /// Templates of the families kvlab runs: each must render exactly as transformers does.
    static let required = [
        "meta-llama-Llama-3.1-8B-Instruct", "meta-llama-Llama-3.2-3B-Instruct", "meta-llama-Llama-3.3-70B-Instruct",
        "Qwen-Qwen2.5-7B-Instruct", "Qwen-Qwen3-0.6B", "Qwen-QwQ-32B", "microsoft-Phi-3.5-mini-instruct",
        "google-gemma-2-2b-it", "mistralai-Mistral-Nemo-Instruct-2407", "HuggingFaceTB-SmolLM3-3B",
        "deepseek-ai-DeepSeek-R1-Distill-Llama-8B", "deepseek-ai-DeepSeek-R1-Distill-Qwen-32B",
    ]

    @Test func rendersLikeTransformersOnLlamaCppTemplates() throws {
        guard let home = LlamaCpp.home else { print(LlamaCpp.skipMessage); return }
        guard Python.hasTransformers else { print(Python.transformersSkipMessage); return }
        let folder = "\(home)/models/templates"
        let files = try FileManager.default.contentsOfDirectory(atPath: folder).filter { $0.hasSuffix(".jinja") }.sorted()
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("kvlab-chat-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let conversationsFile = directory.appendingPathComponent("conversations.json")
        let json = JSONValue.array(Self.conversations.map { conversation in
            .object([("messages", .array(conversation.messages.map { .object([("role", .string($0.role)), ("content", .string($0.content))]) })),
                     ("add_generation_prompt", .bool(conversation.addGenerationPrompt))])
        })
        try Data(json.compactText().utf8).write(to: conversationsFile)
        let output = try Python.output(Fixtures.packageRoot.appendingPathComponent("scripts/chat_template_check.py").path,
                                       [conversationsFile.path] + files.map { "\(folder)/\($0)" })
        let expected = try JSONValue.parse(Data(output.utf8))
        var identical = 0, bothRefuse = 0, unsupported: [String] = []
        for file in files {
            let name = String(file.dropLast(6))
            let references = try #require(expected["\(folder)/\(file)"]?.array)
            let template: ChatTemplate
            do {
                template = try ChatTemplate(try String(contentsOfFile: "\(folder)/\(file)", encoding: .utf8))
            } catch let error as ChatTemplateError {
                #expect(!Self.required.contains(name), "\(name): \(error)")
                #expect(!error.description.contains("\n"))
                unsupported.append("\(name): \(error)")
                continue
            }
            for (conversation, reference) in zip(Self.conversations, references) {
                let rendered = Result {
                    try template.render(messages: conversation.messages, addGenerationPrompt: conversation.addGenerationPrompt,
                                        specialTokens: ["bos_token": "<s>", "eos_token": "</s>"])
                }
                switch (rendered, reference.string) {
                case (.success(let text), let want?):
                    #expect(text == want, "\(name) \(conversation.messages.map(\.role))")
                    if text == want { identical += 1 }
                case (.failure(let error), let want?):
                    // Only a construct kvlab names as unsupported may stop a rendering transformers makes.
                    let message = "\(error)"
                    #expect(!Self.required.contains(name) && message.contains("unsupported"), "\(name): \(message) (transformers: \(want.prefix(80)))")
                    unsupported.append("\(name): \(message)")
                case (.success(let text), nil):
                    Issue.record("\(name): transformers failed (\(reference["error"]?.string ?? "")) but kvlab rendered \(text.prefix(80))")
                case (.failure, nil):
                    bothRefuse += 1
                }
            }
        }
        print("chat templates: \(identical) renderings identical to transformers, \(bothRefuse) refused by both, "
              + "\(unsupported.count) templates or renderings unsupported:\n  "
              + unsupported.joined(separator: "\n  "))
    }

    @Test func unsupportedConstructsAreNamedInOneLine() throws {
        // An unknown filter in a branch the rendering does not reach is no error, as in jinja2.
        #expect(try ChatTemplate("{% if false %}{{ x | from_json }}{% endif %}ok").render(messages: [], addGenerationPrompt: false) == "ok")
        for (source, construct) in [("{% include 'x' %}", "{% include %}"), ("{{ x | wordwrap }}", "\"wordwrap\""),
                                    ("{% if x is divisible %}{% endif %}", "\"is divisible\""), ("{% for x in y %}", "endfor")] {
            let error = #expect(throws: ChatTemplateError.self) {
                try ChatTemplate(source).render(messages: [Message(role: "user", content: "hi")], addGenerationPrompt: true)
            }
            #expect(error?.description.contains(construct) == true, "\(error?.description ?? "")")
        }
    }

    @Test func whitespaceControlFollowsJinja2() throws {
        let template = try ChatTemplate("{% for m in messages %}\n  {%- if m.role == 'user' %}\n[{{ m.content | trim }}]\n  {% endif %}\n{% endfor %}\n")
        let text = try template.render(messages: [Message(role: "user", content: " a "), Message(role: "user", content: "b")],
                                       addGenerationPrompt: false)
        #expect(text == "[a]\n[b]\n")
    }
}
