// The decode kernels, compiled once per vector path (see vector.h): each weight type's row dot
// product against the input (float, or quantized once per product to 8 bits in blocks of 32).

// MARK: - Activation quantization

/// 1 / d for a block scale, or 0 with d set to 0 where d is 0 or too small for 1 / d to be finite
/// (a block whose largest magnitude is under about 7.5e-37 quantizes to zeros, as an all-zero
/// one does, instead of to codes of an infinite scale).
static inline float block_inverse(float *d) {
    const float id = *d != 0 ? 1 / *d : 0;
    if (isinf(id)) {
        *d = 0;
        return 0;
    }
    return id;
}

#if defined(CKV_X86)
static inline int hsum8_epi32(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
    return _mm_cvtsi128_si32(_mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1)));
}

/// The scalar loop below, eight lanes at a time, with the same results: the same max, scale and
/// products, and roundf (halves away from zero) as truncation plus one step away from zero where
/// the truncated part is at least a half (exact: x − trunc(x) is exact in float).
static inline void quantize_block(const float *v, int8_t *qs, float *d_out, int sums[2]) {
    const __m256 magnitude = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    __m256 x[4], amax = _mm256_setzero_ps();
    for (int i = 0; i < 4; i++) {
        x[i] = _mm256_loadu_ps(v + 8 * i);
        // The new value first: a NaN is passed over, as fmaxf does.
        amax = _mm256_max_ps(_mm256_and_ps(x[i], magnitude), amax);
    }
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(amax), _mm256_extractf128_ps(amax, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_movehdup_ps(m));
    float d = _mm_cvtss_f32(m) / 127, id = block_inverse(&d);
    const __m256 scale = _mm256_set1_ps(id), half = _mm256_set1_ps(0.5f), one = _mm256_set1_ps(1.0f);
    __m256i q[4];
    for (int i = 0; i < 4; i++) {
        const __m256 y = _mm256_mul_ps(x[i], scale), t = _mm256_round_ps(y, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
        const __m256 away = _mm256_and_ps(_mm256_cmp_ps(_mm256_and_ps(_mm256_sub_ps(y, t), magnitude), half, _CMP_GE_OQ),
                                          _mm256_or_ps(one, _mm256_andnot_ps(magnitude, y)));
        q[i] = _mm256_cvttps_epi32(_mm256_add_ps(t, away));
    }
    sums[0] = hsum8_epi32(_mm256_add_epi32(q[0], q[1]));
    sums[1] = hsum8_epi32(_mm256_add_epi32(q[2], q[3]));
    // packs interleave 128-bit lanes: dwords [q0 0–3, q1 0–3, q2 0–3, q3 0–3 | q0 4–7, ...] back in order.
    const __m256i bytes = _mm256_packs_epi16(_mm256_packs_epi32(q[0], q[1]), _mm256_packs_epi32(q[2], q[3]));
    _mm256_storeu_si256((__m256i *)qs, _mm256_permutevar8x32_epi32(bytes, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7)));
    *d_out = d;
}
#endif

static void quantize_activation(const float *x, int n, ckv_activation a) {
    for (int b = 0; b < n / 32; b++) {
        int sum[2] = {0, 0};
        float d;
#if defined(CKV_X86)
        quantize_block(x + b * 32, a.qs + b * 32, &d, sum);
#else
        const float *v = x + b * 32;
        float amax = 0;
        for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(v[j]));
        d = amax / 127;
        const float id = block_inverse(&d);
        for (int j = 0; j < 32; j++) {
            const int q = (int)roundf(v[j] * id);
            a.qs[b * 32 + j] = (int8_t)q;
            sum[j / 16] += q;
        }
#endif
        a.d[b] = d;
        a.s[b] = d * (float)(sum[0] + sum[1]);
        a.h[2 * b] = d * (float)sum[0];
        a.h[2 * b + 1] = d * (float)sum[1];
    }
}

// MARK: - Row kernels

