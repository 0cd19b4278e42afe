/// Which kept entries one decode step reads (memory is not freed): the sparse-attention modes
/// of docs KV-METHODS.md, parsed from the compact method syntax (`quest:page=16,budget=128`).
public struct SparseMethod: Sendable, Hashable, CustomStringConvertible {
    public enum Kind: Sendable, Hashable {
        case dense
        /// Exact scores over every entry, softmax over each query head's top `k`.
        case topK(k: Int)
        /// Per page, elementwise key min/max bound q·k; read the top `budget / page` pages and
        /// the newest page. Pages are the cache's 16-slot pages, so `page` is a multiple of 16.
        case quest(page: Int, budget: Int)
        /// Skip entries whose `s_t` at the previous step fell below `theta`.
        case threshold(theta: Double)
        /// InfLLM: sinks + local window + the `top` best blocks of `block` positions, scored by
        /// their `representatives` keys; blocks come from host DRAM through an LRU of `lru` blocks.
        case blockRetrieval(block: Int, representatives: Int, top: Int, local: Int, sinks: Int, lru: Int)
    }

    public let kind: Kind
    public let spec: MethodSpec

    public static let dense = try! SparseMethod(parsing: "dense")
    public static let names = schemas.names

    private static let schemas: SchemaTable = {
        typealias S = ParameterSchema
        let list = [
            S("dense", []),
            S("topk", [S.int("k", 64, 1...1_048_576)]),
            S("quest", [S.int("page", 16, 16...1024), S.int("budget", 128, 16...1_048_576)]),
            S("threshold", [S.real("theta", 0.001, 0...1)]),
            S("block-retrieval", [S.int("block", 16, 1...1024), S.int("reps", 4, 1...64), S.int("top", 4, 1...1024),
                                  S.int("local", 64, 1...1_048_576), S.int("sinks", 4, 0...1024), S.int("lru", 8, 1...4096)]),
        ]
        return SchemaTable(list)
    }()

    public init(parsing text: String) throws(MethodSpecError) {
        try self.init(MethodSpec(parsing: text))
    }

    public init(_ spec: MethodSpec) throws(MethodSpecError) {
        guard let schema = Self.schemas[spec.name] else {
            throw MethodSpecError("unknown sparse attention mode '\(spec.name)' (\(Self.names.joined(separator: ", ")))")
        }
        guard spec.modifiers.isEmpty else { throw MethodSpecError("\(spec.name): sparse modes take no modifiers") }
        let p = try schema.resolve(spec)
        switch spec.name {
        case "topk": kind = .topK(k: p.int("k"))
        case "quest":
            let page = p.int("page")
            guard page % KVLayout.pageSize == 0 else {
                throw MethodSpecError("quest: page=\(page) must be a multiple of the cache's \(KVLayout.pageSize)-slot pages")
            }
            guard p.int("budget") >= page else { throw MethodSpecError("quest: budget must be at least one page") }
            kind = .quest(page: page, budget: p.int("budget"))
        case "threshold": kind = .threshold(theta: p.real("theta"))
        case "block-retrieval":
            guard p.int("reps") <= p.int("block") else { throw MethodSpecError("block-retrieval: reps must not exceed block") }
            guard p.int("lru") >= p.int("top") else { throw MethodSpecError("block-retrieval: lru must hold at least top blocks") }
            kind = .blockRetrieval(block: p.int("block"), representatives: p.int("reps"), top: p.int("top"),
                                   local: p.int("local"), sinks: p.int("sinks"), lru: p.int("lru"))
        default: kind = .dense
        }
        self.spec = MethodSpec(name: spec.name, parameters: p.canonical)
    }

    public var description: String { spec.description }

    /// Whether the mode reads each step's `s_t` (kept by the cache as for scoring policies).
    package var collectsScores: Bool {
        if case .threshold = kind { return true }
        return false
    }
}
