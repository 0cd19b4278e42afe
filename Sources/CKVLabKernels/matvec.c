#include "ckvlab_kernels.h"

#include <math.h>
#include <string.h>

#if defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
#include <immintrin.h>
#define CKV_X86 1
#endif
#if defined(CKV_X86) && defined(__AVX512VNNI__) && defined(__AVX512VL__)
#define CKV_VNNI 1
#endif

const char *ckv_vector_path(void) {
#if defined(CKV_VNNI)
    return "avx512-vnni";
#elif defined(CKV_X86)
    return "avx2";
#else
    return "portable";
#endif
}

static inline float half_to_float(const void *p) {
    uint16_t h;
    memcpy(&h, p, 2);
#if defined(CKV_X86)
    return _cvtsh_ss(h);
#else
    // IEEE binary16 → binary32, subnormals included (ggml's reference conversion).
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exponent = (h >> 10) & 0x1f, mantissa = h & 0x3ff, bits;
    if (exponent == 0x1f) {
        bits = sign | 0x7f800000 | (mantissa << 13);
    } else if (exponent == 0) {
        float magnitude = (float)mantissa * 0x1p-24f;
        memcpy(&bits, &magnitude, 4);
        bits |= sign;
    } else {
        bits = sign | ((exponent + 112) << 23) | (mantissa << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
#endif
}

static inline uint16_t load16(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return h;
}

// MARK: - Activation quantization

size_t ckv_activation_bytes(int n) { return (size_t)n + (size_t)(n / 32) * 8; }

int ckv_has_kernel(int type) {
    return type == CKV_F32 || type == CKV_F16 || type == CKV_BF16 || type == CKV_Q8_0 || type == CKV_Q4_0 || type == CKV_Q4_1
        || type == CKV_Q4_K || type == CKV_Q6_K;
}

int ckv_uses_quantized_activation(int type) { return ckv_has_kernel(type) && type != CKV_F32 && type != CKV_F16 && type != CKV_BF16; }

void ckv_quantize_activation(const float *x, int n, ckv_activation a) {
    for (int b = 0; b < n / 32; b++) {
        const float *v = x + b * 32;
        float amax = 0;
        for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(v[j]));
        const float d = amax / 127, id = d != 0 ? 1 / d : 0;
        int sum = 0;
        for (int j = 0; j < 32; j++) {
            const int q = (int)roundf(v[j] * id);
            a.qs[b * 32 + j] = (int8_t)q;
            sum += q;
        }
        a.d[b] = d;
        a.s[b] = d * (float)sum;
    }
}

// MARK: - Vector helpers

#if defined(CKV_X86)
static inline float hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/// Σ of products of unsigned bytes (at most 127 here) by signed bytes, four to each int32 lane.
static inline __m256i dot_u8s8(__m256i u, __m256i s) {
#if defined(CKV_VNNI)
    return _mm256_dpbusd_epi32(_mm256_setzero_si256(), u, s);
#else
    return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1));
#endif
}

/// Σ of products of signed bytes: |w| times a with w's sign (|w| ≤ 128, so maddubs cannot saturate).
static inline __m256i dot_s8s8(__m256i w, __m256i a) {
    return dot_u8s8(_mm256_sign_epi8(w, w), _mm256_sign_epi8(a, w));
}

/// The 32 nibbles of 16 bytes in element order: low nibbles (elements 0–15), then high (16–31).
static inline __m256i nibbles(const uint8_t *p) {
    const __m128i q = _mm_loadu_si128((const __m128i *)p);
    return _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(q, 4), q), _mm256_set1_epi8(0x0f));
}

/// Four fp16 values `stride` bytes apart, as floats.
static inline __m128 halves4(const uint8_t *p, int stride) {
    return _mm_cvtph_ps(_mm_setr_epi16((short)load16(p), (short)load16(p + stride), (short)load16(p + 2 * stride),
                                       (short)load16(p + 3 * stride), 0, 0, 0, 0));
}

/// The integer dot product of one weight block with 32 activation codes, in eight int32 lanes.
typedef __m256i (*block_dot)(const uint8_t *block, const int8_t *codes);

