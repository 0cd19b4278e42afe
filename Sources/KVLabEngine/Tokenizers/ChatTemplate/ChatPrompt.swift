import Foundation
import KVLabMethods

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

extension LoadedModel {
    /// The tokenizer as a method that feeds text of its own reads it (kvpress's KVzip): ids
    /// without BOS, and the chat template's text around a user turn's content, split as kvpress
    /// splits it (a dummy content, thinking off); no user turn without a template or with one
    /// kvlab cannot render.
    public var promptTexts: PromptTexts {
        let tokenizer = self.tokenizer, bos = tokenizer.spec.bosID
        let encode: @Sendable (String) -> [Int] = { text in
            var ids = tokenizer.encode(text)
            if let bos, ids.first == bos, tokenizer.spec.addBOS { ids.removeFirst() }
            return ids
        }
        let dummy = "dummy context", separator = "\n" + String(repeating: "#", count: dummy.count)
        guard let source = chatTemplate else { return PromptTexts(encode: encode, userTurn: nil) }
        let text: String
        do {
            text = try ChatTemplate(source).render(messages: [.init(role: "user", content: dummy + separator)], addGenerationPrompt: true,
                                                   specialTokens: tokenizer.spec.specialTokenTexts, enableThinking: false)
        } catch {
            return PromptTexts(encode: encode, userTurn: nil, problem: "chat template: \(error)")
        }
        guard let split = text.range(of: separator), let content = text.range(of: dummy) else {
            return PromptTexts(encode: encode, userTurn: nil, problem: "chat template: a user turn's content does not come out whole")
        }
        return PromptTexts(encode: encode, userTurn: (String(text[..<content.lowerBound]), String(text[split.upperBound...])))
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
