// Integer products of eight weight rows at a time (32 on the AVX-512 path) with one or more
// quantized inputs (prefill, and decode for the types without a row kernel), compiled once per
// vector path (see vector.h). The rows are unpacked (unpack.c; interleaved copies below) into a
// tile of unsigned 8-bit codes, four consecutive codes of each of the TILE rows side by side, so
// one 32-byte (64-byte) load serves eight (sixteen) rows and the vector lanes are the rows: no
// horizontal sums, and a row's scale is a lane of a vector load.

/// Rows of this path's tiles: 32 on AVX-512 (two 512-bit vectors' int32 or float lanes), else 8.
#if defined(CKV_VNNI)
#define TILE CKV_TILE_ROWS_WIDE
#else
#define TILE CKV_TILE_ROWS
#endif

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
    const float *scales = (const float *)(tile + (size_t)TILE * cols), *offsets = scales + (size_t)(cols / 16) * TILE;
    float result[4][TILE];
#if defined(CKV_VNNI)
    // The rows in the lanes of V 512-bit vectors, every lane's operations those of the 256-bit
    // kernel below (int32 sums of a block or half, then the same float multiply-adds in the same
    // order), so the results are the AVX2 kernel's bit for bit. Each input's broadcast codes serve
    // V weight vectors.
    enum { V = TILE / 16 };
    (void)steps;
    (void)wide;
    __m512 acc[4][V];
    for (int t = 0; t < T; t++) for (int v = 0; v < V; v++) acc[t][v] = _mm512_setzero_ps();
    for (int b = 0; b < nb; b++) {
        __m512i lo[4][V], hi[4][V];
        for (int t = 0; t < T; t++) for (int v = 0; v < V; v++) lo[t][v] = hi[t][v] = _mm512_setzero_si512();
        for (int k = 0; k < 8; k++) {
            __m512i w[V];
            for (int v = 0; v < V; v++) w[v] = _mm512_loadu_si512((const void *)(codes + (size_t)(8 * b + k) * 4 * TILE + 64 * v));
            for (int t = 0; t < T; t++) {
                int32_t four;
                memcpy(&four, a.qs + (size_t)(first + t) * cols + 32 * b + 4 * k, 4);
                const __m512i y = _mm512_set1_epi32(four);
                for (int v = 0; v < V; v++) {
                    if (per_half && k >= 4) hi[t][v] = _mm512_dpbusd_epi32(hi[t][v], w[v], y);
                    else lo[t][v] = _mm512_dpbusd_epi32(lo[t][v], w[v], y);
                }
            }
        }
        for (int v = 0; v < V; v++) {
            const float *sb = scales + 2 * TILE * b + 16 * v, *ob = offsets + 2 * TILE * b + 16 * v;
            const __m512 s0 = _mm512_loadu_ps(sb), o0 = _mm512_loadu_ps(ob);
            if (per_half) {
                const __m512 s1 = _mm512_loadu_ps(sb + TILE), o1 = _mm512_loadu_ps(ob + TILE);
                for (int t = 0; t < T; t++) {
                    const float *h = a.h + (size_t)(first + t) * (cols / 16) + 2 * b;
                    const __m512 d = _mm512_set1_ps(a.d[(size_t)(first + t) * nb + b]);
                    acc[t][v] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(lo[t][v]), _mm512_mul_ps(s0, d), acc[t][v]);
                    acc[t][v] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(hi[t][v]), _mm512_mul_ps(s1, d), acc[t][v]);
                    acc[t][v] = _mm512_fmadd_ps(o0, _mm512_set1_ps(h[0]), acc[t][v]);
                    acc[t][v] = _mm512_fmadd_ps(o1, _mm512_set1_ps(h[1]), acc[t][v]);
                }
            } else {
                for (int t = 0; t < T; t++) {
                    const size_t at = (size_t)(first + t) * nb + b;
                    acc[t][v] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(lo[t][v]), _mm512_mul_ps(s0, _mm512_set1_ps(a.d[at])), acc[t][v]);
                    acc[t][v] = _mm512_fmadd_ps(o0, _mm512_set1_ps(a.s[at]), acc[t][v]);
                }
            }
        }
    }
    for (int t = 0; t < T; t++) for (int v = 0; v < V; v++) _mm512_storeu_ps(result[t] + 16 * v, acc[t][v]);
