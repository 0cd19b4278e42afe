import ArgumentParser
import KVLabMethods

/// A KV method type read from the command line in the method syntax. Options keep the string and
/// parse it with `parse(_:option:)`, so a bad value is a one-line error naming the option and the
/// reason; a failed `ExpressibleByArgument` conversion could only say that the value is invalid.
protocol MethodArgument: ExpressibleByArgument {
    init(parsing text: String) throws(MethodSpecError)
}

extension MethodArgument {
    public init?(argument: String) { try? self.init(parsing: argument) }

    /// The method in `text`, or an error `OPTION: reason`.
    static func parse(_ text: String, option: String) throws -> Self {
        do { return try Self(parsing: text) } catch { throw CLIError("\(option): \(error)") }
    }
}

extension EvictionMethod: MethodArgument {}
extension SparseMethod: MethodArgument {}
extension KVQuantMethod: MethodArgument {}
