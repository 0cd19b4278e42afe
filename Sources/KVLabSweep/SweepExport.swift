import Foundation

/// `kvlab sweep export --csv`: one row per finished cell, its configuration, numbers and provenance.
public enum SweepExport {
    public static func csv(_ results: [SweepResult]) -> String {
        let pairs = Array(Set(results.flatMap { $0.cell.projections })).sorted()
        let links = ["hbmToSRAM", "sramToHBM", "sram", "dramToHBM"]
        var header = ["id", "model", "text", "probe", "tokens", "chunks", "prefill", "policy", "sparse", "kv", "attention", "family",
                      "threads", "delta_nll", "kl", "top1_agreement", "answered", "nll", "ghost_nll", "kv_mean_bytes", "kv_peak_bytes",
                      "kv_read_bytes_per_token"]
        header += links.map { "traffic_\($0)_bytes_per_token" }
        header += ["step_ms"]
        for pair in pairs {
            header += ["decode_ms", "ttft_ms", "kv_bytes_per_sequence", "max_batch", "max_context"].map { "\(pair) \($0)" }
        }
        header += ["kvlab_version", "commit", "model_sha256", "text_sha256", "machine", "finished", "executor"]
        var lines = [header.map(field).joined(separator: ",")]
        for r in results {
            let q = r.quality, c = r.cell
            var row = [r.id, c.model, c.text, c.probe, c.tokens.map(String.init) ?? "", "\(c.chunks)", "\(c.prefill)", c.policy, c.sparse,
                       c.kv, c.attention, c.family, "\(c.threads)", number(q.deltaNLL), number(q.kl),
                       q.summary.top1Agreement.map(number) ?? "", q.answered.map { $0 ? "1" : "0" } ?? "",
                       number(q.probe.map { $0.answerNLL / Double(max($0.answerTokens, 1)) } ?? q.summary.meanNLL),
                       (q.probe.flatMap { p in p.ghostAnswerNLL.map { $0 / Double(max(p.answerTokens, 1)) } } ?? q.summary.ghostMeanNLL)
                           .map(number) ?? "",
                       number(q.meanResidentKVBytes), "\(q.peakResidentKVBytes)", number(q.kvReadPerToken)]
            row += links.map { number(q.trafficPerToken[$0] ?? 0) }
            row += [number(r.measured.stepMilliseconds)]
            for pair in pairs {
                if let p = r.projections.first(where: { $0.pair == pair }) {
                    row += [number(p.decodeMilliseconds), number(p.ttftMilliseconds), number(p.kvBytesPerSequence), "\(p.maxBatch)",
                            p.maxContext.map(String.init) ?? ""]
                } else {
                    row += ["", "", "", "", ""]
                }
            }
            let v = r.provenance
            row += [v.kvlabVersion, v.commit ?? "", v.modelSHA256, v.textSHA256, v.machine, v.finished, v.executor]
            lines.append(row.map(field).joined(separator: ","))
        }
        return lines.joined(separator: "\n") + "\n"
    }

    static func number(_ value: Double) -> String { "\(value)" }

    /// RFC 4180: a field with a comma, quote or newline is quoted, its quotes doubled.
    static func field(_ text: String) -> String {
        guard text.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) else { return text }
        return "\"" + text.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }
}
