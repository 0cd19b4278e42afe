/// An instruct model's Jinja chat template, rendered as transformers' `apply_chat_template`
/// renders it (jinja2 with trim_blocks and lstrip_blocks, `raise_exception`, `strftime_now`,
/// transformers' `tojson`). A construct kvlab does not implement fails when the template is
/// parsed, with a one-line `ChatTemplateError` naming it.
public struct ChatTemplate: Sendable {
    public struct Message: Sendable, Equatable {
        public var role: String
        public var content: String
        public init(role: String, content: String) {
            self.role = role
            self.content = content
        }
    }

    private let nodes: [JinjaNode]

    public init(_ source: String) throws {
        nodes = try JinjaParser.parse(source)
    }

    /// The prompt for `messages`; `addGenerationPrompt` opens the assistant's turn.
    /// `specialTokens` are the names templates read, such as bos_token and eos_token;
    /// `enableThinking`, when given, is the `enable_thinking` variable (Qwen3's thinking switch).
    public func render(messages: [Message], addGenerationPrompt: Bool, specialTokens: [String: String] = [:],
                       enableThinking: Bool? = nil) throws -> String {
        var globals: [String: JinjaValue] = [
            "messages": .list(messages.map { message in
                .dict(JinjaDict([("role", .string(message.role)), ("content", .string(message.content))]))
            }),
            "add_generation_prompt": .bool(addGenerationPrompt),
            "tools": .none,
            "documents": .none,
        ]
        for (name, value) in specialTokens { globals[name] = .string(value) }
        if let enableThinking { globals["enable_thinking"] = .bool(enableThinking) }
        return try JinjaRenderer(globals: globals).render(nodes)
    }
}
