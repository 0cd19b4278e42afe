#include "internal.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// The vector path, chosen once at run time: the best this CPU supports (cpuid), or the one
// KVLAB_KERNELS names.

static const ckv_path *const paths[] = {
    [CKV_PATH_PORTABLE] = &ckv_path_portable,
#if defined(__x86_64__)
    [CKV_PATH_AVX2] = &ckv_path_avx2,
    [CKV_PATH_VNNI] = &ckv_path_vnni,
#endif
};

int ckv_path_supported(int path) {
    switch (path) {
    case CKV_PATH_PORTABLE: return 1;
#if defined(__x86_64__)
    case CKV_PATH_AVX2:
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
    case CKV_PATH_VNNI:
        return ckv_path_supported(CKV_PATH_AVX2) && __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bw")
            && __builtin_cpu_supports("avx512vnni");
#endif
    default: return 0;
    }
}

const char *ckv_path_name(int path) { return path >= CKV_PATH_PORTABLE && path <= CKV_PATH_VNNI ? (const char *[]){"", "portable", "avx2", "avx512-vnni"}[path] : "unknown"; }

static int active = CKV_PATH_ACTIVE;
static pthread_once_t chosen = PTHREAD_ONCE_INIT;

static void choose(void) {
    const char *asked = getenv("KVLAB_KERNELS");
    if (asked && *asked) {
        for (int p = CKV_PATH_PORTABLE; p <= CKV_PATH_VNNI; p++) {
            if (strcmp(asked, ckv_path_name(p)) == 0 || (p == CKV_PATH_VNNI && strcmp(asked, "vnni") == 0)) active = p;
        }
        if (active == CKV_PATH_ACTIVE) {
            fprintf(stderr, "Error: KVLAB_KERNELS=%s: not a kernel path (portable, avx2, avx512-vnni)\n", asked);
            exit(2);
        }
        if (!ckv_path_supported(active)) {
            fprintf(stderr, "Error: KVLAB_KERNELS=%s: this CPU lacks that path's instructions\n", asked);
            exit(2);
        }
        return;
    }
    active = CKV_PATH_PORTABLE;
    for (int p = CKV_PATH_VNNI; p > CKV_PATH_PORTABLE; p--) {
        if (ckv_path_supported(p)) {
            active = p;
            break;
        }
    }
}

int ckv_active_path(void) {
    pthread_once(&chosen, choose);
    return active;
}

static const ckv_path *resolve(int path) { return paths[path == CKV_PATH_ACTIVE ? ckv_active_path() : path]; }

const char *ckv_vector_path(void) { return ckv_path_name(ckv_active_path()); }

size_t ckv_activation_bytes(int n) { return (size_t)n + (size_t)(n / 32) * 8; }

int ckv_has_kernel(int type) {
    return type == CKV_F32 || type == CKV_F16 || type == CKV_BF16 || type == CKV_Q8_0 || type == CKV_Q4_0 || type == CKV_Q4_1
        || type == CKV_Q4_K || type == CKV_Q6_K;
}

int ckv_uses_quantized_activation(int type) { return (ckv_has_kernel(type) && type != CKV_F32 && type != CKV_F16 && type != CKV_BF16) || ckv_has_tile(type); }

void ckv_quantize_activation(const float *x, int n, ckv_activation a) { resolve(CKV_PATH_ACTIVE)->quantize_activation(x, n, a); }

float ckv_dot_row(int path, int type, const void *row, int cols, const float *x, ckv_activation a) {
    return resolve(path)->dot_row(type, row, cols, x, a);
}

void ckv_matvec_part(void *matvec, int index, int count) { resolve(((ckv_matvec *)matvec)->path)->matvec_part(matvec, index, count); }

void ckv_decode_f16(const void *src, int n, float *dst) { resolve(CKV_PATH_ACTIVE)->decode_f16(src, n, dst); }

void ckv_gemm_part(void *gemm, int index, int count) { resolve(((ckv_gemm *)gemm)->path)->gemm_part(gemm, index, count); }
