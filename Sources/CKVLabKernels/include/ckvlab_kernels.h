#ifndef CKVLAB_KERNELS_H
#define CKVLAB_KERNELS_H

#include <stddef.h>
#include <stdint.h>

/// kvlab's decode kernels: matrix-vector products that read each weight type in its own block
/// layout, with integer dot products against an activation vector quantized once per input, and
/// the persistent worker pool that splits their rows. The vector path is chosen when this file is
/// compiled (-march=native): AVX-512 VNNI, AVX2, or portable C.

/// Weight types, as kvlab's WeightType (the numbers are ggml's type ids).
enum {
    CKV_F32 = 0, CKV_F16 = 1, CKV_Q4_0 = 2, CKV_Q4_1 = 3, CKV_Q8_0 = 8, CKV_Q4_K = 12, CKV_Q6_K = 14, CKV_BF16 = 30,
};

/// An activation vector quantized in blocks of 32 (as ggml's q8_0 / q8_1 activations, with fp32
/// scales): `qs[i] = round(x[i] / d[b])` for i in block b, `d[b] = max |x| / 127` over the block,
/// and `s[b] = d[b] · Σ qs` over the block (what offset weight types need).
typedef struct {
    int8_t *qs;
    float *d;
    float *s;
} ckv_activation;

/// Bytes a quantized activation of `n` elements (a multiple of 32) takes: what a kernel reads.
size_t ckv_activation_bytes(int n);

/// Quantizes `n` floats (a multiple of 32) into `a`.
void ckv_quantize_activation(const float *x, int n, ckv_activation a);

/// Whether a weight type has a kernel here (the others are decoded to floats by the caller).
int ckv_has_kernel(int type);

/// Whether a weight type's kernel reads the quantized activation (else the float one).
int ckv_uses_quantized_activation(int type);

/// One matrix of a product: `rows × cols` in `type`, rows `row_bytes` apart, results to `out`.
typedef struct {
    const void *weights;
    size_t row_bytes;
    int type;
    int rows;
    float *out;
} ckv_matrix;

/// Up to three matrices applied to the same input (q/k/v, gate/up): their rows are split over the
/// workers as one range, so one dispatch serves them all.
typedef struct {
    ckv_matrix matrices[3];
    int count;
    int cols;
    const float *x;
    ckv_activation activation;
} ckv_matvec;

/// Computes share `index` of `count` of a matvec: a contiguous range of its rows, the same for a
/// given count, each row summed in one fixed order (so results do not depend on the count).
void ckv_matvec_part(void *matvec, int index, int count);

/// The dot product of one row of `type` with the input (float or quantized, as the type needs).
float ckv_dot_row(int type, const void *row, int cols, const float *x, ckv_activation a);

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

/// The vector path compiled in: "avx512-vnni", "avx2" or "portable".
const char *ckv_vector_path(void);

#endif
