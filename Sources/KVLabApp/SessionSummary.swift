import Foundation
import KVLabFoundation
import KVLabMethods
import KVLabRun
import KVLabSession
import KVLabTUI

/// The numbers a demo's captions quote, recomputed from the session's events: one row per part of
/// the session (a new sequence, or a projection change, starts one) with the settings that set it
/// apart, its mean KL to the ghost, traffic per token, resident KV and projected latency. The
/// replay's end card shows it; a re-executed replay has verified every event it is built from.
public struct SessionSummary: Sendable {
    /// One part of the session.
    public struct Part: Sendable {
        /// The settings in effect (`policy=… kv=… sparse=… attention=… device=… target=…`), by name.
        public var settings: [(String, String)]
        /// Tokens generated.
        public var tokens = 0
        /// Mean KL(ghost ‖ run) over the tokens the ghost ran for (nil: none).
        public var meanKL: Double?
        /// Mean bytes of keys and values read from HBM per token.
        public var kvReadPerToken: Double = 0
        /// Mean bytes of attention scores moved through HBM per token.
        public var scoresPerToken: Double = 0
        /// HBM traffic of the part's prompt pass in keys, values, scores and softmax statistics.
        public var prefillAttentionBytes: UInt64?
        /// HBM traffic of the part's prompt pass in activations: where the tiled kernel's reloads
        /// of queries and partial outputs are counted (once per tile they meet).
        public var prefillActivationBytes: UInt64?
        /// Resident KV bytes after the part's last token.
        public var residentKV = 0
        /// Mean projected decode latency (seconds), when the session projects.
        public var projectedSeconds: Double?

        fileprivate var klSum = 0.0, klTokens = 0, projectedSum = 0.0, projectedTokens = 0
    }

    /// The parts with at least one token, in order.
    public var parts: [Part]

    /// The summary of a session's events under its header.
    public init(header: SessionHeader, records: [SessionRecord]) {
        var knobs = header.settings.knobValues
        var projection = header.projection
        var parts: [Part] = []
        var current: Part?
        func settings() -> [(String, String)] {
            knobs + (projection.map { [("device", $0.device), ("target", $0.target), ("context", "\($0.context)")] } ?? [])
        }
        func close() {
            if var part = current, part.tokens > 0 {
                let n = Double(part.tokens)
                part.kvReadPerToken /= n
                part.scoresPerToken /= n
                part.meanKL = part.klTokens > 0 ? part.klSum / Double(part.klTokens) : nil
                part.projectedSeconds = part.projectedTokens > 0 ? part.projectedSum / Double(part.projectedTokens) : nil
                parts.append(part)
            }
            current = nil
        }
        for record in records {
            switch record.event {
            case .prompt(let prompt):
                if !prompt.continuing { close() }
                if current == nil { current = Part(settings: settings()) }
                if !prompt.continuing {
                    let ledger = prompt.report.ledger
                    current?.prefillAttentionBytes = [IOBuffer.keys, .values, .scores, .softmaxStatistics].reduce(0) { $0 + ledger.hbmTraffic($1) }
                    current?.prefillActivationBytes = ledger.hbmTraffic(.activations)
                }
            case .knob(let change):
                if let index = knobs.firstIndex(where: { $0.0 == change.knob.rawValue }) { knobs[index].1 = change.new }
            case .projection(let change):
                close()
                if projection == nil { projection = ProjectionSettings() }
                try? projection?.set(change.setting, to: change.new)
                current = Part(settings: settings())
            case .token(let token):
                if current == nil { current = Part(settings: settings()) }
                let report = token.metrics.report
                current!.tokens += 1
                current!.kvReadPerToken += Double(report.ledger.bytesRead(.keys) + report.ledger.bytesRead(.values))
                current!.scoresPerToken += Double(report.ledger.hbmTraffic(.scores))
                current!.residentKV = report.cache.total
                if let ghost = token.metrics.ghost { current!.klSum += ghost.kl; current!.klTokens += 1 }
                if let seconds = token.projectedLatencySeconds { current!.projectedSum += seconds; current!.projectedTokens += 1 }
            default: break
            }
        }
        close()
        self.parts = parts
    }

