extension LoadedModel {
    /// `user` (after `system`, when given) as one chat turn in the model's own template, with the
    /// assistant's turn opened: the prompt an instruct model expects. Throws a one-line error for
    /// a model without a template or a template kvlab cannot render.
    public func chatPrompt(user: String, system: String? = nil) throws -> String {
        guard let source = chatTemplate else {
            throw ChatTemplateError("the model has no chat template (tokenizer_config.json chat_template or GGUF tokenizer.chat_template)")
        }
        var messages: [ChatTemplate.Message] = []
        if let system { messages.append(.init(role: "system", content: system)) }
        messages.append(.init(role: "user", content: user))
        return try ChatTemplate(source).render(messages: messages, addGenerationPrompt: true,
                                               specialTokens: tokenizer.spec.specialTokenTexts)
    }
}

extension TokenizerSpec {
    /// The special-token variables chat templates read (bos_token, eos_token, unk_token).
    var specialTokenTexts: [String: String] {
        var texts: [String: String] = [:]
        for (name, id) in [("bos_token", bosID), ("eos_token", eosID), ("unk_token", unknownID)] {
            if let id { texts[name] = tokens[id] }
        }
        return texts
    }
}