/// Σ_b d_w·d_a·dot_b + factor · Σ_b o_w·s_a over `nb` blocks of `bytes` bytes whose fp16 scale d_w
/// is their first field and whose offset o_w (if any) the fp16 at `offset_at`. Four blocks a step:
/// their lane sums are folded together by horizontal adds first, so one conversion and one
/// multiply-add serve four blocks.
static inline float dot_blocks(const uint8_t *w, int nb, int bytes, block_dot dot, int offset_at, float factor,
                               ckv_activation a) {
    __m256 acc = _mm256_setzero_ps();
    __m128 offsets = _mm_setzero_ps();
    int b = 0;
    for (; b + 4 <= nb; b += 4) {
        const uint8_t *p = w + b * bytes;
        const int8_t *y = a.qs + b * 32;
        const __m256i p0 = dot(p, y), p1 = dot(p + bytes, y + 32), p2 = dot(p + 2 * bytes, y + 64), p3 = dot(p + 3 * bytes, y + 96);
        // Lanes: blocks 0–3's sums of elements 0–3 of their lanes, then of elements 4–7.
        const __m256 sums = _mm256_cvtepi32_ps(_mm256_hadd_epi32(_mm256_hadd_epi32(p0, p1), _mm256_hadd_epi32(p2, p3)));
        const __m128 scales = _mm_mul_ps(halves4(p, bytes), _mm_loadu_ps(a.d + b));
        acc = _mm256_fmadd_ps(sums, _mm256_set_m128(scales, scales), acc);
        if (offset_at >= 0) offsets = _mm_fmadd_ps(halves4(p + offset_at, bytes), _mm_loadu_ps(a.s + b), offsets);
    }
    float sum = hsum8(acc);
    __m128 o = _mm_add_ps(offsets, _mm_movehl_ps(offsets, offsets));
    float offset = _mm_cvtss_f32(_mm_add_ss(o, _mm_movehdup_ps(o)));
    for (; b < nb; b++) {
        const uint8_t *p = w + b * bytes;
        sum += half_to_float(p) * a.d[b] * hsum8(_mm256_cvtepi32_ps(dot(p, a.qs + b * 32)));
        if (offset_at >= 0) offset += half_to_float(p + offset_at) * a.s[b];
    }
    return sum + factor * offset;
}

static inline __m256i codes(const int8_t *y) { return _mm256_loadu_si256((const __m256i *)y); }
static inline __m256i block_q8_0(const uint8_t *p, const int8_t *y) { return dot_s8s8(_mm256_loadu_si256((const __m256i *)(p + 2)), codes(y)); }
static inline __m256i block_q4_0(const uint8_t *p, const int8_t *y) { return dot_u8s8(nibbles(p + 2), codes(y)); }
static inline __m256i block_q4_1(const uint8_t *p, const int8_t *y) { return dot_u8s8(nibbles(p + 4), codes(y)); }
#endif

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

/// ggml's get_scale_min_k4: the 6-bit scales and mins of a q4_K super-block's 8 sub-blocks.
static inline void scales_mins_k4(const uint8_t *q, uint8_t *scales, uint8_t *mins) {
    for (int j = 0; j < 4; j++) {
        scales[j] = q[j] & 63;
        mins[j] = q[j + 4] & 63;
        scales[j + 4] = (q[j + 8] & 0xf) | ((q[j] >> 6) << 4);
        mins[j + 4] = (q[j + 8] >> 4) | ((q[j + 4] >> 6) << 4);
    }
}

/// block_q4_K (256 elements): fp16 d, fp16 dmin, 12 bytes of 6-bit scales and mins, 128 bytes of
/// nibbles; sub-block j (32 elements, one activation block) is d·scale_j·u − dmin·min_j.
/// Σ_j d·scale_j·d_a·Σ u·a − dmin·min_j·s_a.
static float dot_q4_K(const uint8_t *w, int nb, ckv_activation a) {
    float sum = 0, offset = 0;
    for (int b = 0; b < nb; b++) {
        const uint8_t *p = w + b * 144;
        const float d = half_to_float(p), dmin = half_to_float(p + 2);
        uint8_t scales[8], mins[8];
        scales_mins_k4(p + 4, scales, mins);
        const int8_t *y = a.qs + b * 256;
        const float *ad = a.d + b * 8, *as = a.s + b * 8;
#if defined(CKV_X86)
        __m256i dots[8];
        for (int k = 0; k < 4; k++) {
            const __m256i q = _mm256_loadu_si256((const __m256i *)(p + 16 + 32 * k));
            dots[2 * k] = dot_u8s8(_mm256_and_si256(q, _mm256_set1_epi8(0x0f)), codes(y + 64 * k));
            dots[2 * k + 1] = dot_u8s8(_mm256_and_si256(_mm256_srli_epi16(q, 4), _mm256_set1_epi8(0x0f)), codes(y + 64 * k + 32));
        }
        const __m256 low = _mm256_cvtepi32_ps(_mm256_hadd_epi32(_mm256_hadd_epi32(dots[0], dots[1]), _mm256_hadd_epi32(dots[2], dots[3])));
        const __m256 high = _mm256_cvtepi32_ps(_mm256_hadd_epi32(_mm256_hadd_epi32(dots[4], dots[5]), _mm256_hadd_epi32(dots[6], dots[7])));
        const __m256 sc = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)scales))),
                                        _mm256_mul_ps(_mm256_set1_ps(d), _mm256_loadu_ps(ad)));
        const __m256 mn = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)mins)));
        const __m128 sc_low = _mm256_castps256_ps128(sc), sc_high = _mm256_extractf128_ps(sc, 1);
        __m256 acc = _mm256_mul_ps(low, _mm256_set_m128(sc_low, sc_low));
        acc = _mm256_fmadd_ps(high, _mm256_set_m128(sc_high, sc_high), acc);
        sum += hsum8(acc);
        offset += dmin * hsum8(_mm256_mul_ps(mn, _mm256_loadu_ps(as)));
