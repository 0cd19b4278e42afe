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