#elif defined(CKV_X86)
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
        for (int r = 0; r < TILE; r++) {
            float sum = 0;
            for (int b = 0; b < nb; b++) {
                int dot[2] = {0, 0};
                for (int k = 0; k < 8; k++) {
                    const uint8_t *w = codes + (8 * b + k) * 4 * TILE + 4 * r;
                    for (int i = 0; i < 4; i++) dot[per_half && k >= 4] += w[i] * y[32 * b + 4 * k + i];
                }
                const float d = a.d[(size_t)(first + t) * nb + b];
                const float *h = a.h + (size_t)(first + t) * (cols / 16) + 2 * b;
                sum += (float)dot[0] * (scales[2 * TILE * b + r] * d);
                if (per_half) {
                    sum += (float)dot[1] * (scales[2 * TILE * b + TILE + r] * d);
                    sum += offsets[2 * TILE * b + r] * h[0] + offsets[2 * TILE * b + TILE + r] * h[1];
                } else {
                    sum += offsets[2 * TILE * b + r] * a.s[(size_t)(first + t) * nb + b];
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

/// Unpacks blocks [from, to) (of 256 columns, q4_0's of 32) of 8-row group `group` of a packed
/// (ckv_pack) q4_0, q4_K or q6_K matrix into rows [8·slot, 8·slot + 8) of a tile: the codes,
/// scales and offsets unpack.c gives the stored rows (a kernel test compares them), eight rows at
/// a time in vector lanes on x86.
static void unpack_packed_tile(const ckv_gemm *g, int group, uint8_t *tile, int slot, int from, int to) {
    const int cols = g->cols, vector = 4 * TILE;
    float *scales = (float *)(tile + (size_t)TILE * cols) + CKV_TILE_ROWS * slot, *offsets = scales + (size_t)(cols / 16) * TILE;
    uint8_t *codes = tile + 32 * slot;
    const uint8_t *p = (const uint8_t *)g->weights + (size_t)group * CKV_TILE_ROWS * g->row_bytes
        + (size_t)from * (g->type == CKV_Q6_K ? 1680 : g->type == CKV_Q4_0 ? 144 : 1152);
#if defined(CKV_X86)
    const __m256i m4 = _mm256_set1_epi8(0x0f);
#endif
    if (g->type == CKV_Q6_K) {
        for (int s = from; s < to; s++, p += 1680) {
#if defined(CKV_X86)
            const __m256 d = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p)), minus32 = _mm256_set1_ps(-32);
            for (int k = 0; k < 16; k++) {
                const __m256i scale = _mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(p + 16 + 8 * k)));
                const __m256 dl = _mm256_mul_ps(d, _mm256_cvtepi32_ps(scale));
                _mm256_storeu_ps(scales + TILE * (16 * s + k), dl);
                _mm256_storeu_ps(offsets + TILE * (16 * s + k), _mm256_mul_ps(minus32, dl));
            }
#else
            for (int r = 0; r < CKV_TILE_ROWS; r++) {
                const float d = ckv_half_to_float((uint16_t)(p[2 * r] | p[2 * r + 1] << 8));
                for (int k = 0; k < 16; k++) {
                    const float dl = d * (float)(int8_t)p[16 + 8 * k + r];
                    scales[TILE * (16 * s + k) + r] = dl;
                    offsets[TILE * (16 * s + k) + r] = -32 * dl;
                }
            }
#endif
            // Tile group 8j + 4w + v: four elements of each row from vector v's nibble w and the
            // high vector w's bits 2v.
            for (int j = 0; j < 8; j++) {
                const uint8_t *c = p + 144 + 192 * j;
                for (int w = 0; w < 2; w++) {
#if defined(CKV_X86)
                    const __m256i m2 = _mm256_set1_epi8(0x30), h = _mm256_loadu_si256((const __m256i *)(c + 128 + 32 * w));
                    // Bits 2v–2v+1 of the high vector moved to bits 4–5.
                    const __m256i high[4] = {_mm256_and_si256(_mm256_slli_epi16(h, 4), m2), _mm256_and_si256(_mm256_slli_epi16(h, 2), m2),
                                             _mm256_and_si256(h, m2), _mm256_and_si256(_mm256_srli_epi16(h, 2), m2)};
                    for (int v = 0; v < 4; v++) {
                        const __m256i q = _mm256_loadu_si256((const __m256i *)(c + 32 * v));
                        const __m256i nibble = _mm256_and_si256(w ? _mm256_srli_epi16(q, 4) : q, m4);
                        _mm256_storeu_si256((__m256i *)(codes + (size_t)vector * (64 * s + 8 * j + 4 * w + v)), _mm256_or_si256(nibble, high[v]));
                    }
#else
                    for (int v = 0; v < 4; v++) {
                        uint8_t *t = codes + (size_t)vector * (64 * s + 8 * j + 4 * w + v);
                        for (int i = 0; i < 32; i++) t[i] = (uint8_t)(((c[32 * v + i] >> (4 * w)) & 0xf) | ((c[128 + 32 * w + i] >> (2 * v)) & 3) << 4);
                    }
#endif
                }
            }
        }
        return;
    }
    // Tile code group q (four elements of each row, 32 bytes) from a packed vector's low or high nibbles.
    const int blocks = g->type == CKV_Q4_0 ? 1 : 8, bytes = g->type == CKV_Q4_0 ? 144 : 1152;
    for (int s = from; s < to; s++, p += bytes) {
        const uint8_t *packed = p + (blocks == 1 ? 16 : 128);
#if defined(CKV_X86)
        const __m256 d = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p));
        if (blocks == 1) {
            for (int h = 0; h < 2; h++) {
                _mm256_storeu_ps(scales + TILE * (2 * s + h), d);
                _mm256_storeu_ps(offsets + TILE * (2 * s + h), _mm256_mul_ps(_mm256_set1_ps(-8), d));
            }
        } else {
            // get_scale_min_k4 of eight rows on their 32-bit words, as dot8_q4_K does: each lane's
            // bytes are scales 0–3, scales 4–7, mins 0–3, mins 4–7 of its row.
            const __m256 minus_dmin = _mm256_xor_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(p + 16))), _mm256_set1_ps(-0.0f));
            const __m256i low6 = _mm256_set1_epi32(0x3f3f3f3f), low4 = _mm256_set1_epi32(0x0f0f0f0f), top2 = _mm256_set1_epi32(0x03030303);
            const __m256i u0 = _mm256_loadu_si256((const __m256i *)(p + 32)), u1 = _mm256_loadu_si256((const __m256i *)(p + 64));
            const __m256i u2 = _mm256_loadu_si256((const __m256i *)(p + 96)), byte = _mm256_set1_epi32(0xff);
            const __m256i words[4] = {
                _mm256_and_si256(u0, low6),
                _mm256_or_si256(_mm256_and_si256(u2, low4), _mm256_slli_epi32(_mm256_and_si256(_mm256_srli_epi32(u0, 6), top2), 4)),
                _mm256_and_si256(u1, low6),
                _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi32(u2, 4), low4), _mm256_slli_epi32(_mm256_and_si256(_mm256_srli_epi32(u1, 6), top2), 4)),
            };
            for (int j = 0; j < 8; j++) {
                const int shift = 8 * (j % 4);
                const __m256 scale = _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_and_si256(_mm256_srli_epi32(words[j / 4], shift), byte)));
                const __m256 offset = _mm256_mul_ps(minus_dmin, _mm256_cvtepi32_ps(_mm256_and_si256(_mm256_srli_epi32(words[2 + j / 4], shift), byte)));
                for (int h = 0; h < 2; h++) {
                    _mm256_storeu_ps(scales + TILE * (16 * s + 2 * j + h), scale);
                    _mm256_storeu_ps(offsets + TILE * (16 * s + 2 * j + h), offset);
                }
            }
        }