    /// The settings that differ between parts (the rest is the same for all and said once).
    public var varying: [String] {
        guard let first = parts.first else { return [] }
        return first.settings.map(\.0).filter { name in
            Set(parts.map { part in part.settings.first { $0.0 == name }?.1 ?? "" }).count > 1
        }
    }

    /// The table's lines: a header and one row per part, columns only for the numbers the
    /// session has (KL with a ghost, projected latency when it projects, scores when any moved).
    /// Bytes are exact, as captions quote them, unless `compact` (a narrow screen): then the
    /// table is turned, one row per number and one column per part, the parts numbered on the
    /// lines before it (`compactHeaderLines` of them), so a long setting (a kivi layout) cannot
    /// push the numbers the captions quote off an 80-column screen.
    public func table(compact: Bool = false) -> [String] {
        func bytes(_ value: Double) -> String {
            // As the captions write them: whole bytes with separators, megabytes (10⁶) past ten;
            // compact, decimal units with one digit.
            if value >= (compact ? 1e6 : 1e7) { return String(format: "%.1f MB", value / 1e6) }
            if compact { return value >= 1e3 ? String(format: "%.1f kB", value / 1e3) : "\(Int(value.rounded())) B" }
            let digits = String(Int(value.rounded()))
            let groups = stride(from: digits.count, to: 0, by: -3).map { end in
                String(digits[digits.index(digits.startIndex, offsetBy: max(end - 3, 0))..<digits.index(digits.startIndex, offsetBy: end)])
            }
            return groups.reversed().joined(separator: ",") + " B"
        }
        let names = varying.isEmpty ? ["policy"] : varying
        var columns: [(title: String, cells: [String])] = names.map { name in
            (name, parts.map { part in part.settings.first { $0.0 == name }?.1 ?? "" })
        }
        columns.append(("tokens", parts.map { "\($0.tokens)" }))
        if parts.contains(where: { $0.meanKL != nil }) {
            columns.append(("mean KL", parts.map { $0.meanKL.map { String(format: "%.4f", $0) } ?? "–" }))
        }
        columns.append(("K+V/tok", parts.map { bytes($0.kvReadPerToken) }))
        if parts.contains(where: { $0.scoresPerToken > 0 }) {
            columns.append(("scores/tok", parts.map { bytes($0.scoresPerToken) }))
            columns.append(("prompt K,V,S", parts.map { $0.prefillAttentionBytes.map { bytes(Double($0)) } ?? "–" }))
            // Tiling trades scores for reloads of queries and partial outputs, counted as activations.
            columns.append(("prompt act.", parts.map { $0.prefillActivationBytes.map { bytes(Double($0)) } ?? "–" }))
        }
        columns.append(("KV at end", parts.map { bytes(Double($0.residentKV)) }))
        if parts.contains(where: { $0.projectedSeconds != nil }) {
            columns.append(("proj. ms", parts.map { $0.projectedSeconds.map { String(format: "%.2f", $0 * 1000) } ?? "–" }))
        }
        func aligned(_ rows: [[String]]) -> [String] {
            let widths = rows[0].indices.map { column in rows.map { CharacterWidth.of($0[column]) }.max() ?? 0 }
            return rows.map { cells in
                zip(cells, widths).map { cell, width in cell + String(repeating: " ", count: max(width - CharacterWidth.of(cell), 0)) }
                    .joined(separator: "  ").trimmingCharacters(in: .whitespaces)
            }
        }
        guard compact else { return aligned([columns.map(\.title)] + parts.indices.map { index in columns.map { $0.cells[index] } }) }
        let legend = parts.indices.map { index in "\(index + 1) " + columns[..<names.count].map { $0.cells[index] }.joined(separator: " ") }
        let numbers = columns[names.count...]
        return legend + aligned([[names.joined(separator: " ")] + parts.indices.map { "\($0 + 1)" }] + numbers.map { [$0.title] + $0.cells })
    }

    /// Lines of the compact table before its numbers: the parts' legend and the header.
    public var compactHeaderLines: Int { parts.count + 1 }
}

extension SessionSettings {
    /// The knobs as `(name, canonical value)`, in the session's order.
    var knobValues: [(String, String)] {
        [("policy", policy), ("kv", kv), ("sparse", sparse), ("attention", attention), ("weights", weights)]
    }
}
