import Foundation
import Crypto
import KVLabEngine
import KVLabFoundation
import KVLabRun

/// Line 1 of a `*.kvlab.jsonl` file: what is needed to re-execute the session anywhere.
public struct SessionHeader: Sendable, Equatable, Codable {
    /// Always `SessionHeader.formatName`: what makes a file a kvlab session.
    public var format: String
    /// The session format version (`SessionHeader.currentVersion` when written by this kvlab).
    public var version: Int
    /// The kvlab version that wrote it.
    public var kvlab: String
    /// The model, to find it again and check it is the same.
    public var model: ModelIdentity
    /// The run's settings when the session starts (knob events change them later).
    public var settings: SessionSettings
    /// Whether the ghost runs from the start.
    public var ghost: Bool
    /// Tokens between the recorder's checkpoints (0: none); replays verify whatever checkpoints
    /// the file holds.
    public var checkpointEvery: Int
    /// The workbench screen the session was recorded on, when it was.
    public var ui: UISettings?
    /// What every token is projected onto from the start (projection events change it); nil: no projection.
    public var projection: ProjectionSettings?

    /// The `format` value of every session.
    public static let formatName = "kvlab-session"
    /// The format this kvlab writes, and the newest it reads.
    /// (2: projection settings and events; 3: the end event; 4: the model's `context`.)
    public static let currentVersion = 4
    /// The first format whose recordings end with an `end` event: a file of this version or newer
    /// without one was cut; older files are whole unless nothing but the header or an incomplete
    /// last line shows otherwise.
    public static let endEventVersion = 3

    public init(model: ModelIdentity, settings: SessionSettings, ghost: Bool, checkpointEvery: Int, ui: UISettings? = nil,
                projection: ProjectionSettings? = nil) {
        format = Self.formatName
        version = Self.currentVersion
        kvlab = kvlabVersion
        self.model = model
        self.settings = settings
        self.ghost = ghost
        self.checkpointEvery = checkpointEvery
        self.ui = ui
        self.projection = projection
    }

    /// The header of a session recording `run` from now on.
    public init(run: LiveRun, model: ModelIdentity, checkpointEvery: Int, ui: UISettings? = nil, projection: ProjectionSettings? = nil) {
        self.init(model: model, settings: SessionSettings(run.settings), ghost: run.ghostEnabled, checkpointEvery: checkpointEvery,
                  ui: ui, projection: projection)
    }

    /// Checks what decoding cannot: ranges, method strings and sampler settings.
    func validate() throws(SessionProblem) {
        guard format == Self.formatName else { throw SessionProblem("not a kvlab session (format is '\(format)')") }
        guard version >= 1 else { throw SessionProblem("session format version \(version) is not valid") }
        guard checkpointEvery >= 0 else { throw SessionProblem("checkpointEvery must be ≥ 0, got \(checkpointEvery)") }
        guard model.bytes >= 0, model.sha256.count == 64, model.sha256.allSatisfy(\.isHexDigit) else {
            throw SessionProblem("model size or sha256 is not valid")
        }
        if let context = model.context, context < 1 { throw SessionProblem("model context \(context) is not valid") }
        if let ui, ui.columns < 1 || ui.rows < 1 { throw SessionProblem("ui terminal size \(ui.columns)×\(ui.rows) is not valid") }
        _ = try settings.runSettings(headDim: nil)
        try projection?.validate()
    }
}

/// The model a session ran: found again by path or by content.
public struct ModelIdentity: Sendable, Equatable, Codable {
    /// The model's name from its metadata.
    public var name: String
    /// The path given when recording; nil for the embedded default model.
    public var path: String?
    /// The tokenizer file given for a llama2.c checkpoint, if one was.
    public var tokenizer: String?
    /// Size in bytes and SHA-256 of the file (of a safetensors directory: see `ModelIdentity.digest`).
    public var bytes: Int
    /// Lowercase hex SHA-256.
    public var sha256: String
    /// The context the run limited the model to (`--context`); nil: the model's own.
    public var context: Int?

