// Integer products of eight weight rows at a time with one or more quantized inputs (prefill, and
// decode for the types without a row kernel), compiled once per vector path (see vector.h). The
// rows are unpacked (unpack.c) into a tile of unsigned 8-bit codes, four consecutive codes of each
// of the eight rows side by side, so one 32-byte load serves eight rows and the vector lanes are
// the rows: no horizontal sums, and a row's scale is a lane of a vector load.

/// out[t·stride + r] for the tile's rows r < count and the T inputs from `first`:
/// Σ_half scale · d_a · Σ code·a + offset · h_a, where h_a = d_a · Σ a over the half.
/// Without VNNI, the byte multiply-add's 16-bit sums of `steps` of the 8 code vectors of a block
/// are added before they are widened (ckv_tile_steps: as many as the codes' range lets 16 bits hold).
/// The wide types' codes (q8_0, iq4: a signed value + 128) take the sign trick instead without VNNI
/// (dot_wide_acc), which multiplies the signed values, so their offset (−128·scale) is left out.
static inline __attribute__((always_inline)) void tile_product(const uint8_t *tile, int cols, ckv_activation a, int first,
                                                              const int T, const int per_half, const int wide, const int steps,
                                                              float *out, size_t stride, int count) {
    const int nb = cols / 32;
    const uint8_t *codes = tile;
    const float *scales = (const float *)(tile + (size_t)CKV_TILE_ROWS * cols), *offsets = scales + (size_t)(cols / 16) * CKV_TILE_ROWS;
    float result[4][CKV_TILE_ROWS];
#if defined(CKV_X86)
    __m256 acc[4];
    for (int t = 0; t < T; t++) acc[t] = _mm256_setzero_ps();
    for (int b = 0; b < nb; b++) {
        __m256i lo[4], hi[4], part[4];
        for (int t = 0; t < T; t++) lo[t] = hi[t] = part[t] = _mm256_setzero_si256();
        for (int k = 0; k < 8; k++) {
            const __m256i w = _mm256_loadu_si256((const __m256i *)(codes + (8 * b + k) * 32));
            const __m256i ws = wide ? wide_signed(w) : w, wm = wide ? wide_magnitude(ws) : w;
            for (int t = 0; t < T; t++) {
                int32_t four;
                memcpy(&four, a.qs + (size_t)(first + t) * cols + 32 * b + 4 * k, 4);
                const __m256i y = _mm256_set1_epi32(four);
                if (wide) {
                    lo[t] = dot_wide_acc(lo[t], w, ws, wm, y);
                    continue;
                }
                part[t] = dot_short_acc(part[t], w, y);
                if ((k + 1) % steps) continue;
                if (per_half && k >= 4) hi[t] = _mm256_add_epi32(hi[t], dot_short_widen(part[t]));
                else lo[t] = _mm256_add_epi32(lo[t], dot_short_widen(part[t]));
                part[t] = _mm256_setzero_si256();
            }
        }
        const __m256 s0 = _mm256_loadu_ps(scales + 16 * b), o0 = _mm256_loadu_ps(offsets + 16 * b);
        if (per_half) {
            const __m256 s1 = _mm256_loadu_ps(scales + 16 * b + 8), o1 = _mm256_loadu_ps(offsets + 16 * b + 8);
            for (int t = 0; t < T; t++) {
                const float *h = a.h + (size_t)(first + t) * (cols / 16) + 2 * b;
                const __m256 d = _mm256_set1_ps(a.d[(size_t)(first + t) * nb + b]);
                acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(lo[t]), _mm256_mul_ps(s0, d), acc[t]);
                acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(hi[t]), _mm256_mul_ps(s1, d), acc[t]);
                acc[t] = _mm256_fmadd_ps(o0, _mm256_set1_ps(h[0]), acc[t]);
                acc[t] = _mm256_fmadd_ps(o1, _mm256_set1_ps(h[1]), acc[t]);
            }
        } else {
            for (int t = 0; t < T; t++) {
                const size_t at = (size_t)(first + t) * nb + b;
                acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(lo[t]), _mm256_mul_ps(s0, _mm256_set1_ps(a.d[at])), acc[t]);
                if (!(wide && CKV_WIDE_SIGNED)) acc[t] = _mm256_fmadd_ps(o0, _mm256_set1_ps(a.s[at]), acc[t]);
            }
        }
    }
    for (int t = 0; t < T; t++) _mm256_storeu_ps(result[t], acc[t]);