static float dot_f32(const float *w, const float *x, int n) {
    int i = 0;
    float sum = 0;
#if defined(CKV_X86)
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    for (; i + 32 <= n; i += 32) {
        a0 = _mm256_fmadd_ps(_mm256_loadu_ps(w + i), _mm256_loadu_ps(x + i), a0);
        a1 = _mm256_fmadd_ps(_mm256_loadu_ps(w + i + 8), _mm256_loadu_ps(x + i + 8), a1);
        a2 = _mm256_fmadd_ps(_mm256_loadu_ps(w + i + 16), _mm256_loadu_ps(x + i + 16), a2);
        a3 = _mm256_fmadd_ps(_mm256_loadu_ps(w + i + 24), _mm256_loadu_ps(x + i + 24), a3);
    }
    for (; i + 8 <= n; i += 8) a0 = _mm256_fmadd_ps(_mm256_loadu_ps(w + i), _mm256_loadu_ps(x + i), a0);
    sum = hsum8(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
#endif
    for (; i < n; i++) sum += w[i] * x[i];
    return sum;
}

static float dot_f16(const uint8_t *w, const float *x, int n) {
    int i = 0;
    float sum = 0;
#if defined(CKV_X86)
    __m256 a0 = _mm256_setzero_ps(), a1 = a0;
    for (; i + 16 <= n; i += 16) {
        a0 = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(w + 2 * i))), _mm256_loadu_ps(x + i), a0);
        a1 = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(w + 2 * i + 16))), _mm256_loadu_ps(x + i + 8), a1);
    }
    sum = hsum8(_mm256_add_ps(a0, a1));
#endif
    for (; i < n; i++) sum += half_to_float(w + 2 * i) * x[i];
    return sum;
}

/// bfloat16: the high half of an f32.
static float dot_bf16(const uint8_t *w, const float *x, int n) {
    int i = 0;
    float sum = 0;
#if defined(CKV_X86)
    __m256 a0 = _mm256_setzero_ps(), a1 = a0;
    for (; i + 16 <= n; i += 16) {
        const __m256i h0 = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(w + 2 * i)));
        const __m256i h1 = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(w + 2 * i + 16)));
        a0 = _mm256_fmadd_ps(_mm256_castsi256_ps(_mm256_slli_epi32(h0, 16)), _mm256_loadu_ps(x + i), a0);
        a1 = _mm256_fmadd_ps(_mm256_castsi256_ps(_mm256_slli_epi32(h1, 16)), _mm256_loadu_ps(x + i + 8), a1);
    }
    sum = hsum8(_mm256_add_ps(a0, a1));
#endif
    for (; i < n; i++) {
        const uint32_t bits = (uint32_t)load16(w + 2 * i) << 16;
        float v;
        memcpy(&v, &bits, 4);
        sum += v * x[i];
    }
    return sum;
}

/// block_q8_0: fp16 d, 32 int8. Σ_b d_w·d_a·Σ w·a.
static float dot_q8_0(const uint8_t *w, int nb, ckv_activation a) {
#if defined(CKV_X86)
    return dot_blocks(w, nb, 34, block_q8_0, -1, 0, a);
#else
    float sum = 0;
    for (int b = 0; b < nb; b++) {
        const uint8_t *p = w + b * 34;
        const int8_t *q = (const int8_t *)(p + 2), *y = a.qs + b * 32;
        int dot = 0;
        for (int j = 0; j < 32; j++) dot += q[j] * y[j];
        sum += half_to_float(p) * a.d[b] * (float)dot;
    }
    return sum;
#endif
}

/// block_q4_0: fp16 d, 16 bytes of nibbles u, values d·(u − 8). Σ_b d_w·(d_a·Σ u·a − 8·s_a).
static float dot_q4_0(const uint8_t *w, int nb, ckv_activation a) {
#if defined(CKV_X86)
    return dot_blocks(w, nb, 18, block_q4_0, 0, -8, a);
#else
    float sum = 0, offset = 0;
    for (int b = 0; b < nb; b++) {
        const uint8_t *p = w + b * 18;
        const int8_t *y = a.qs + b * 32;
        int dot = 0;
        for (int j = 0; j < 16; j++) dot += (p[2 + j] & 0x0f) * y[j] + (p[2 + j] >> 4) * y[j + 16];
        const float d = half_to_float(p);
        sum += d * a.d[b] * (float)dot;
        offset += d * a.s[b];
    }
    return sum - 8 * offset;
#endif
}

