import CKVLabKernels

/// Persistent worker threads that split a product's rows (`threads - 1` of them; the calling
/// thread takes the first share). Started once per engine, so a decode step starts no thread.
final class WorkerPool: @unchecked Sendable {
    private let pool: OpaquePointer

    init(threads: Int) {
        guard let pool = ckv_pool_create(Int32(max(1, threads))) else { fatalError("out of memory creating the worker pool") }
        self.pool = pool
    }

    deinit { ckv_pool_destroy(pool) }

    /// Threads that share each dispatch, the caller included.
    var threads: Int { Int(ckv_pool_threads(pool)) }

    /// Runs `task(context, i, threads)` for every share i and returns when all are done.
    func run(_ task: ckv_task, _ context: UnsafeMutableRawPointer) {
        ckv_pool_run(pool, task, context)
    }

    /// Runs `body(share, shares)` for every share, the first on the calling thread, and returns
    /// when all are done.
    func run(_ body: (Int, Int) -> Void) {
        withoutActuallyEscaping(body) { body in
            var closure = body
            withUnsafeMutablePointer(to: &closure) { pointer in
                ckv_pool_run(pool, { context, index, count in
                    context!.assumingMemoryBound(to: ((Int, Int) -> Void).self).pointee(Int(index), Int(count))
                }, pointer)
            }
        }
    }
}
