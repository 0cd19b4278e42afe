import Foundation
import Testing
import KVLabFoundation
@testable import KVLabServe

@Suite struct ArrivalTests {
    let source = Array(100..<400)

    @Test func aSeedGivesOneStream() {
        let stream = SyntheticArrivals(rate: 4, count: 50, promptLength: LengthRange(8, 32), outputLength: LengthRange(4, 16), seed: 3)
        #expect(stream.requests(source: source, first: 1) == stream.requests(source: source, first: 1))
        var other = stream
        other.seed = 4
        #expect(other.requests(source: source, first: 1) != stream.requests(source: source, first: 1))
    }

    @Test func arrivalsArePoissonAtTheRate() {
        let stream = SyntheticArrivals(rate: 8, count: 4000, promptLength: LengthRange(1, 1), outputLength: LengthRange(1, 1), seed: 11)
        let requests = stream.requests(source: source, first: nil)
        let gaps = zip(requests.dropFirst(), requests).map { $0.arrival - $1.arrival }
        #expect(gaps.allSatisfy { $0 >= 0 })
        let mean = requests.last!.arrival / Double(requests.count)
        #expect(abs(mean - 1.0 / 8) < 0.01, "mean gap \(mean)")
        // Exponential gaps: about e⁻¹ of them are longer than the mean.
        let longer = Double(gaps.filter { $0 > 1.0 / 8 }.count) / Double(gaps.count)
        #expect(abs(longer - exp(-1)) < 0.03, "share longer than the mean \(longer)")
    }

    @Test func lengthsStayInTheirRangesAndTheSystemPromptLeadsEveryPrompt() {
        let stream = SyntheticArrivals(rate: 1, count: 200, promptLength: LengthRange(5, 9), outputLength: LengthRange(2, 3),
                                       systemPrompt: 16, seed: 5)
        let requests = stream.requests(source: source, first: 1)
        let head = [1] + Array(source.prefix(15))
        for request in requests {
            #expect(request.sharedPrefix == 16)
            #expect(Array(request.prompt.prefix(16)) == head)
            #expect((5...9).contains(request.prompt.count - 16))
            #expect((2...3).contains(request.outputTokens))
        }
        #expect(Set(requests.map { $0.prompt.count }).count == 5, "every prompt length is drawn")
    }

    @Test func lengthRangesParse() {
        #expect(LengthRange(parsing: "64", limit: 100) == LengthRange(64, 64))
        #expect(LengthRange(parsing: "8..32", limit: 100) == LengthRange(8, 32))
        for bad in ["0", "9..8", "1..", "..4", "a", "1...4", "1..200", "-3"] { #expect(LengthRange(parsing: bad, limit: 100) == nil, "\(bad)") }
    }
}

@Suite struct TraceFileTests {
    func write(_ text: String) throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("kvlab-trace-\(UUID().uuidString).jsonl").path
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    func read(_ path: String) throws -> [ServeRequest] {
        try TraceFile.read(path, vocabularySize: 50) { text in [1] + text.unicodeScalars.map { Int($0.value) % 50 } }
    }

    @Test func aTraceReadsTokensAndText() throws {
        let path = try write("""
            {"arrival": 0, "prompt": [1, 2, 3], "output": 4}

            {"arrival": 0.5, "text": "ab", "output": 2}
            """)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let requests = try read(path)
        #expect(requests == [ServeRequest(id: 0, arrival: 0, prompt: [1, 2, 3], outputTokens: 4),
                             ServeRequest(id: 1, arrival: 0.5, prompt: [1, 97 % 50, 98 % 50], outputTokens: 2)])
    }

    @Test(arguments: [
        ("{\"arrival\": 0, \"prompt\": [1], \"output\": 1}\n{\"arrival\": 0, \"prompt\": [1]", "line 2: not JSON"),
        ("[1, 2]", "line 1: expected an object, got an array"),
        ("{\"arrival\": 0, \"prompt\": [1], \"output\": 1, \"temp\": 1}", "line 1: unknown key 'temp'"),
        ("{\"arrival\": -1, \"prompt\": [1], \"output\": 1}", "line 1: 'arrival' must be a number of seconds ≥ 0"),
        ("{\"arrival\": 2, \"prompt\": [1], \"output\": 1}\n{\"arrival\": 1, \"prompt\": [1], \"output\": 1}", "line 2: arrival 1.0 is before the previous line's 2.0"),
        ("{\"arrival\": 0, \"prompt\": [1]}", "line 1: 'output' must be a whole number of tokens"),
        ("{\"arrival\": 0, \"prompt\": [1, 50], \"output\": 1}", "line 1: prompt token 50 is not a token id (0..<50)"),
        ("{\"arrival\": 0, \"prompt\": [], \"output\": 1}", "line 1: 'prompt' must be a non-empty array"),
        ("{\"arrival\": 0, \"output\": 1}", "line 1: needs 'prompt' (token ids) or 'text'"),
        ("{\"arrival\": 0, \"prompt\": [1], \"text\": \"a\", \"output\": 1}", "line 1: has both 'prompt' and 'text'"),
        ("\n\n", "no requests"),
    ])
    func badTracesNameTheFileLineAndProblem(text: String, problem: String) throws {
        let path = try write(text)
        defer { try? FileManager.default.removeItem(atPath: path) }
        #expect {
            try read(path)
        } throws: { error in
            let message = "\(error)"
            return message.hasPrefix("\(path): ") && message.contains(problem) && !message.contains("\n")
        }
    }

    @Test func aMissingTraceIsAFileError() {
        #expect(throws: FileError.self) { try read("/nonexistent/trace.jsonl") }
    }
}
