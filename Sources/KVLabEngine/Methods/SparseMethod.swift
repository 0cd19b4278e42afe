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
    }

    public let kind: Kind
    public let spec: MethodSpec

    public static let dense = try! SparseMethod(parsing: "dense")
    public static let names = ["dense", "topk", "quest", "threshold"]

    private static let schemas: [String: ParameterSchema] = {
        typealias S = ParameterSchema
        let list = [
            S("dense", []),
            S("topk", [S.int("k", 64, 1...1_048_576)]),
            S("quest", [S.int("page", 16, 16...1024), S.int("budget", 128, 16...1_048_576)]),
            S("threshold", [S.real("theta", 0.001, 0...1)]),
        ]
        return Dictionary(uniqueKeysWithValues: list.map { ($0.method, $0) })
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
            guard page % PagedKVCache.pageSize == 0 else {
                throw MethodSpecError("quest: page=\(page) must be a multiple of the cache's \(PagedKVCache.pageSize)-slot pages")
            }
            guard p.int("budget") >= page else { throw MethodSpecError("quest: budget must be at least one page") }
            kind = .quest(page: page, budget: p.int("budget"))
        case "threshold": kind = .threshold(theta: p.real("theta"))
        default: kind = .dense
        }
        self.spec = MethodSpec(name: spec.name, parameters: p.canonical)
    }

    public var description: String { spec.description }
}
