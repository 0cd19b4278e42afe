import KVLabEngine
import KVLabHardware

extension MachineProbe {
    /// The probe that times the engine's own BLAS: the fp32 peak kvlab's kernels can reach here.
    public static var engine: MachineProbe {
        MachineProbe { size, runs, threads in
            let previous = BLAS.threadCount
            BLAS.setThreadCount(threads)
            defer { BLAS.setThreadCount(previous) }
            return BLAS.squareProductSeconds(size: size, runs: runs)
        }
    }
}
