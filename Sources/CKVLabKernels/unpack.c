#include "internal.h"

#include <string.h>

// Every weight type as `value = scale · code + offset` with unsigned 8-bit codes and a float scale
// and offset per 16 elements (the same for both halves of a 32-element block except in q2_K, q3_K
// and q6_K), unpacked eight rows at a time into the tile layout of tiles.h; and the block-layout
// helpers the kernels share.

float ckv_half_to_float(uint16_t h) {
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
}

static inline float half(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return ckv_half_to_float(h);
}

void ckv_scales_mins_k4(const uint8_t *q, uint8_t *scales, uint8_t *mins) {
    for (int j = 0; j < 4; j++) {
        scales[j] = q[j] & 63;
        mins[j] = q[j + 4] & 63;
        scales[j + 4] = (q[j + 8] & 0xf) | ((q[j] >> 6) << 4);
        mins[j + 4] = (q[j + 8] >> 4) | ((q[j + 4] >> 6) << 4);
    }
}

static const int8_t iq4_values[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};

int ckv_has_tile(int type) {
    switch (type) {
    case CKV_Q4_0: case CKV_Q4_1: case CKV_Q5_0: case CKV_Q5_1: case CKV_Q8_0: case CKV_Q2_K: case CKV_Q3_K:
    case CKV_Q4_K: case CKV_Q5_K: case CKV_Q6_K: case CKV_IQ4_NL: case CKV_IQ4_XS:
        return 1;
    default:
        return 0;
    }
}

int ckv_tile_wide(int type) { return type == CKV_Q8_0 || type == CKV_IQ4_NL || type == CKV_IQ4_XS; }

int ckv_tile_steps(int type) {
    // Largest code: q2_K 3, q3_K 7, the 4-bit types 15, the 5-bit ones 31, q6_K 63 (wide types 255).
    switch (type) {
    case CKV_Q5_0: case CKV_Q5_1: case CKV_Q5_K: return 4;
    case CKV_Q6_K: return 2;
    case CKV_Q8_0: case CKV_IQ4_NL: case CKV_IQ4_XS: return 1;
    default: return 8;
    }
}

int ckv_tile_per_half(int type) { return type == CKV_Q6_K || type == CKV_Q2_K || type == CKV_Q3_K; }

size_t ckv_tile_bytes(int cols, int height) { return (size_t)height * (size_t)cols + (size_t)(cols / 16) * (size_t)height * 2 * sizeof(float); }

typedef struct {
    uint8_t *codes;  // element i of row r: byte 4·height·(i / 4) + 4r + i % 4
    float *scales;   // half h (16 elements) of row r: at height·h + r
    float *offsets;  // the same
    int row;
    int height;
} tile_row;

/// Interleaves the `n` codes `u` of elements [first, first + n) (multiples of 4) into the tile.
static inline void put(tile_row t, int first, const uint8_t *u, int n) {
    for (int g = 0; g < n / 4; g++) memcpy(t.codes + (size_t)(first / 4 + g) * 4 * t.height + 4 * t.row, u + 4 * g, 4);
}

/// Scale and offset of the 16-element half h.
static inline void half_scale(tile_row t, int h, float scale, float offset) {
    t.scales[t.height * h + t.row] = scale;
    t.offsets[t.height * h + t.row] = offset;
}

/// A 32-element block's two halves with one scale and offset.
static inline void block_scale(tile_row t, int b, float scale, float offset) {
    half_scale(t, 2 * b, scale, offset);
    half_scale(t, 2 * b + 1, scale, offset);
}

