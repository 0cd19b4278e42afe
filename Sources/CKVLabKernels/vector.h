// Helpers of the kernels, compiled once per vector path: the including file defines CKV_X86 (AVX2,
// FMA, F16C) and CKV_VNNI (AVX-512 VNNI; 512-bit vectors in the tiles) as its path allows.

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static inline uint16_t load16(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return h;
}

static inline float half_to_float(const void *p) {
    uint16_t h;
    memcpy(&h, p, 2);
#if defined(CKV_X86)
    return _cvtsh_ss(h);
#else
    return ckv_half_to_float(h);
#endif
}

#if defined(CKV_X86)
static inline float hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/// acc + Σ of products of unsigned bytes (at most 128 here) by signed bytes, four to each int32 lane.
static inline __m256i dot_u8s8_acc(__m256i acc, __m256i u, __m256i s) {
#if defined(CKV_VNNI)
    return _mm256_dpbusd_epi32(acc, u, s);
#else
    return _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1)));
#endif
}

static inline __m256i dot_u8s8(__m256i u, __m256i s) { return dot_u8s8_acc(_mm256_setzero_si256(), u, s); }

/// Partial sums for dot_u8s8_acc that are widened once after several steps: without VNNI the
/// byte multiply-add's 16-bit pairs are added as they are (a 4-bit code by an activation code is
/// at most 15·127, a pair 3,810, so eight steps fit in 16 bits) and dot_short_widen turns them
/// into int32 lanes once, which halves the multiplies (vpmaddwd shares vpmaddubsw's ports).
/// With VNNI the sums are int32 lanes all along.
static inline __m256i dot_short_acc(__m256i acc, __m256i u, __m256i s) {
#if defined(CKV_VNNI)
    return _mm256_dpbusd_epi32(acc, u, s);
#else
    return _mm256_add_epi16(acc, _mm256_maddubs_epi16(u, s));
#endif
}

/// Two dot_short_acc sums added (together at most eight 4-bit steps without VNNI).
static inline __m256i dot_short_add(__m256i x, __m256i y) {
#if defined(CKV_VNNI)
    return _mm256_add_epi32(x, y);
#else
    return _mm256_add_epi16(x, y);
#endif
}

/// A dot_short_acc sum as int32 lanes.
static inline __m256i dot_short_widen(__m256i acc) {
#if defined(CKV_VNNI)
    return acc;
#else
    return _mm256_madd_epi16(acc, _mm256_set1_epi16(1));
#endif
}

/// Whether dot_wide_acc leaves out the +128 of the wide codes (a signed value + 128, up to 255):
/// without VNNI it multiplies the signed values (the byte multiply-add saturates on two products of
/// codes up to 255), so the tile's offset term, which takes that +128's products back out, is
/// skipped too.
#if defined(CKV_VNNI)
#define CKV_WIDE_SIGNED 0
#else
#define CKV_WIDE_SIGNED 1
#endif

/// acc + Σ of products of wide codes `u` with signed bytes `s`, four to each int32 lane. Without
/// VNNI the signed values w = u − 128 go through the sign trick (llama.cpp's mul_sum_i8_pairs):
/// |w| times s with w's sign, |w| ≤ 128 so the multiply-add cannot saturate; `w` and `magnitude`
/// (wide_signed, wide_magnitude of u) are shared by every input a tile step multiplies.
static inline __m256i dot_wide_acc(__m256i acc, __m256i u, __m256i w, __m256i magnitude, __m256i s) {
#if defined(CKV_VNNI)
    (void)w;
    (void)magnitude;
    return _mm256_dpbusd_epi32(acc, u, s);
#else
    (void)u;
    return _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(magnitude, _mm256_sign_epi8(s, w)), _mm256_set1_epi16(1)));
#endif
}

static inline __m256i wide_signed(__m256i u) { return _mm256_xor_si256(u, _mm256_set1_epi8((char)0x80)); }
static inline __m256i wide_magnitude(__m256i w) { return _mm256_abs_epi8(w); }

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

/// How far ahead of its weight loads a decode kernel prefetches: a decode step streams each matrix
/// from memory once, and the hardware prefetchers stop at every 4 KiB page (on the development VM
/// this took single-thread decode from memory from about 7 to 10 GB/s, every type).
#define CKV_PREFETCH_AHEAD 2048

/// Prefetches the `bytes` (rounded up to 64-byte lines) that lie CKV_PREFETCH_AHEAD past `p`.
static inline void prefetch_ahead(const uint8_t *p, int bytes) {
    for (int i = 0; i < bytes; i += 64) _mm_prefetch((const char *)p + CKV_PREFETCH_AHEAD + i, _MM_HINT_T0);
}

static inline __m256i codes(const int8_t *y) { return _mm256_loadu_si256((const __m256i *)y); }

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
        prefetch_ahead(p, 4 * bytes);
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

static inline __m256i block_q8_0(const uint8_t *p, const int8_t *y) { return dot_s8s8(_mm256_loadu_si256((const __m256i *)(p + 2)), codes(y)); }
static inline __m256i block_q4_0(const uint8_t *p, const int8_t *y) { return dot_u8s8(nibbles(p + 2), codes(y)); }
static inline __m256i block_q4_1(const uint8_t *p, const int8_t *y) { return dot_u8s8(nibbles(p + 4), codes(y)); }

/// The lane sums of eight int32 vectors, in order, as floats.
static inline __m256 fold8(const __m256i v[8]) {
    // x: [v0 v1 v2 v3 sums of lanes 0–3 | the same of lanes 4–7], y the same for v4–v7.
    const __m256i x = _mm256_hadd_epi32(_mm256_hadd_epi32(v[0], v[1]), _mm256_hadd_epi32(v[2], v[3]));
    const __m256i y = _mm256_hadd_epi32(_mm256_hadd_epi32(v[4], v[5]), _mm256_hadd_epi32(v[6], v[7]));
    return _mm256_cvtepi32_ps(_mm256_add_epi32(_mm256_permute2x128_si256(x, y, 0x20), _mm256_permute2x128_si256(x, y, 0x31)));
}

/// get_scale_min_k4 on 32-bit words (as ggml's vector kernels do): the eight 6-bit scales of a
/// q4_K/q5_K super-block in bytes 0–7, the eight mins in bytes 8–15.
static inline __m128i scales_mins_k4_packed(const uint8_t *q) {
    uint32_t u[3];
    memcpy(u, q, 12);
    const uint32_t low6 = 0x3f3f3f3f, low4 = 0x0f0f0f0f, top2 = 0x03030303;
    return _mm_setr_epi32((int)(u[0] & low6), (int)((u[2] & low4) | (((u[0] >> 6) & top2) << 4)), (int)(u[1] & low6),
                          (int)(((u[2] >> 4) & low4) | (((u[1] >> 6) & top2) << 4)));
}
#endif
