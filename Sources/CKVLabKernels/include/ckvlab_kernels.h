#ifndef CKVLAB_KERNELS_H
#define CKVLAB_KERNELS_H

#include <stddef.h>
#include <stdint.h>

/// kvlab's weight kernels: matrix-vector products (decode) that read each weight type in its own
/// block layout, with integer dot products against an activation vector quantized once per input;
/// integer matrix products of eight rows at a time with many inputs (prefill); and the persistent
/// worker pool that splits their rows. Each is compiled for three vector paths (AVX-512 VNNI, AVX2,
/// portable C), one chosen at run time from the CPU's features or the KVLAB_KERNELS variable.

/// Weight types, as kvlab's WeightType (the numbers are ggml's type ids).
enum {
    CKV_F32 = 0, CKV_F16 = 1, CKV_Q4_0 = 2, CKV_Q4_1 = 3, CKV_Q5_0 = 6, CKV_Q5_1 = 7, CKV_Q8_0 = 8, CKV_Q2_K = 10,
    CKV_Q3_K = 11, CKV_Q4_K = 12, CKV_Q5_K = 13, CKV_Q6_K = 14, CKV_IQ4_NL = 20, CKV_IQ4_XS = 23, CKV_BF16 = 30,
};

/// Vector paths. CKV_PATH_ACTIVE (0, a zeroed job's) is the one chosen at run time.
enum { CKV_PATH_ACTIVE = 0, CKV_PATH_PORTABLE = 1, CKV_PATH_AVX2 = 2, CKV_PATH_VNNI = 3 };

/// Whether this CPU runs a path.
int ckv_path_supported(int path);

/// The path the kernels run on: KVLAB_KERNELS (portable, avx2, avx512-vnni or vnni) if set, else
/// the best this CPU supports. Chosen on first use; a bad or unsupported name exits with an error.
int ckv_active_path(void);

/// "portable", "avx2" or "avx512-vnni".
const char *ckv_path_name(int path);

/// An activation vector quantized in blocks of 32 (as ggml's q8_0 / q8_1 activations, with fp32
/// scales): `qs[i] = round(x[i] / d[b])` for i in block b, `d[b] = max |x| / 127` over the block,
/// `s[b] = d[b] · Σ qs` over the block and `h[2b + k] = d[b] · Σ qs` over its half k (what offset
/// weight types need). Several inputs lie one after the other (input t at qs + t·n, d + t·n/32, ...).
/// A block too small for 1 / d[b] to be finite (largest magnitude under about 7.5e-37) is all zeros.
typedef struct {
    int8_t *qs;
    float *d;
    float *s;
    float *h;
} ckv_activation;

/// Bytes a quantized activation of `n` elements (a multiple of 32) takes: what a row kernel reads.
size_t ckv_activation_bytes(int n);

/// Quantizes `n` floats (a multiple of 32) into `a`.
void ckv_quantize_activation(const float *x, int n, ckv_activation a);

/// Whether a weight type has a row kernel here (the other quantized types go through tiles).
int ckv_has_kernel(int type);

/// Whether a weight type's kernel reads the quantized activation (else the float one).
int ckv_uses_quantized_activation(int type);

/// Whether a matrix of `type` with `rows` rows has the decode kernels' interleaved layout: q4_0, q4_K
/// and q6_K with a multiple of 8 rows (as llama.cpp's q4_0x8 / q4_Kx8 repacking, and q6_K too).
int ckv_can_pack(int type, int rows);

/// Writes `rows × cols` of `type` (rows `row_bytes` apart) into `dst` in the interleaved layout:
/// the same number of bytes, in groups of eight rows (8·row_bytes each) whose blocks lie side by
/// side, so one vector load holds four codes of each of eight rows and the vector lanes are rows.
void ckv_pack(int type, const void *src, int rows, int cols, size_t row_bytes, void *dst);

/// One matrix of a product: `rows × cols` in `type`, rows `row_bytes` apart (or, if `packed`, in
/// ckv_pack's layout), results to `out`.
typedef struct {
    const void *weights;
    size_t row_bytes;
    int type;
    int rows;
    float *out;
    int packed;
} ckv_matrix;

/// Up to three matrices applied to the same input (q/k/v, gate/up): their rows are split over the
/// workers as one range, so one dispatch serves them all.
typedef struct {
    ckv_matrix matrices[3];
    int count;
    int cols;
    const float *x;
    ckv_activation activation;
    int path;
} ckv_matvec;

/// Computes share `index` of `count` of a matvec: a contiguous range of its rows in groups of eight,
/// the same for a given count, each row summed in one fixed order (so results do not depend on the
/// count).
void ckv_matvec_part(void *matvec, int index, int count);

/// The dot product of one row of `type` with the input (float or quantized, as the type needs).
float ckv_dot_row(int path, int type, const void *row, int cols, const float *x, ckv_activation a);

/// Whether a weight type can be unpacked into tiles for ckv_gemm (every quantized type).
int ckv_has_tile(int type);

/// `out[t·out_stride + r] = Σ_c w[r, c] · a_t[c]` for `tokens` quantized inputs: rows unpacked
/// eight (32 on the AVX-512 path) at a time into integer tiles, each tile multiplied with
/// every input; `weights` in ckv_pack's layout if `packed`.
typedef struct {
    const void *weights;
    size_t row_bytes;
    int type;
    int rows;
    int cols;
    int tokens;
    ckv_activation activation;
    float *out;
    size_t out_stride;
    int path;
    int packed;
} ckv_gemm;

/// Computes share `index` of `count` of a gemm: a contiguous range of its tiles, each row's sums
/// in one fixed order (so results do not depend on the count).
void ckv_gemm_part(void *gemm, int index, int count);

/// `n` f16 values → floats, exact (F16C where the active path has it): the batched products'
/// tile decode of f16 weights.
void ckv_decode_f16(const void *src, int n, float *dst);

/// A unit of parallel work: share `index` of `count`.
typedef void (*ckv_task)(void *context, int index, int count);

typedef struct ckv_pool ckv_pool;

/// A pool of `threads - 1` persistent workers (the caller is the last). Workers spin briefly
/// between dispatches, then sleep, so a decode step's back-to-back products do not pay a wakeup.
ckv_pool *ckv_pool_create(int threads);
void ckv_pool_destroy(ckv_pool *pool);
int ckv_pool_threads(const ckv_pool *pool);

/// Runs `task(context, i, threads)` for every i in 0..<threads, i = 0 on the calling thread, and
/// returns when all are done.
void ckv_pool_run(ckv_pool *pool, ckv_task task, void *context);

/// The active path's name.
const char *ckv_vector_path(void);

#endif