#else
        for (int j = 0; j < 8; j++) {
            const uint8_t *q = p + 16 + 32 * (j / 2);
            const int shift = 4 * (j % 2);
            int dot = 0;
            for (int l = 0; l < 32; l++) dot += ((q[l] >> shift) & 0xf) * y[32 * j + l];
            sum += d * scales[j] * ad[j] * (float)dot;
            offset += dmin * mins[j] * as[j];
        }
#endif
    }
    return sum - offset;
}

/// block_q6_K (256 elements): 128 bytes of low nibbles, 64 of high 2-bit pairs, 16 int8 scales
/// (one per 16 elements), fp16 d; element 128h + 32p + l is d·scale·(u − 32), scale 8h + 2p + l/16.
/// Codes u − 32 are signed bytes, so each half of an activation block is a signed dot product
/// whose lanes take their half's scale before the four groups are folded.
static float dot_q6_K(const uint8_t *w, int nb, ckv_activation a) {
    float sum = 0;
    for (int b = 0; b < nb; b++) {
        const uint8_t *p = w + b * 210;
        const float d = half_to_float(p + 208);
        const int8_t *scales = (const int8_t *)(p + 192);
        const int8_t *y = a.qs + b * 256;
        const float *ad = a.d + b * 8;
#if defined(CKV_X86)
        for (int h = 0; h < 2; h++) {
            const __m256i ql0 = _mm256_loadu_si256((const __m256i *)(p + 64 * h));
            const __m256i ql1 = _mm256_loadu_si256((const __m256i *)(p + 64 * h + 32));
            const __m256i qh = _mm256_loadu_si256((const __m256i *)(p + 128 + 32 * h));
            const __m256i m4 = _mm256_set1_epi8(0x0f), m2 = _mm256_set1_epi8(0x30), bias = _mm256_set1_epi8(32);
            __m256i q[4];
            q[0] = _mm256_or_si256(_mm256_and_si256(ql0, m4), _mm256_and_si256(_mm256_slli_epi16(qh, 4), m2));
            q[1] = _mm256_or_si256(_mm256_and_si256(ql1, m4), _mm256_and_si256(_mm256_slli_epi16(qh, 2), m2));
            q[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), m4), _mm256_and_si256(qh, m2));
            q[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), m4), _mm256_and_si256(_mm256_srli_epi16(qh, 2), m2));
            __m256i dots[4];
            for (int g = 0; g < 4; g++) {
                const int8_t *sc = scales + 8 * h + 2 * g;
                // Lanes 0–3 hold elements 0–15 (first scale), lanes 4–7 elements 16–31.
                const __m256i lane_scales = _mm256_setr_epi32(sc[0], sc[0], sc[0], sc[0], sc[1], sc[1], sc[1], sc[1]);
                dots[g] = _mm256_mullo_epi32(dot_s8s8(_mm256_sub_epi8(q[g], bias), codes(y + 128 * h + 32 * g)), lane_scales);
            }
            // Fold the groups: lanes [g0 g1 g2 g3 | g0 g1 g2 g3], each a half-block's scaled sum.
            const __m256 sums = _mm256_cvtepi32_ps(_mm256_hadd_epi32(_mm256_hadd_epi32(dots[0], dots[1]), _mm256_hadd_epi32(dots[2], dots[3])));
            const __m128 da = _mm_mul_ps(_mm_set1_ps(d), _mm_loadu_ps(ad + 4 * h));
            sum += hsum8(_mm256_mul_ps(sums, _mm256_set_m128(da, da)));
        }
#else
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
#endif
    }
    return sum;
}

float ckv_dot_row(int type, const void *row, int cols, const float *x, ckv_activation a) {
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

void ckv_matvec_part(void *context, int index, int count) {
    const ckv_matvec *mv = context;
    long total = 0;
    for (int m = 0; m < mv->count; m++) total += mv->matrices[m].rows;
    // Share boundaries are a fixed function of (total, count): contiguous ranges of the rows of
    // all matrices taken in order.
    const long begin = total * index / count, end = total * (index + 1) / count;
    long first = 0;
    for (int m = 0; m < mv->count; m++) {
        const ckv_matrix *w = &mv->matrices[m];
        const long lo = begin > first ? begin - first : 0;
        const long hi = end - first < w->rows ? end - first : w->rows;
        for (long r = lo; r < hi; r++) {
            w->out[r] = ckv_dot_row(w->type, (const uint8_t *)w->weights + r * w->row_bytes, mv->cols, mv->x, mv->activation);
        }
        first += w->rows;
    }
}