/// block_q4_1: fp16 d, fp16 m, 16 bytes of nibbles u, values d·u + m. Σ_b d_w·d_a·Σ u·a + m·s_a.
static float dot_q4_1(const uint8_t *w, int nb, ckv_activation a) {
#if defined(CKV_X86)
    return dot_blocks(w, nb, 20, block_q4_1, 2, 1, a);
#else
    float sum = 0, offset = 0;
    for (int b = 0; b < nb; b++) {
        const uint8_t *p = w + b * 20;
        const int8_t *y = a.qs + b * 32;
        int dot = 0;
        for (int j = 0; j < 16; j++) dot += (p[4 + j] & 0x0f) * y[j] + (p[4 + j] >> 4) * y[j + 16];
        sum += half_to_float(p) * a.d[b] * (float)dot;
        offset += half_to_float(p + 2) * a.s[b];
    }
    return sum + offset;
#endif
}

/// block_q4_K (256 elements): fp16 d, fp16 dmin, 12 bytes of 6-bit scales and mins, 128 bytes of
/// nibbles; sub-block j (32 elements, one activation block) is d·scale_j·u − dmin·min_j.
/// Σ_j d·scale_j·d_a·Σ u·a − dmin·min_j·s_a.
static float dot_q4_K(const uint8_t *w, int nb, ckv_activation a) {
#if defined(CKV_X86)
    // Eight sub-block sums in eight lanes, scaled and accumulated across super-blocks: one
    // horizontal sum per row.
    __m256 acc = _mm256_setzero_ps();
    const __m256i m4 = _mm256_set1_epi8(0x0f);
    for (int b = 0; b < nb; b++) {
        const uint8_t *p = w + b * 144;
        const int8_t *y = a.qs + b * 256;
        __m256i dots[8];
        for (int k = 0; k < 4; k++) {
            const __m256i q = _mm256_loadu_si256((const __m256i *)(p + 16 + 32 * k));
            dots[2 * k] = dot_u8s8(_mm256_and_si256(q, m4), codes(y + 64 * k));
            dots[2 * k + 1] = dot_u8s8(_mm256_and_si256(_mm256_srli_epi16(q, 4), m4), codes(y + 64 * k + 32));
        }
        const __m256 sums = fold8(dots);
        const __m128i packed = scales_mins_k4_packed(p + 4);
        const __m256 sc = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(packed));
        const __m256 mn = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_unpackhi_epi64(packed, packed)));
        const __m256 da = _mm256_mul_ps(_mm256_set1_ps(half_to_float(p)), _mm256_loadu_ps(a.d + b * 8));
        acc = _mm256_fmadd_ps(sums, _mm256_mul_ps(sc, da), acc);
        acc = _mm256_fnmadd_ps(_mm256_mul_ps(mn, _mm256_set1_ps(half_to_float(p + 2))), _mm256_loadu_ps(a.s + b * 8), acc);
    }
    return hsum8(acc);
#else
    float sum = 0, offset = 0;
    for (int b = 0; b < nb; b++) {
        const uint8_t *p = w + b * 144;
        const float d = half_to_float(p), dmin = half_to_float(p + 2);
        uint8_t scales[8], mins[8];
        ckv_scales_mins_k4(p + 4, scales, mins);
        const int8_t *y = a.qs + b * 256;
        const float *ad = a.d + b * 8, *as = a.s + b * 8;
        for (int j = 0; j < 8; j++) {
            const uint8_t *q = p + 16 + 32 * (j / 2);
            const int shift = 4 * (j % 2);
            int dot = 0;
            for (int l = 0; l < 32; l++) dot += ((q[l] >> shift) & 0xf) * y[32 * j + l];
            sum += d * scales[j] * ad[j] * (float)dot;
            offset += dmin * mins[j] * as[j];
        }
    }
    return sum - offset;
