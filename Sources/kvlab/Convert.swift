import Foundation
import ArgumentParser
import KVLabEngine
import KVLabMethods

/// `kvlab convert IN OUT --to gguf|safetensors`.
struct Convert: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Convert a model to GGUF or to a Hugging Face safetensors directory.")

    @Argument(help: "Input model: llama2.c .bin, .gguf, or a safetensors directory.")
    var input: String

    @Argument(help: "Output: a .gguf file, or a directory for safetensors.")
    var output: String

    @Option(name: .long, help: "Output format: gguf or safetensors.")
    var to: OutputFormat

    @Option(name: .long, help: "Store weights as this type (default: as in the input; rows that are not whole blocks take llama.cpp's fallback type, as llama-quantize does).")
    var weights: WeightType?

    @Option(name: .long, help: "tokenizer.bin for a llama2.c checkpoint (default: beside the model).")
    var tokenizer: String?

    enum OutputFormat: String, ExpressibleByArgument { case gguf, safetensors }

    func run() throws {
        var model = try ModelLoader.load(path: input, tokenizerPath: tokenizer)
        if let weights { model.weights = model.weights.converted(to: weights) }
        try ModelLoader.write(model, to: output, as: to == .gguf ? .gguf : .safetensors)
        print("wrote \(output) (\(to.rawValue))")
    }
}
