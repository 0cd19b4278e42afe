import Foundation
import KVLabEngine
@testable import KVLabHardware
import KVLabMethods
import Testing

/// The projection's KV bytes are the cache's: for the same kept entries, `KVStorageModel` at fp32
/// gives exactly the payload, metadata and full-precision bytes a real `PagedKVCache` holds.
@Suite struct KVStorageModelTests {
    static let methods = ["fp32", "kivi:bits=2", "kivi:bits=4,residual=16", "uniform:kbits=3,vbits=8,kaxis=token,group=16,residual=5",
                          "q8_0", "q4_1:residual=3", "ggml:k=q5_0,v=q4_0", "fp8:scale=head", "kivi:bits=2+outliers:percent=5",
                          "kivi:bits=4+nuq", "kivi:bits=2+rotate:protect-sinks=4"]

    @Test(arguments: methods) func matchesTheCacheResidency(_ method: String) throws {
        let quant = try KVQuantMethod(parsing: method)
        let layout = KVLayout(layerCount: 2, kvHeadCount: 2, headDim: 32, groupSize: 2, capacity: 128)
        let cache = PagedKVCache(layout: layout, quant: quant)
        var ledger = IOLedger()
        let count = 100
        for position in 0..<count {
            let keys = (0..<64).map { Float(sin(Double(position * 64 + $0))) }
            let values = (0..<64).map { Float(cos(Double(position * 64 + $0))) }
            for layer in 0..<2 { cache.append(layer: layer, position: position, keys: keys, values: values, ledger: &ledger) }
        }
        let model = KVStorageModel(quant: quant, headDim: 32, float: .f32, mixedHighShare: nil)
        let keys = model.keys(Double(count)), values = model.values(Double(count))
        let r = cache.residency
        let heads = 4.0
        #expect(Double(r.quantizedPayload) == heads * (keys.payload + values.payload))
        let calibration = keys.quantizedEntries + values.quantizedEntries > 0 ? model.calibrationBytes(layers: 2, kvHeads: 2) : 0
        #expect(Double(r.quantMetadata) == heads * (keys.metadata + values.metadata) + calibration)
        #expect(Double(r.fullPrecisionPayload + r.residualWindow) == heads * (keys.fullPrecision + values.fullPrecision))
    }

    /// Code bits per element, without metadata, as analytic tools count KV.
    @Test func idealBytesAreCodeBits() throws {
        func ideal(_ method: String) throws -> Double {
            KVStorageModel(quant: try KVQuantMethod(parsing: method), headDim: 128, float: .f16, mixedHighShare: nil).idealKeyBytes
        }
        #expect(try ideal("fp32") == 256)
        #expect(try ideal("kivi:bits=2") == 32)
        #expect(try ideal("q4_0") == 64)
        #expect(try ideal("q5_1") == 80)
        #expect(try ideal("fp8") == 128)
        #expect(try ideal("mixed:high=8,low=2") == 32)
    }
}