#endif
}

/// block_q6_K (256 elements): 128 bytes of low nibbles, 64 of high 2-bit pairs, 16 int8 scales
/// (one per 16 elements), fp16 d; element 128h + 32p + l is d·scale·(u − 32), scale 8h + 2p + l/16.
/// Codes u − 32 are signed bytes, so each half of an activation block is a signed dot product;
/// the four groups of a half super-block fold into eight half-block sums that take their scales
/// as floats, accumulated across super-blocks.
static float dot_q6_K(const uint8_t *w, int nb, ckv_activation a) {
#if defined(CKV_X86)
    __m256 acc = _mm256_setzero_ps();
    const __m256i m4 = _mm256_set1_epi8(0x0f), m2 = _mm256_set1_epi8(0x30), bias = _mm256_set1_epi8(32);
    // Lane order of a fold: [g0 g1 g2 g3 | g0 g1 g2 g3] for the first and second halves of the groups.
    const __m256i scale_order = _mm256_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7);
    for (int b = 0; b < nb; b++) {
        const uint8_t *p = w + b * 210;
        const __m256 d = _mm256_set1_ps(half_to_float(p + 208));
        const int8_t *y = a.qs + b * 256;
        for (int h = 0; h < 2; h++) {
            const __m256i ql0 = _mm256_loadu_si256((const __m256i *)(p + 64 * h));
            const __m256i ql1 = _mm256_loadu_si256((const __m256i *)(p + 64 * h + 32));
            const __m256i qh = _mm256_loadu_si256((const __m256i *)(p + 128 + 32 * h));
            __m256i q[4];
            q[0] = _mm256_or_si256(_mm256_and_si256(ql0, m4), _mm256_and_si256(_mm256_slli_epi16(qh, 4), m2));
            q[1] = _mm256_or_si256(_mm256_and_si256(ql1, m4), _mm256_and_si256(_mm256_slli_epi16(qh, 2), m2));
            q[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), m4), _mm256_and_si256(qh, m2));
            q[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), m4), _mm256_and_si256(_mm256_srli_epi16(qh, 2), m2));
            __m256i dots[4];
            for (int g = 0; g < 4; g++) dots[g] = dot_s8s8(_mm256_sub_epi8(q[g], bias), codes(y + 128 * h + 32 * g));
            const __m256 sums = _mm256_cvtepi32_ps(_mm256_hadd_epi32(_mm256_hadd_epi32(dots[0], dots[1]), _mm256_hadd_epi32(dots[2], dots[3])));
            const __m256i sc = _mm256_permutevar8x32_epi32(
                _mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(p + 192 + 8 * h))), scale_order);
            const __m128 ad = _mm_loadu_ps(a.d + b * 8 + 4 * h);
            acc = _mm256_fmadd_ps(sums, _mm256_mul_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(sc), d), _mm256_set_m128(ad, ad)), acc);
        }
    }
    return hsum8(acc);
#else
    float sum = 0;
    for (int b = 0; b < nb; b++) {
        const uint8_t *p = w + b * 210;
        const float d = half_to_float(p + 208);
        const int8_t *scales = (const int8_t *)(p + 192);
        const int8_t *y = a.qs + b * 256;
        const float *ad = a.d + b * 8;
        for (int h = 0; h < 2; h++) {
            for (int g = 0; g < 4; g++) {
                int dot[2] = {0, 0};
                for (int l = 0; l < 32; l++) {
                    const uint8_t low = p[64 * h + l + 32 * (g % 2)];
                    const int nibble = g < 2 ? low & 0xf : low >> 4;
                    const int high = (p[128 + 32 * h + l] >> (2 * g)) & 3;
                    dot[l / 16] += ((nibble | high << 4) - 32) * y[128 * h + 32 * g + l];
                }
                const int8_t *sc = scales + 8 * h + 2 * g;
                sum += d * ad[4 * h + g] * (float)(sc[0] * dot[0] + sc[1] * dot[1]);
            }
        }
    }
    return sum;
