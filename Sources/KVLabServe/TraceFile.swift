import Foundation
import KVLabFoundation

/// A trace of requests: one JSON object per line,
/// `{"arrival": SECONDS, "prompt": [TOKEN, …] | "text": "…", "output": TOKENS}`, arrivals in
/// non-decreasing order; blank lines are skipped. A file people write, so it is read with
/// `JSONValue` (unknown and duplicate keys are errors) and every problem names the file and line.
public enum TraceFile {
    /// The keys a line may have.
    static let keys: Set<String> = ["arrival", "prompt", "text", "output"]
    /// The most tokens one request may generate.
    public static let maxOutput = 1_000_000

    /// The requests of the trace at `path`; text prompts go through `encode` (the model's
    /// tokenizer, BOS first as a prompt gets it); token ids must be below `vocabularySize`.
    public static func read(_ path: String, vocabularySize: Int, encode: (String) -> [Int]) throws -> [ServeRequest] {
        let text = try InputFile.readText(path)
        var requests: [ServeRequest] = []
        for (index, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            guard !line.allSatisfy(\.isWhitespace) else { continue }
            func fail(_ problem: String) -> FileError { FileError(path: path, problem: "line \(index + 1): \(problem)") }
            let value: JSONValue
            do { value = try JSONValue.parse(Data(line.utf8)) } catch { throw fail("not JSON (\(error))") }
            guard let members = value.members else { throw fail("expected an object, got \(value.kind)") }
            if let unknown = members.first(where: { !keys.contains($0.key) }) {
                throw fail("unknown key '\(unknown.key.prefix(40))' (arrival, prompt or text, output)")
            }
            guard let arrival = value["arrival"]?.double, arrival.isFinite, arrival >= 0 else {
                throw fail("'arrival' must be a number of seconds ≥ 0")
            }
            if let last = requests.last, arrival < last.arrival {
                throw fail("arrival \(arrival) is before the previous line's \(last.arrival)")
            }
            guard let output = value["output"]?.integer, (1...maxOutput).contains(output) else {
                throw fail("'output' must be a whole number of tokens from 1 to \(maxOutput)")
            }
            let prompt: [Int]
            switch (value["prompt"], value["text"]) {
            case (let tokens?, nil):
                guard let elements = tokens.array, !elements.isEmpty else { throw fail("'prompt' must be a non-empty array of token ids") }
                prompt = try elements.map { element in
                    guard let id = element.integer, (0..<vocabularySize).contains(id) else {
                        throw fail("prompt token \(element.compactText().prefix(20)) is not a token id (0..<\(vocabularySize))")
                    }
                    return id
                }
            case (nil, let words?):
                guard let words = words.string, !words.isEmpty else { throw fail("'text' must be a non-empty string") }
                prompt = encode(words)
                guard !prompt.isEmpty else { throw fail("'text' encodes to no tokens") }
            case (nil, nil): throw fail("needs 'prompt' (token ids) or 'text'")
            case (.some, .some): throw fail("has both 'prompt' and 'text'; give one")
            }
            requests.append(ServeRequest(id: requests.count, arrival: arrival, prompt: prompt, outputTokens: output))
        }
        guard !requests.isEmpty else { throw FileError(path: path, problem: "no requests (one JSON object per line)") }
        return requests
    }
}
