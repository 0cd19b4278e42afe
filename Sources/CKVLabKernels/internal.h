#ifndef CKVLAB_INTERNAL_H
#define CKVLAB_INTERNAL_H

#include "ckvlab_kernels.h"

/// Rows per interleaved group (ckv_pack) and per unpacked tile of the 256-bit paths (the lanes
/// of a 256-bit float vector); the AVX-512 path's tiles hold four groups (CKV_TILE_ROWS_WIDE: the
/// lanes of two 512-bit vectors, so that each input's broadcast codes serve two weight vectors).
#define CKV_TILE_ROWS 8
#define CKV_TILE_ROWS_WIDE 32

/// IEEE binary16 → binary32, subnormals included.
float ckv_half_to_float(uint16_t h);

/// ggml's get_scale_min_k4: the 6-bit scales and mins of a q4_K/q5_K super-block's 8 sub-blocks.
void ckv_scales_mins_k4(const uint8_t *q, uint8_t *scales, uint8_t *mins);

/// Bytes of one unpacked tile of `height` rows (CKV_TILE_ROWS or CKV_TILE_ROWS_WIDE) of `cols` columns.
size_t ckv_tile_bytes(int cols, int height);

/// Unpacks rows [first, first + count) (count ≤ height) of `g` into a tile of `height` rows
/// (layout in tiles.h); missing rows are zero.
void ckv_unpack_tile(const ckv_gemm *g, int first, int count, uint8_t *tile, int height);


/// Whether a type's tile codes reach 255 (q8_0, iq4: the signed value offset by 128).
int ckv_tile_wide(int type);

/// How many of a block's eight 32-byte code vectors the byte multiply-add's 16-bit sums can hold
/// before they overflow: 32,767 / (2 · largest code · 127), at most 8 (1 for the wide types).
int ckv_tile_steps(int type);

/// Whether a type's scales and offsets differ between the halves of a 32-element block.
int ckv_tile_per_half(int type);

/// One vector path's kernels (level_*.c compile the same sources for each).
typedef struct {
    const char *name;
    void (*quantize_activation)(const float *x, int n, ckv_activation a);
    float (*dot_row)(int type, const void *row, int cols, const float *x, ckv_activation a);
    ckv_task matvec_part;
    ckv_task gemm_part;
    void (*decode_f16)(const void *src, int n, float *dst);
} ckv_path;

extern const ckv_path ckv_path_vnni, ckv_path_avx2, ckv_path_portable;

#endif