#endif
}

// MARK: - Kernels of eight interleaved rows (ckv_pack's layout)

/// q4_0x8: the eight rows of a packed group, each in its own lane. Σ_b d_w·(d_a·Σ u·a − 8·s_a).
static void dot8_q4_0(const uint8_t *g, int nb, ckv_activation a, float out[CKV_TILE_ROWS]) {
#if defined(CKV_X86)
    __m256 acc = _mm256_setzero_ps(), offset = _mm256_setzero_ps();
    const __m256i m4 = _mm256_set1_epi8(0x0f);
    for (int b = 0; b < nb; b++) {
        const uint8_t *p = g + 144 * b;
        const int8_t *y = a.qs + 32 * b;
        prefetch_ahead(p, 144);
        // Eight steps of 4-bit codes: one widening per block.
        __m256i low = _mm256_setzero_si256(), high = low;
        for (int v = 0; v < 4; v++) {
            const __m256i q = _mm256_loadu_si256((const __m256i *)(p + 16 + 32 * v));
            int32_t y0, y1;
            memcpy(&y0, y + 4 * v, 4);
            memcpy(&y1, y + 16 + 4 * v, 4);
            low = dot_short_acc(low, _mm256_and_si256(q, m4), _mm256_set1_epi32(y0));
            high = dot_short_acc(high, _mm256_and_si256(_mm256_srli_epi16(q, 4), m4), _mm256_set1_epi32(y1));
        }
        const __m256 d = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p));
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot_short_widen(dot_short_add(low, high))), _mm256_mul_ps(d, _mm256_set1_ps(a.d[b])), acc);
        offset = _mm256_fmadd_ps(d, _mm256_set1_ps(a.s[b]), offset);
    }
    _mm256_storeu_ps(out, _mm256_fnmadd_ps(_mm256_set1_ps(8), offset, acc));
#else
    for (int r = 0; r < CKV_TILE_ROWS; r++) {
        float sum = 0, offset = 0;
        for (int b = 0; b < nb; b++) {
            const uint8_t *p = g + 144 * b;
            const int8_t *y = a.qs + 32 * b;
            int dot = 0;
            for (int v = 0; v < 4; v++) {
                for (int i = 0; i < 4; i++) {
                    const uint8_t q = p[16 + 32 * v + 4 * r + i];
                    dot += (q & 0xf) * y[4 * v + i] + (q >> 4) * y[16 + 4 * v + i];
                }
            }
            const float d = half_to_float(p + 2 * r);
            sum += d * a.d[b] * (float)dot;
            offset += d * a.s[b];
        }
        out[r] = sum - 8 * offset;
    }
#endif
}