#else
        uint8_t sc[CKV_TILE_ROWS][8], mn[CKV_TILE_ROWS][8];
        for (int r = 0; r < CKV_TILE_ROWS; r++) {
            const float d = ckv_half_to_float((uint16_t)(p[2 * r] | p[2 * r + 1] << 8));
            if (blocks == 1) {
                for (int h = 0; h < 2; h++) {
                    scales[TILE * (2 * s + h) + r] = d;
                    offsets[TILE * (2 * s + h) + r] = -8 * d;
                }
            } else {
                uint8_t q[12];
                for (int w = 0; w < 3; w++) memcpy(q + 4 * w, p + 32 + 32 * w + 4 * r, 4);
                ckv_scales_mins_k4(q, sc[r], mn[r]);
                const float dmin = ckv_half_to_float((uint16_t)(p[16 + 2 * r] | p[17 + 2 * r] << 8));
                for (int j = 0; j < 8; j++) {
                    for (int h = 0; h < 2; h++) {
                        scales[TILE * (16 * s + 2 * j + h) + r] = d * (float)sc[r][j];
                        offsets[TILE * (16 * s + 2 * j + h) + r] = -dmin * (float)mn[r][j];
                    }
                }
            }
        }
#endif
        // Packed vector g of a 32-column block (q4_0) or sub-block pair k (q4_K, g = 8k + v):
        // low nibbles are tile group 8·(its block) + v, high nibbles that + 4 (q4_0) or the next
        // sub-block's group v (q4_K).
        for (int v = 0; v < 4 * blocks; v++) {
            const int k = v / 8, first = blocks == 1 ? 8 * s + v : 64 * s + 16 * k + v % 8;
            const int second = blocks == 1 ? first + 4 : first + 8;
            uint8_t *low = codes + (size_t)vector * first, *high = codes + (size_t)vector * second;
#if defined(CKV_X86)
            const __m256i q = _mm256_loadu_si256((const __m256i *)(packed + 32 * v));
            _mm256_storeu_si256((__m256i *)low, _mm256_and_si256(q, m4));
            _mm256_storeu_si256((__m256i *)high, _mm256_and_si256(_mm256_srli_epi16(q, 4), m4));
#else
            for (int i = 0; i < 32; i++) {
                low[i] = packed[32 * v + i] & 0xf;
                high[i] = packed[32 * v + i] >> 4;
            }
#endif
        }
    }
}