static void unpack_row(int type, const uint8_t *row, int cols, tile_row t) {
    uint8_t u[256];
    switch (type) {
    case CKV_Q8_0:
        for (int b = 0; b < cols / 32; b++) {
            const uint8_t *p = row + 34 * b;
            const float d = half(p);
            block_scale(t, b, d, -128 * d);
            // Four codes a word, straight into the tile (bytes through a buffer stall the loads).
            for (int g = 0; g < 8; g++) {
                uint32_t four;
                memcpy(&four, p + 2 + 4 * g, 4);
                four ^= 0x80808080u;
                memcpy(t.codes + (size_t)(8 * b + g) * 4 * t.height + 4 * t.row, &four, 4);
            }
        }
        break;
    case CKV_Q4_0: case CKV_Q4_1: case CKV_Q5_0: case CKV_Q5_1: {
        const int five = type == CKV_Q5_0 || type == CKV_Q5_1, offset = type == CKV_Q4_1 || type == CKV_Q5_1;
        const int bytes = type == CKV_Q4_0 ? 18 : type == CKV_Q4_1 ? 20 : type == CKV_Q5_0 ? 22 : 24;
        for (int b = 0; b < cols / 32; b++) {
            const uint8_t *p = row + bytes * b;
            const float d = half(p);
            block_scale(t, b, d, offset ? half(p + 2) : (five ? -16 : -8) * d);
            uint32_t qh = 0;
            if (five) memcpy(&qh, p + 2 + 2 * offset, 4);
            const uint8_t *q = p + 2 + 2 * offset + 4 * five;
            for (int j = 0; j < 16; j++) {
                u[j] = (uint8_t)((q[j] & 0xf) | ((qh >> j) & 1) << 4);
                u[j + 16] = (uint8_t)((q[j] >> 4) | ((qh >> (j + 16)) & 1) << 4);
            }
            put(t, 32 * b, u, 32);
        }
        break;
    }
    case CKV_IQ4_NL: case CKV_IQ4_XS: {
        // iq4_nl: fp16 d and 16 code bytes per 32; iq4_xs: per 256, fp16 d, 2 bytes of high and 4
        // of low scale bits, then 8 × 16 code bytes with 6-bit scales (minus 32).
        const int xs = type == CKV_IQ4_XS, blocks = xs ? 8 : 1;
        for (int s = 0; s < cols / (32 * blocks); s++) {
            const uint8_t *p = row + (xs ? 136 : 18) * s;
            const float d = half(p);
            for (int ib = 0; ib < blocks; ib++) {
                float dl = d;
                if (xs) {
                    const int high = p[2] | p[3] << 8;
                    dl = d * (float)((((p[4 + ib / 2] >> (4 * (ib % 2))) & 0xf) | ((high >> (2 * ib)) & 3) << 4) - 32);
                }
                const uint8_t *q = p + (xs ? 8 + 16 * ib : 2);
                block_scale(t, blocks * s + ib, dl, -128 * dl);
                for (int j = 0; j < 16; j++) {
                    u[j] = (uint8_t)(iq4_values[q[j] & 0xf] + 128);
                    u[j + 16] = (uint8_t)(iq4_values[q[j] >> 4] + 128);
                }
                put(t, 32 * (blocks * s + ib), u, 32);
            }
        }
        break;
    }
    case CKV_Q2_K:
        // Element 128h + 32j + l: scale byte 8h + 2j + l/16 (4-bit scale | 4-bit min), bits 2j of qs[32h + l].
        for (int s = 0; s < cols / 256; s++) {
            const uint8_t *p = row + 84 * s;
            const float d = half(p + 80), dmin = half(p + 82);
            for (int k = 0; k < 16; k++) half_scale(t, 16 * s + k, d * (float)(p[k] & 0xf), -dmin * (float)(p[k] >> 4));
            for (int h = 0; h < 2; h++) {
                for (int j = 0; j < 4; j++) {
                    for (int l = 0; l < 32; l++) u[128 * h + 32 * j + l] = (p[16 + 32 * h + l] >> (2 * j)) & 3;
                }
            }
            put(t, 256 * s, u, 256);
        }
        break;
    case CKV_Q3_K:
        // Element 128h + 32j + l: 2 bits at 2j of qs[32h + l], minus 4 unless bit 4h + j of hmask[l].
        for (int s = 0; s < cols / 256; s++) {
            const uint8_t *p = row + 110 * s;
            const float d = half(p + 108);
            const uint8_t *sc = p + 96;
            for (int k = 0; k < 16; k++) {
                const int low = k < 8 ? sc[k] & 0xf : sc[k - 8] >> 4, high = (sc[8 + k % 4] >> (2 * (k / 4))) & 3;
                const float dl = d * (float)((low | high << 4) - 32);
                half_scale(t, 16 * s + k, dl, -4 * dl);
            }
            for (int h = 0; h < 2; h++) {
                for (int j = 0; j < 4; j++) {
                    for (int l = 0; l < 32; l++) {
                        u[128 * h + 32 * j + l] = (uint8_t)(((p[32 + 32 * h + l] >> (2 * j)) & 3) + ((p[l] >> (4 * h + j)) & 1) * 4);
                    }
                }
            }
            put(t, 256 * s, u, 256);
        }
        break;
    case CKV_Q4_K: case CKV_Q5_K: {
        // Sub-block 2k + p: the low (p = 0) or high nibbles of qs[32k + l]; q5_K's fifth bit is
        // bit 2k + p of qh[l].
        const int five = type == CKV_Q5_K, bytes = five ? 176 : 144;
        for (int s = 0; s < cols / 256; s++) {
            const uint8_t *p = row + bytes * s;
            const float d = half(p), dmin = half(p + 2);
            uint8_t scales[8], mins[8];
            ckv_scales_mins_k4(p + 4, scales, mins);
            const uint8_t *qs = p + (five ? 48 : 16);
            for (int j = 0; j < 8; j++) block_scale(t, 8 * s + j, d * (float)scales[j], -dmin * (float)mins[j]);
            for (int k = 0; k < 4; k++) {
                for (int l = 0; l < 32; l++) {
                    u[64 * k + l] = qs[32 * k + l] & 0xf;
                    u[64 * k + 32 + l] = qs[32 * k + l] >> 4;
                }
            }
            if (five) {
                for (int j = 0; j < 8; j++) {
                    for (int l = 0; l < 32; l++) u[32 * j + l] |= ((p[16 + l] >> j) & 1) << 4;
                }
            }
            put(t, 256 * s, u, 256);
        }
        break;
    }
    case CKV_Q6_K:
        for (int s = 0; s < cols / 256; s++) {
            const uint8_t *p = row + 210 * s;
            const float d = half(p + 208);
            for (int k = 0; k < 16; k++) {
                const float dl = d * (float)(int8_t)p[192 + k];
                half_scale(t, 16 * s + k, dl, -32 * dl);
            }
            for (int h = 0; h < 2; h++) {
                for (int l = 0; l < 32; l++) {
                    const uint8_t *ql = p + 64 * h, qh = p[128 + 32 * h + l];
                    u[128 * h + l] = (ql[l] & 0xf) | (qh & 3) << 4;
                    u[128 * h + 32 + l] = (ql[l + 32] & 0xf) | ((qh >> 2) & 3) << 4;
                    u[128 * h + 64 + l] = (ql[l] >> 4) | ((qh >> 4) & 3) << 4;
                    u[128 * h + 96 + l] = (ql[l + 32] >> 4) | ((qh >> 6) & 3) << 4;
                }
            }
            put(t, 256 * s, u, 256);
        }
        break;
    default:
        break;
    }
}

void ckv_unpack_tile(const ckv_gemm *g, int first, int count, uint8_t *tile, int height) {
    const int cols = g->cols;
    uint8_t *codes = tile;
    float *scales = (float *)(tile + (size_t)height * cols), *offsets = scales + (size_t)(cols / 16) * height;
    if (count < height) memset(tile, 0, ckv_tile_bytes(cols, height));
    // 256 columns of every row at a time: a whole row at a time would sweep the tile once per
    // row, and a tall tile of long rows does not fit in the L1 cache (32 rows of 2,048: 96 KiB).
    for (int c = 0; c < cols; c += 256) {
        const int n = cols - c < 256 ? cols - c : 256;
        const size_t skipped = g->row_bytes * (size_t)c / (size_t)cols;
        for (int r = 0; r < count; r++) {
            const tile_row t = {codes + (size_t)c * height, scales + (size_t)(c / 16) * height, offsets + (size_t)(c / 16) * height, r, height};
            unpack_row(g->type, (const uint8_t *)g->weights + (size_t)(first + r) * g->row_bytes + skipped, n, t);
        }
    }
}