/// q4_Kx8: the eight rows of a packed group, each in its own lane. Per super-block,
/// d·Σ_j scale_j·d_a·Σ u·a − dmin·Σ_j min_j·s_a, the sub-block sums scaled in float lanes.
static void dot8_q4_K(const uint8_t *g, int nb, ckv_activation a, float out[CKV_TILE_ROWS]) {
#if defined(CKV_X86)
    __m256 acc = _mm256_setzero_ps();
    const __m256i m4 = _mm256_set1_epi8(0x0f), byte = _mm256_set1_epi32(0xff);
    const __m256i low6 = _mm256_set1_epi32(0x3f3f3f3f), low4 = _mm256_set1_epi32(0x0f0f0f0f), top2 = _mm256_set1_epi32(0x03030303);
    for (int b = 0; b < nb; b++) {
        const uint8_t *p = g + 1152 * b;
        const int8_t *y = a.qs + 256 * b;
        const float *ad = a.d + 8 * b, *as = a.s + 8 * b;
        prefetch_ahead(p, 128);
        // get_scale_min_k4 for eight rows at once, on their 32-bit words: each lane's four bytes
        // are scales 0–3, scales 4–7, mins 0–3, mins 4–7 of its row.
        const __m256i u0 = _mm256_loadu_si256((const __m256i *)(p + 32)), u1 = _mm256_loadu_si256((const __m256i *)(p + 64));
        const __m256i u2 = _mm256_loadu_si256((const __m256i *)(p + 96));
        const __m256i words[4] = {
            _mm256_and_si256(u0, low6),
            _mm256_or_si256(_mm256_and_si256(u2, low4), _mm256_slli_epi32(_mm256_and_si256(_mm256_srli_epi32(u0, 6), top2), 4)),
            _mm256_and_si256(u1, low6),
            _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi32(u2, 4), low4), _mm256_slli_epi32(_mm256_and_si256(_mm256_srli_epi32(u1, 6), top2), 4)),
        };
        __m256 sum = _mm256_setzero_ps(), mins = _mm256_setzero_ps();
        for (int k = 0; k < 4; k++) {
            const uint8_t *codes = p + 128 + 256 * k;
            prefetch_ahead(codes, 256);
            __m256i lows[2] = {_mm256_setzero_si256(), _mm256_setzero_si256()}, highs[2] = {lows[0], lows[0]};
            for (int v = 0; v < 8; v++) {
                const __m256i q = _mm256_loadu_si256((const __m256i *)(codes + 32 * v));
                int32_t y0, y1;
                memcpy(&y0, y + 64 * k + 4 * v, 4);
                memcpy(&y1, y + 64 * k + 32 + 4 * v, 4);
                lows[v & 1] = dot_short_acc(lows[v & 1], _mm256_and_si256(q, m4), _mm256_set1_epi32(y0));
                highs[v & 1] = dot_short_acc(highs[v & 1], _mm256_and_si256(_mm256_srli_epi16(q, 4), m4), _mm256_set1_epi32(y1));
            }
            // Each sub-block's eight steps of 4-bit codes widened once.
            const __m256i low = dot_short_widen(dot_short_add(lows[0], lows[1])), high = dot_short_widen(dot_short_add(highs[0], highs[1]));
            for (int p2 = 0; p2 < 2; p2++) {
                const int j = 2 * k + p2, shift = 8 * (j % 4);
                const __m256 scale = _mm256_cvtepi32_ps(_mm256_and_si256(_mm256_srli_epi32(words[j / 4], shift), byte));
                const __m256 min = _mm256_cvtepi32_ps(_mm256_and_si256(_mm256_srli_epi32(words[2 + j / 4], shift), byte));
                sum = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p2 ? high : low), _mm256_mul_ps(scale, _mm256_set1_ps(ad[j])), sum);
                mins = _mm256_fmadd_ps(min, _mm256_set1_ps(as[j]), mins);
            }
        }
        const __m256 d = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p));
        const __m256 dmin = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(p + 16)));
        acc = _mm256_fmadd_ps(d, sum, acc);
        acc = _mm256_fnmadd_ps(dmin, mins, acc);
    }
    _mm256_storeu_ps(out, acc);
#else
    for (int r = 0; r < CKV_TILE_ROWS; r++) {
        float total = 0;
        for (int b = 0; b < nb; b++) {
            const uint8_t *p = g + 1152 * b;
            const int8_t *y = a.qs + 256 * b;
            uint8_t q[12], scales[8], mins[8];
            for (int w = 0; w < 3; w++) memcpy(q + 4 * w, p + 32 + 32 * w + 4 * r, 4);
            ckv_scales_mins_k4(q, scales, mins);
            float sum = 0, offset = 0;
            for (int j = 0; j < 8; j++) {
                int dot = 0;
                for (int v = 0; v < 8; v++) {
                    for (int i = 0; i < 4; i++) {
                        const uint8_t c = p[128 + 256 * (j / 2) + 32 * v + 4 * r + i];
                        dot += ((c >> (4 * (j % 2))) & 0xf) * y[32 * j + 4 * v + i];
                    }
                }
                sum += (float)scales[j] * a.d[8 * b + j] * (float)dot;
                offset += (float)mins[j] * a.s[8 * b + j];
            }
            total += half_to_float(p + 2 * r) * sum - half_to_float(p + 16 + 2 * r) * offset;
        }
        out[r] = total;
    }