#else
    (void)wide;
    (void)steps;
    for (int t = 0; t < T; t++) {
        const int8_t *y = a.qs + (size_t)(first + t) * cols;
        for (int r = 0; r < CKV_TILE_ROWS; r++) {
            float sum = 0;
            for (int b = 0; b < nb; b++) {
                int dot[2] = {0, 0};
                for (int k = 0; k < 8; k++) {
                    const uint8_t *w = codes + (8 * b + k) * 32 + 4 * r;
                    for (int i = 0; i < 4; i++) dot[per_half && k >= 4] += w[i] * y[32 * b + 4 * k + i];
                }
                const float d = a.d[(size_t)(first + t) * nb + b];
                const float *h = a.h + (size_t)(first + t) * (cols / 16) + 2 * b;
                sum += (float)dot[0] * (scales[16 * b + r] * d);
                if (per_half) {
                    sum += (float)dot[1] * (scales[16 * b + 8 + r] * d);
                    sum += offsets[16 * b + r] * h[0] + offsets[16 * b + 8 + r] * h[1];
                } else {
                    sum += offsets[16 * b + r] * a.s[(size_t)(first + t) * nb + b];
                }
            }
            result[t][r] = sum;
        }
    }
#endif
    for (int t = 0; t < T; t++) {
        for (int r = 0; r < count; r++) out[(size_t)(first + t) * stride + r] = result[t][r];
    }
}

/// All inputs of a gemm against one unpacked tile, four at a time.
static void tile_products(const ckv_gemm *g, const uint8_t *tile, float *out, int count, int per_half, int wide, int steps) {
    int t = 0;
#define CKV_TILE_CASE(T, HALF, WIDE, STEPS) tile_product(tile, g->cols, g->activation, t, T, HALF, WIDE, STEPS, out, g->out_stride, count)
#define CKV_TILE_TOKENS(T)                                                                                              \
    if (wide) CKV_TILE_CASE(T, 0, 1, 1);                                                                                \
    else if (per_half && steps >= 4) CKV_TILE_CASE(T, 1, 0, 4);                                                         \
    else if (per_half) CKV_TILE_CASE(T, 1, 0, 2);                                                                       \
    else if (steps >= 8) CKV_TILE_CASE(T, 0, 0, 8);                                                                     \
    else CKV_TILE_CASE(T, 0, 0, 4)
    for (; t + 4 <= g->tokens; t += 4) { CKV_TILE_TOKENS(4); }
    for (; t < g->tokens; t++) { CKV_TILE_TOKENS(1); }
#undef CKV_TILE_TOKENS
#undef CKV_TILE_CASE
}

static void gemm_part(void *context, int index, int count) {
    const ckv_gemm *g = context;
    const int tiles = (g->rows + CKV_TILE_ROWS - 1) / CKV_TILE_ROWS;
    // Smaller than a megabyte for any real row length: a heap allocation per share and call.
    uint8_t *tile = malloc(ckv_tile_bytes(g->cols));
    if (!tile) abort();
    const int per_half = ckv_tile_per_half(g->type), wide = ckv_tile_wide(g->type), steps = ckv_tile_steps(g->type);
    for (int i = tiles * index / count; i < tiles * (index + 1) / count; i++) {
        const int first = i * CKV_TILE_ROWS, rows = g->rows - first < CKV_TILE_ROWS ? g->rows - first : CKV_TILE_ROWS;
        if (g->packed) ckv_unpack_packed_tile(g, i, tile); else ckv_unpack_tile(g, first, rows, tile);
        tile_products(g, tile, g->out + first, rows, per_half, wide, steps);
    }
    free(tile);
}