    public init(name: String, path: String?, tokenizer: String? = nil, bytes: Int, sha256: String, context: Int? = nil) {
        self.name = name
        self.path = path
        self.tokenizer = tokenizer
        self.bytes = bytes
        self.sha256 = sha256
        self.context = context
    }

    /// The identity of `model` loaded from `path` (nil: the embedded model) with `tokenizer`, and
    /// the context it runs with.
    public init(model: LoadedModel, path: String?, tokenizer: String? = nil) throws {
        let (bytes, sha256) = try Self.digest(of: model.path)
        self.init(name: model.config.name, path: path, tokenizer: tokenizer, bytes: bytes, sha256: sha256, context: model.contextOverride)
    }

    /// Size and SHA-256 of a file; of a directory (safetensors), of its regular files in name
    /// order, each hashed as its name, a NUL byte, its content.
    public static func digest(of path: String) throws -> (bytes: Int, sha256: String) {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw FileError(path: path, problem: "no such file or directory")
        }
        var hasher = SHA256()
        var total = 0
        func add(_ file: String) throws {
            let data = try InputFile.read(file)
            data.withUnsafeBytes { hasher.update(bufferPointer: $0) }
            total += data.count
        }
        if isDirectory.boolValue {
            let names = (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []
            for name in names.sorted() {
                let file = (path as NSString).appendingPathComponent(name)
                guard FileKind.of(file) == .regular else { continue }
                hasher.update(data: Array(name.utf8) + [0])
                try add(file)
            }
        } else {
            try add(path)
        }
        return (total, hasher.finalizeHex())
    }
}

/// A run's settings as strings, in the canonical method syntax (`MethodSpec`).
public struct SessionSettings: Sendable, Equatable, Codable {
    /// The eviction method.
    public var policy: String
    /// The sparse attention mode.
    public var sparse: String
    /// The KV quantization.
    public var kv: String
    /// The attention kernel: `naive` or `tiled:sram=SIZE`.
    public var attention: String
    /// A weight type, or `RunSettings.storedWeights`.
    public var weights: String
    /// Temperature, top-k, top-p and seed.
    public var sampler: SamplerSettings
    /// Threads for matrix products (results do not depend on it).
    public var threads: Int

    public init(_ settings: RunSettings) {
        policy = settings.value(of: .policy)
        sparse = settings.value(of: .sparse)
        kv = settings.value(of: .kv)
        attention = settings.value(of: .attention)
        weights = settings.value(of: .weights)
        sampler = settings.sampler
        threads = settings.threads
    }

    /// A knob's value as recorded.
    public func value(of knob: Knob) -> String {
        switch knob {
        case .policy: policy
        case .sparse: sparse
        case .kv: kv
        case .weights: weights
        case .attention: attention
        }
    }

    /// The settings parsed back; the KV quantization is checked against heads of `headDim` when given.
    public func runSettings(headDim: Int?) throws(SessionProblem) -> RunSettings {
        var settings = RunSettings(sampler: sampler, threads: threads)
        guard (1...256).contains(threads) else { throw SessionProblem("threads must be between 1 and 256, got \(threads)") }
        do { try sampler.validate() } catch { throw SessionProblem("sampler: \(error)") }
        for knob in Knob.allCases {
            do {
                let change = try SettingChange(knob, parsing: value(of: knob))
                // Without a model the quantization is only parsed: the run that uses the settings checks it.
                if headDim == nil, case .quant(let method) = change { settings.quant = method } else { try settings.set(change, headDim: headDim) }
            } catch { throw SessionProblem("\(knob.rawValue): \(error)") }
        }
        return settings
    }
}

/// The workbench screen a session was recorded on.
public struct UISettings: Sendable, Equatable, Codable {
    /// Terminal width in cells.
    public var columns: Int
    /// Terminal height in cells.
    public var rows: Int
    /// The theme's name (`themes/NAME.theme`).
    public var theme: String

    public init(columns: Int, rows: Int, theme: String) {
        self.columns = columns
        self.rows = rows
        self.theme = theme
    }
}