#endif
}

/// q6_Kx8: the eight rows of a packed group, each in its own lane. Per 16-element half,
/// d·scale·(d_a·Σ u·a − 32·h_a) with 6-bit codes u.
static void dot8_q6_K(const uint8_t *g, int nb, ckv_activation a, float out[CKV_TILE_ROWS]) {
#if defined(CKV_X86)
    __m256 acc = _mm256_setzero_ps();
    const __m256i m4 = _mm256_set1_epi8(0x0f), m2 = _mm256_set1_epi8(0x30);
    for (int b = 0; b < nb; b++) {
        const uint8_t *p = g + 1680 * b;
        const int8_t *y = a.qs + 256 * b;
        prefetch_ahead(p, 144);
        __m256 sum = _mm256_setzero_ps(), offset = _mm256_setzero_ps();
        for (int j = 0; j < 8; j++) {
            const uint8_t *c = p + 144 + 192 * j;
            prefetch_ahead(c, 192);
            const __m256i h0 = _mm256_loadu_si256((const __m256i *)(c + 128)), h1 = _mm256_loadu_si256((const __m256i *)(c + 160));
            // The high bits of group v moved to bits 4–5.
            const __m256i high0[4] = {_mm256_and_si256(_mm256_slli_epi16(h0, 4), m2), _mm256_and_si256(_mm256_slli_epi16(h0, 2), m2),
                                      _mm256_and_si256(h0, m2), _mm256_and_si256(_mm256_srli_epi16(h0, 2), m2)};
            const __m256i high1[4] = {_mm256_and_si256(_mm256_slli_epi16(h1, 4), m2), _mm256_and_si256(_mm256_slli_epi16(h1, 2), m2),
                                      _mm256_and_si256(h1, m2), _mm256_and_si256(_mm256_srli_epi16(h1, 2), m2)};
            // 6-bit codes: a byte multiply-add pair is at most 2·63·127, so two steps are widened at once.
            __m256i low = _mm256_setzero_si256(), high = low;
            for (int v = 0; v < 4; v += 2) {
                __m256i low2 = _mm256_setzero_si256(), high2 = low2;
                for (int u = v; u < v + 2; u++) {
                    const __m256i q = _mm256_loadu_si256((const __m256i *)(c + 32 * u));
                    int32_t y0, y1;
                    memcpy(&y0, y + 32 * j + 4 * u, 4);
                    memcpy(&y1, y + 32 * j + 16 + 4 * u, 4);
                    low2 = dot_short_acc(low2, _mm256_or_si256(_mm256_and_si256(q, m4), high0[u]), _mm256_set1_epi32(y0));
                    high2 = dot_short_acc(high2, _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(q, 4), m4), high1[u]), _mm256_set1_epi32(y1));
                }
                low = _mm256_add_epi32(low, dot_short_widen(low2));
                high = _mm256_add_epi32(high, dot_short_widen(high2));
            }
            const __m256 s0 = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(p + 16 + 16 * j))));
            const __m256 s1 = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(p + 24 + 16 * j))));
            const __m256 da = _mm256_set1_ps(a.d[8 * b + j]);
            sum = _mm256_fmadd_ps(_mm256_cvtepi32_ps(low), _mm256_mul_ps(s0, da), sum);
            sum = _mm256_fmadd_ps(_mm256_cvtepi32_ps(high), _mm256_mul_ps(s1, da), sum);
            offset = _mm256_fmadd_ps(s0, _mm256_set1_ps(a.h[16 * b + 2 * j]), offset);
            offset = _mm256_fmadd_ps(s1, _mm256_set1_ps(a.h[16 * b + 2 * j + 1]), offset);
        }
        const __m256 d = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p));
        acc = _mm256_fmadd_ps(d, _mm256_fnmadd_ps(_mm256_set1_ps(32), offset, sum), acc);
    }
    _mm256_storeu_ps(out, acc);
