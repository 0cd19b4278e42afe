#include "internal.h"

#include <string.h>

// The decode kernels' interleaved layout (llama.cpp repacks q4_0 and q4_K the same way at load):
// eight rows' blocks side by side, their fp16 scales in one 16-byte run and their code bytes in
// 32-byte vectors of four bytes per row, so a kernel reads eight rows with the loads one row took
// and sums each row in its own vector lane (no horizontal sums, one scale conversion for eight).
//
// q4_0x8, per block of 32 columns (144 bytes): d of rows 0–7; then 4 vectors, byte 32v + 4r + i
//   = code byte 4v + i of row r (low nibble element 4v + i, high nibble element 16 + 4v + i).
// q4_Kx8, per super-block of 256 (1,152 bytes): d of rows 0–7, dmin of rows 0–7, the three 32-bit
//   words of each row's 12 scale bytes as words[3][8]; then 32 vectors, byte 32g + 4r + i = code
//   byte 4g + i of row r (g = 8k + v: low nibbles sub-block 2k, high nibbles 2k + 1, elements 4v + i).
// q6_Kx8 (llama.cpp keeps q6_K as it is on x86), per super-block of 256 (1,680 bytes): d of rows
//   0–7; the 16 scales of each row as scales[16][8]; then per 32-element sub-block (192 bytes):
//   4 vectors of the low 4 bits as q4_0's (element 4v + i in the low nibble of byte 32v + 4r + i,
//   element 16 + 4v + i in its high nibble) and 2 of the high 2 bits (element 16w + 4v + i at bit
//   2v of byte 128 + 32w + 4r + i).

int ckv_can_pack(int type, int rows) {
    return (type == CKV_Q4_0 || type == CKV_Q4_K || type == CKV_Q6_K) && rows > 0 && rows % CKV_TILE_ROWS == 0;
}

/// The 6-bit code of element e (0–255) of a q6_K super-block.
static int q6_code(const uint8_t *p, int e) {
    const int h = e / 128, g = (e % 128) / 32, l = e % 32;
    const uint8_t low = p[64 * h + l + 32 * (g % 2)];
    return (g < 2 ? low & 0xf : low >> 4) | ((p[128 + 32 * h + l] >> (2 * g)) & 3) << 4;
}

/// Code bytes `n` (a multiple of 4) of eight rows' blocks, four bytes of each row per 32.
static void interleave(const uint8_t *const src[CKV_TILE_ROWS], int n, uint8_t *dst) {
    for (int g = 0; g < n / 4; g++) {
        for (int r = 0; r < CKV_TILE_ROWS; r++) memcpy(dst + 32 * g + 4 * r, src[r] + 4 * g, 4);
    }
}

void ckv_pack(int type, const void *src, int rows, int cols, size_t row_bytes, void *dst) {
    const uint8_t *in = src;
    uint8_t *out = dst;
    for (int group = 0; group < rows / CKV_TILE_ROWS; group++) {
        const uint8_t *row[CKV_TILE_ROWS];
        for (int r = 0; r < CKV_TILE_ROWS; r++) row[r] = in + (size_t)(group * CKV_TILE_ROWS + r) * row_bytes;
        uint8_t *o = out + (size_t)group * CKV_TILE_ROWS * row_bytes;
        if (type == CKV_Q4_0) {
            for (int b = 0; b < cols / 32; b++, o += 144) {
                const uint8_t *block[CKV_TILE_ROWS];
                for (int r = 0; r < CKV_TILE_ROWS; r++) {
                    block[r] = row[r] + 18 * b + 2;
                    memcpy(o + 2 * r, row[r] + 18 * b, 2);
                }
                interleave(block, 16, o + 16);
            }
        } else if (type == CKV_Q6_K) {
            for (int s = 0; s < cols / 256; s++, o += 1680) {
                for (int r = 0; r < CKV_TILE_ROWS; r++) {
                    const uint8_t *p = row[r] + 210 * s;
                    memcpy(o + 2 * r, p + 208, 2);
                    for (int k = 0; k < 16; k++) o[16 + 8 * k + r] = p[192 + k];
                    for (int j = 0; j < 8; j++) {
                        uint8_t *c = o + 144 + 192 * j + 4 * r;
                        for (int v = 0; v < 4; v++) {
                            for (int i = 0; i < 4; i++) {
                                const int e = 32 * j + 4 * v + i;
                                c[32 * v + i] = (uint8_t)((q6_code(p, e) & 0xf) | (q6_code(p, e + 16) & 0xf) << 4);
                            }
                        }
                        for (int w = 0; w < 2; w++) {
                            for (int i = 0; i < 4; i++) {
                                uint8_t high = 0;
                                for (int v = 0; v < 4; v++) high |= (uint8_t)((q6_code(p, 32 * j + 16 * w + 4 * v + i) >> 4) << (2 * v));
                                c[128 + 32 * w + i] = high;
                            }
                        }
                    }
                }
            }
        } else {
            for (int s = 0; s < cols / 256; s++, o += 1152) {
                const uint8_t *block[CKV_TILE_ROWS];
                for (int r = 0; r < CKV_TILE_ROWS; r++) {
                    const uint8_t *p = row[r] + 144 * s;
                    block[r] = p + 16;
                    memcpy(o + 2 * r, p, 2);
                    memcpy(o + 16 + 2 * r, p + 2, 2);
                    for (int w = 0; w < 3; w++) memcpy(o + 32 + 32 * w + 4 * r, p + 4 + 4 * w, 4);
                }
                interleave(block, 128, o + 128);
            }
        }
    }
}

