/// A role's look: its colour and the attributes drawn with it (mono themes use attributes only).
public struct RoleStyle: Hashable, Sendable {
    /// The role's colour (`terminalDefault` in mono themes).
    public var color: Color
    /// Attributes drawn with the role.
    public var attributes: TextAttributes

    /// A look of this colour and attributes.
    public init(_ color: Color, _ attributes: TextAttributes = []) {
        self.color = color
        self.attributes = attributes
    }
}

/// The stops of a gradient; without a middle stop it runs straight from start to end.
public struct GradientStops: Hashable, Sendable {
    /// The colour at 0.
    public var start: Color
    /// The colour at 0.5, if the gradient bends there.
    public var mid: Color?
    /// The colour at 1.
    public var end: Color

    /// A gradient through these stops.
    public init(start: Color, mid: Color? = nil, end: Color) {
        self.start = start
        self.mid = mid
        self.end = end
    }

    /// The colour at `fraction` (0…1), interpolated in RGB; a gradient with a terminal-default
    /// stop cannot be interpolated and gives its nearest stop.
    public func color(at fraction: Double) -> Color {
        let (from, to, t): (Color, Color, Double) = if let mid {
            fraction < 0.5 ? (start, mid, fraction * 2) : (mid, end, fraction * 2 - 1)
        } else {
            (start, end, fraction)
        }
        guard let a = from.rgbValue, let b = to.rgbValue else { return t < 0.5 ? from : to }
        return .rgb(a.mixed(with: b, min(max(t, 0), 1)))
    }
}

/// A colour theme: a look for every role and the stops of every gradient.
public struct Theme: Hashable, Sendable {
    /// The theme's name (its file name without `.theme`).
    public var name: String
    /// A look for every `ThemeRole`.
    public var roles: [ThemeRole: RoleStyle]
    /// Stops for every `ThemeGradient`.
    public var gradients: [ThemeGradient: GradientStops]

    /// A theme of these looks and gradients.
    public init(name: String, roles: [ThemeRole: RoleStyle], gradients: [ThemeGradient: GradientStops]) {
        self.name = name
        self.roles = roles
        self.gradients = gradients
    }

    /// The terminal's own colours and no attributes: what a theme falls back to when the default
    /// theme file cannot be found.
    public static let plain = Theme(
        name: "plain",
        roles: Dictionary(uniqueKeysWithValues: ThemeRole.allCases.map { ($0, RoleStyle(.terminalDefault)) }),
        gradients: Dictionary(uniqueKeysWithValues: ThemeGradient.allCases.map { ($0, GradientStops(start: .terminalDefault, end: .terminalDefault)) })
    )

    /// The look of a role.
    public subscript(role: ThemeRole) -> RoleStyle { roles[role] ?? RoleStyle(.terminalDefault) }

    /// The theme resolved for drawing at a colour depth.
    public func palette(depth: ColorDepth) -> Palette { Palette(theme: self, depth: depth) }
}

/// A style with concrete colours for the terminal: what a backend draws.
public struct ResolvedStyle: Hashable, Sendable {
    /// The glyph colour.
    public var foreground: Color
    /// The cell colour.
    public var background: Color
    /// Attributes drawn with the role.
    public var attributes: TextAttributes

    /// A resolved style.
    public init(foreground: Color, background: Color, attributes: TextAttributes) {
        self.foreground = foreground
        self.background = background
        self.attributes = attributes
    }
}

/// A theme resolved for one colour depth: role colours quantized and gradients tabulated in 256
/// steps, so resolving a cell's style is a few lookups.
public struct Palette: Sendable {
    /// The theme resolved.
    public let theme: Theme
    /// The depth it is resolved for.
    public let depth: ColorDepth
    private let roles: [ThemeRole: RoleStyle]
    private let gradients: [ThemeGradient: [Color]]

    /// Resolves `theme` for `depth`.
    public init(theme: Theme, depth: ColorDepth) {
        self.theme = theme
        self.depth = depth
        roles = theme.roles.mapValues { RoleStyle(depth.quantize($0.color), $0.attributes) }
        gradients = Dictionary(uniqueKeysWithValues: ThemeGradient.allCases.map { gradient in
            let stops = theme.gradients[gradient] ?? GradientStops(start: .terminalDefault, end: .terminalDefault)
            return (gradient, (0...255).map { depth.quantize(stops.color(at: Double($0) / 255)) })
        })
    }

    /// The colours and attributes to draw a cell style with: unset paints are the theme's text
    /// and background; role paints add the role's attributes.
    public func resolve(_ style: Style) -> ResolvedStyle {
        var attributes = style.attributes
        let foreground = color(style.foreground ?? .role(.text), attributes: &attributes)
        let background = color(style.background ?? .role(.background), attributes: &attributes)
        return ResolvedStyle(foreground: foreground, background: background, attributes: attributes)
    }

    private func color(_ paint: Paint, attributes: inout TextAttributes) -> Color {
        switch paint {
        case .role(let role):
            let look = roles[role] ?? RoleStyle(.terminalDefault)
            attributes.formUnion(look.attributes)
            return look.color
        case .gradient(let gradient, let position):
            return gradients[gradient]?[Int(position)] ?? .terminalDefault
        case .color(let color):
            return depth.quantize(color)
        }
    }
}
