import Foundation

/// kvlab's JSON policy, in one place.
///
/// - kvlab's own documents (session files, `--json` reports) are `Codable` values written and read
///   by the coders here: keys sorted, so identical runs give byte-identical files that diff well;
///   floats in their shortest exact form; non-finite floats as the strings `inf`, `-inf`, `nan`.
/// - Other tools' formats and files people edit (config.json, tokenizer.json and safetensors
///   headers, read and written; device and shape profiles; asciinema casts) go through `JSONValue`,
///   whose hand-written parser and writer are kept for what Codable cannot give: member order
///   (vocabularies and merges are read in file order; safetensors headers, profiles and cast
///   headers are written in their formats' order), every duplicate and unknown key seen (a typo in
///   a profile is an error naming its line, not a silent default), heterogeneous arrays (a cast's
///   `[time, "o", text]` lines), and a depth limit for untrusted input.
public enum JSONDocument {
    public static let nonFinite = (positive: "inf", negative: "-inf", nan: "nan")

    /// The encoder of kvlab's documents; `pretty` indents them for people (CLI reports).
    public static func encoder(pretty: Bool = false) -> JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = pretty ? [.sortedKeys, .withoutEscapingSlashes, .prettyPrinted] : [.sortedKeys, .withoutEscapingSlashes]
        encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: nonFinite.positive,
                                                                      negativeInfinity: nonFinite.negative, nan: nonFinite.nan)
        return encoder
    }

    /// The decoder of kvlab's documents.
    public static func decoder() -> JSONDecoder {
        let decoder = JSONDecoder()
        decoder.nonConformingFloatDecodingStrategy = .convertFromString(positiveInfinity: nonFinite.positive,
                                                                        negativeInfinity: nonFinite.negative, nan: nonFinite.nan)
        return decoder
    }

    /// `value` as an indented document and a newline, for standard output.
    public static func prettyLine(_ value: some Encodable) throws -> Data {
        try encoder(pretty: true).encode(value) + Data("\n".utf8)
    }
}
