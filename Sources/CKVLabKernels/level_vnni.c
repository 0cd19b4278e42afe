#include "internal.h"

#if defined(__x86_64__)
#include <immintrin.h>

// AVX-512 VNNI (vpdpbusd: 256-bit vectors in the row kernels, 512-bit in the tiles), for CPUs that
// have it; chosen at run time.
#pragma clang attribute push(__attribute__((target("avx2,fma,f16c,avx512f,avx512vl,avx512bw,avx512vnni"))), apply_to = function)
#define CKV_X86 1
#define CKV_VNNI 1
#define CKV_PATH ckv_path_vnni
#define CKV_PATH_NAME "avx512-vnni"
#include "level.h"
#pragma clang attribute pop
#endif
