// One vector path's kernels: the including file sets CKV_X86 / CKV_VNNI and CKV_PATH, and wraps
// this in its target attributes.
#include "vector.h"
#include "rows.h"
#include "tiles.h"

/// f16 → f32 (exact on every path): F16C eight at a time on x86.
static void decode_f16(const void *src, int n, float *dst) {
    const uint8_t *w = (const uint8_t *)src;
    int i = 0;
#if CKV_X86
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(w + 2 * i))));
#endif
    for (; i < n; i++) dst[i] = half_to_float(w + 2 * i);
}

const ckv_path CKV_PATH = {CKV_PATH_NAME, quantize_activation, dot_row, matvec_part, gemm_part, decode_f16};
