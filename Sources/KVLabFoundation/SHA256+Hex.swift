import Crypto

extension SHA256 {
    /// The digest as 64 lowercase hex digits, as `sha256sum` and Python's hashlib write it (model,
    /// session and checkpoint digests are compared with theirs).
    package mutating func finalizeHex() -> String {
        let hexDigits = Array("0123456789abcdef".utf8)
        var text: [UInt8] = []
        text.reserveCapacity(2 * SHA256.byteCount)
        for byte in finalize() {
            text.append(hexDigits[Int(byte >> 4)])
            text.append(hexDigits[Int(byte & 15)])
        }
        return String(decoding: text, as: UTF8.self)
    }
}
