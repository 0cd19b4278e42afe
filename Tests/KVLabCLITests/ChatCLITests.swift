import Foundation
import Testing

/// `--chat` and `--system` as a user runs them.
@Suite struct ChatCLITests {
    static let embedded = CLITests.packageRoot.appendingPathComponent("Sources/KVLabRun/Resources/kvlab-shakespeare.gguf").path

    @Test func chatRendersThePromptInTheModelsTemplate() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("kvlab-chat-cli-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        let model = directory.appendingPathComponent("model").path
        let converted = try CLITests.run(["convert", Self.embedded, model, "--to", "safetensors"])
        #expect(converted.status == 0, "\(converted.stderr)")
        // An instruct model's template, saved as newer transformers save it.
        let template = "{{ bos_token }}{% for m in messages %}[{{ m.role }}] {{ m.content }}\n{% endfor %}{% if add_generation_prompt %}[assistant] {% endif %}"
        try Data(template.utf8).write(to: directory.appendingPathComponent("model/chat_template.jinja"))
        let result = try CLITests.run(["generate", "--model", model, "--chat", "--system", "Be brief.", "--prompt", "ROMEO:",
                                       "-n", "2", "--temperature", "0"])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("[system] Be brief.\n[user] ROMEO:\n[assistant] "), "\(result.stdout)")
    }

    @Test func chatNeedsATemplateAndSystemNeedsChat() throws {
        let noTemplate = try CLITests.run(["generate", "--chat", "--prompt", "hi", "-n", "1"])
        #expect(noTemplate.status != 0)
        #expect(noTemplate.stderr.contains("no chat template"))
        #expect(noTemplate.stderr.split(separator: "\n").count == 1)
        let systemAlone = try CLITests.run(["generate", "--system", "x", "--prompt", "hi", "-n", "1"])
        #expect(systemAlone.status != 0)
        #expect(systemAlone.stderr.contains("--system needs --chat"))
    }
}