static void gemm_part(void *context, int index, int count) {
    const ckv_gemm *g = context;
    const int tiles = (g->rows + TILE - 1) / TILE;
    // Smaller than a megabyte for any real row length: a heap allocation per share and call.
    uint8_t *tile = malloc(ckv_tile_bytes(g->cols, TILE));
    if (!tile) abort();
    const int per_half = ckv_tile_per_half(g->type), wide = ckv_tile_wide(g->type), steps = ckv_tile_steps(g->type);
    for (int i = tiles * index / count; i < tiles * (index + 1) / count; i++) {
        const int first = i * TILE, rows = g->rows - first < TILE ? g->rows - first : TILE;
        if (g->packed) {
            // A packed matrix has whole 8-row groups; a wide tile's missing ones are zero. 256
            // columns of every group at a time, as unpack.c does, for a tall tile of long rows.
            if (rows < TILE) memset(tile, 0, ckv_tile_bytes(g->cols, TILE));
            const int units = g->type == CKV_Q4_0 ? g->cols / 32 : g->cols / 256, step = g->type == CKV_Q4_0 ? 8 : 1;
            for (int u = 0; u < units; u += step) {
                for (int slot = 0; slot < rows / CKV_TILE_ROWS; slot++) {
                    unpack_packed_tile(g, first / CKV_TILE_ROWS + slot, tile, slot, u, units - u < step ? units : u + step);
                }
            }
        } else {
            ckv_unpack_tile(g, first, rows, tile, TILE);
        }
        tile_products(g, tile, g->out + first, rows, per_half, wide, steps);
    }
    free(tile);
}

#undef TILE
