// One vector path's kernels: the including file sets CKV_X86 / CKV_VNNI and CKV_PATH, and wraps
// this in its target attributes.
#include "vector.h"
#include "rows.h"
#include "tiles.h"

const ckv_path CKV_PATH = {CKV_PATH_NAME, quantize_activation, dot_row, matvec_part, gemm_part};
