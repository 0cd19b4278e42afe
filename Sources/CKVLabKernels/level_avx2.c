#include "internal.h"

#if defined(__x86_64__)
#include <immintrin.h>

// AVX2 with FMA and F16C (Haswell, Zen and later); chosen at run time.
#pragma clang attribute push(__attribute__((target("avx2,fma,f16c"))), apply_to = function)
#define CKV_X86 1
#define CKV_PATH ckv_path_avx2
#define CKV_PATH_NAME "avx2"
#include "level.h"
#pragma clang attribute pop
#endif