void ckv_unpack_packed_tile(const ckv_gemm *g, int group, uint8_t *tile) {
    const int cols = g->cols;
    float *scales = (float *)(tile + (size_t)CKV_TILE_ROWS * cols), *offsets = scales + (size_t)(cols / 16) * CKV_TILE_ROWS;
    const uint8_t *p = (const uint8_t *)g->weights + (size_t)group * CKV_TILE_ROWS * g->row_bytes;
    if (g->type == CKV_Q6_K) {
        for (int s = 0; s < cols / 256; s++, p += 1680) {
            for (int r = 0; r < CKV_TILE_ROWS; r++) {
                const float d = ckv_half_to_float((uint16_t)(p[2 * r] | p[2 * r + 1] << 8));
                for (int k = 0; k < 16; k++) {
                    const float dl = d * (float)(int8_t)p[16 + 8 * k + r];
                    scales[8 * (16 * s + k) + r] = dl;
                    offsets[8 * (16 * s + k) + r] = -32 * dl;
                }
            }
            // Tile group 8j + 4w + v: four elements of each row from vector v's nibble w and the
            // high vector w's bits 2v.
            for (int j = 0; j < 8; j++) {
                const uint8_t *c = p + 144 + 192 * j;
                for (int w = 0; w < 2; w++) {
                    for (int v = 0; v < 4; v++) {
                        uint8_t *t = tile + 32 * (64 * s + 8 * j + 4 * w + v);
                        for (int i = 0; i < 32; i++) t[i] = (uint8_t)(((c[32 * v + i] >> (4 * w)) & 0xf) | ((c[128 + 32 * w + i] >> (2 * v)) & 3) << 4);
                    }
                }
            }
        }
        return;
    }
    // Tile code group q (four elements of each row, 32 bytes) from a packed vector's low or high nibbles.
    const int blocks = g->type == CKV_Q4_0 ? 1 : 8, bytes = g->type == CKV_Q4_0 ? 144 : 1152;
    for (int s = 0; s < cols / (32 * blocks); s++, p += bytes) {
        const uint8_t *codes = p + (blocks == 1 ? 16 : 128);
        uint8_t sc[CKV_TILE_ROWS][8], mn[CKV_TILE_ROWS][8];
        for (int r = 0; r < CKV_TILE_ROWS; r++) {
            if (blocks == 1) {
                const float d = ckv_half_to_float((uint16_t)(p[2 * r] | p[2 * r + 1] << 8));
                for (int h = 0; h < 2; h++) {
                    scales[8 * (2 * s + h) + r] = d;
                    offsets[8 * (2 * s + h) + r] = -8 * d;
                }
            } else {
                uint8_t q[12];
                for (int w = 0; w < 3; w++) memcpy(q + 4 * w, p + 32 + 32 * w + 4 * r, 4);
                ckv_scales_mins_k4(q, sc[r], mn[r]);
                const float d = ckv_half_to_float((uint16_t)(p[2 * r] | p[2 * r + 1] << 8));
                const float dmin = ckv_half_to_float((uint16_t)(p[16 + 2 * r] | p[17 + 2 * r] << 8));
                for (int j = 0; j < 8; j++) {
                    for (int h = 0; h < 2; h++) {
                        scales[8 * (16 * s + 2 * j + h) + r] = d * (float)sc[r][j];
                        offsets[8 * (16 * s + 2 * j + h) + r] = -dmin * (float)mn[r][j];
                    }
                }
            }
        }
        // Packed vector g of a 32-column block (q4_0) or sub-block pair k (q4_K, g = 8k + v):
        // low nibbles are tile group 8·(its block) + v, high nibbles that + 4 (q4_0) or the next
        // sub-block's group v (q4_K).
        for (int v = 0; v < 4 * blocks; v++) {
            const int k = v / 8, first = blocks == 1 ? 8 * s + v : 64 * s + 16 * k + v % 8;
            const int second = blocks == 1 ? first + 4 : first + 8;
            for (int i = 0; i < 32; i++) {
                tile[32 * first + i] = codes[32 * v + i] & 0xf;
                tile[32 * second + i] = codes[32 * v + i] >> 4;
            }
        }
    }
}