#else
    for (int r = 0; r < CKV_TILE_ROWS; r++) {
        float total = 0;
        for (int b = 0; b < nb; b++) {
            const uint8_t *p = g + 1680 * b;
            const int8_t *y = a.qs + 256 * b;
            float sum = 0;
            for (int j = 0; j < 8; j++) {
                const uint8_t *c = p + 144 + 192 * j;
                for (int w = 0; w < 2; w++) {
                    int dot = 0;
                    for (int v = 0; v < 4; v++) {
                        for (int i = 0; i < 4; i++) {
                            const int u = ((c[32 * v + 4 * r + i] >> (4 * w)) & 0xf) | ((c[128 + 32 * w + 4 * r + i] >> (2 * v)) & 3) << 4;
                            dot += u * y[32 * j + 16 * w + 4 * v + i];
                        }
                    }
                    const float scale = (float)(int8_t)p[16 + 8 * (2 * j + w) + r];
                    sum += scale * (a.d[8 * b + j] * (float)dot - 32 * a.h[16 * b + 2 * j + w]);
                }
            }
            total += half_to_float(p + 2 * r) * sum;
        }
        out[r] = total;
    }
#endif
}

static void dot8_row(int type, const uint8_t *group, int cols, ckv_activation a, float out[CKV_TILE_ROWS]) {
    if (type == CKV_Q4_0) dot8_q4_0(group, cols / 32, a, out);
    else if (type == CKV_Q4_K) dot8_q4_K(group, cols / 256, a, out);
    else dot8_q6_K(group, cols / 256, a, out);
}

static float dot_row(int type, const void *row, int cols, const float *x, ckv_activation a) {
    switch (type) {
    case CKV_F32: return dot_f32((const float *)row, x, cols);
    case CKV_F16: return dot_f16((const uint8_t *)row, x, cols);
    case CKV_BF16: return dot_bf16((const uint8_t *)row, x, cols);
    case CKV_Q8_0: return dot_q8_0((const uint8_t *)row, cols / 32, a);
    case CKV_Q4_0: return dot_q4_0((const uint8_t *)row, cols / 32, a);
    case CKV_Q4_1: return dot_q4_1((const uint8_t *)row, cols / 32, a);
    case CKV_Q4_K: return dot_q4_K((const uint8_t *)row, cols / 256, a);
    case CKV_Q6_K: return dot_q6_K((const uint8_t *)row, cols / 256, a);
    default: return NAN;
    }
}

static void matvec_part(void *context, int index, int count) {
    const ckv_matvec *mv = context;
    long total = 0;
    for (int m = 0; m < mv->count; m++) total += (mv->matrices[m].rows + CKV_TILE_ROWS - 1) / CKV_TILE_ROWS;
    // Share boundaries are a fixed function of (total, count): contiguous ranges of the 8-row
    // groups of all matrices taken in order (a packed group is one kernel call).
    const long begin = total * index / count, end = total * (index + 1) / count;
    long first = 0;
    for (int m = 0; m < mv->count; m++) {
        const ckv_matrix *w = &mv->matrices[m];
        const long groups = (w->rows + CKV_TILE_ROWS - 1) / CKV_TILE_ROWS;
        const long lo = begin > first ? begin - first : 0;
        const long hi = end - first < groups ? end - first : groups;
        for (long g = lo; g < hi; g++) {
            if (w->packed) {
                dot8_row(w->type, (const uint8_t *)w->weights + g * CKV_TILE_ROWS * w->row_bytes, mv->cols, mv->activation,
                         w->out + g * CKV_TILE_ROWS);
                continue;
            }
            const long last = (g + 1) * CKV_TILE_ROWS < w->rows ? (g + 1) * CKV_TILE_ROWS : w->rows;
            for (long r = g * CKV_TILE_ROWS; r < last; r++) {
                w->out[r] = dot_row(w->type, (const uint8_t *)w->weights + r * w->row_bytes, mv->cols, mv->x, mv->activation);
            }
        }
        first += groups;
    }
}
