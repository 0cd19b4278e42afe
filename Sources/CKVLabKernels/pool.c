#include "ckvlab_kernels.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

#if defined(__x86_64__)
#include <immintrin.h>
#define CKV_RELAX() _mm_pause()
#else
#define CKV_RELAX() ((void)0)
#endif

/// How long a worker spins for the next dispatch before it sleeps: longer than the gap between
/// a decode step's products (norms, RoPE, attention), far shorter than a human's pause.
#define CKV_SPIN_NANOSECONDS 300000L

struct ckv_pool;

typedef struct {
    struct ckv_pool *pool;
    int index;
} ckv_worker;

struct ckv_pool {
    int threads;
    pthread_t *handles;
    ckv_worker *workers;
    ckv_task task;
    void *context;
    atomic_uint generation;
    atomic_int remaining;
    atomic_int sleepers;
    atomic_int stopping;
    pthread_mutex_t mutex;
    pthread_cond_t wake;
};

static long now_nanoseconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000000000L + t.tv_nsec;
}

/// Waits until the generation differs from `seen`: spinning first, then asleep on the condition.
static unsigned next_generation(struct ckv_pool *pool, unsigned seen) {
    unsigned current;
    long deadline = 0;
    for (int spins = 0; (current = atomic_load(&pool->generation)) == seen; spins++) {
        CKV_RELAX();
        if ((spins & 255) != 255) continue;
        const long now = now_nanoseconds();
        if (deadline == 0) deadline = now + CKV_SPIN_NANOSECONDS;
        if (now < deadline) continue;
        pthread_mutex_lock(&pool->mutex);
        // Announced before the last look: a dispatcher that bumps the generation afterwards sees
        // the sleeper and signals under the mutex, so the wakeup cannot be lost.
        atomic_fetch_add(&pool->sleepers, 1);
        while (atomic_load(&pool->generation) == seen) pthread_cond_wait(&pool->wake, &pool->mutex);
        atomic_fetch_sub(&pool->sleepers, 1);
        pthread_mutex_unlock(&pool->mutex);
    }
    return current;
}

static void *worker_main(void *argument) {
    ckv_worker *worker = argument;
    struct ckv_pool *pool = worker->pool;
    unsigned seen = 0;
    for (;;) {
        seen = next_generation(pool, seen);
        if (atomic_load(&pool->stopping)) return NULL;
        pool->task(pool->context, worker->index, pool->threads);
        atomic_fetch_sub_explicit(&pool->remaining, 1, memory_order_release);
    }
}

static void publish(struct ckv_pool *pool) {
    atomic_fetch_add(&pool->generation, 1);
    if (atomic_load(&pool->sleepers) > 0) {
        pthread_mutex_lock(&pool->mutex);
        pthread_cond_broadcast(&pool->wake);
        pthread_mutex_unlock(&pool->mutex);
    }
}

ckv_pool *ckv_pool_create(int threads) {
    struct ckv_pool *pool = calloc(1, sizeof *pool);
    if (!pool) return NULL;
    pool->threads = threads < 1 ? 1 : threads;
    pthread_mutex_init(&pool->mutex, NULL);
    pthread_cond_init(&pool->wake, NULL);
    const int workers = pool->threads - 1;
    pool->handles = calloc((size_t)(workers > 0 ? workers : 1), sizeof(pthread_t));
    pool->workers = calloc((size_t)(workers > 0 ? workers : 1), sizeof(ckv_worker));
    for (int i = 0; i < workers; i++) {
        pool->workers[i] = (ckv_worker){pool, i + 1};
        if (pthread_create(&pool->handles[i], NULL, worker_main, &pool->workers[i]) != 0) {
            // Fewer threads than asked: the shares are still all computed, by the ones that started.
            pool->threads = i + 1;
            break;
        }
    }
    return pool;
}

void ckv_pool_destroy(ckv_pool *pool) {
    if (!pool) return;
    atomic_store(&pool->stopping, 1);
    publish(pool);
    for (int i = 0; i < pool->threads - 1; i++) pthread_join(pool->handles[i], NULL);
    pthread_mutex_destroy(&pool->mutex);
    pthread_cond_destroy(&pool->wake);
    free(pool->handles);
    free(pool->workers);
    free(pool);
}

int ckv_pool_threads(const ckv_pool *pool) { return pool->threads; }

void ckv_pool_run(ckv_pool *pool, ckv_task task, void *context) {
    if (pool->threads == 1) {
        task(context, 0, 1);
        return;
    }
    pool->task = task;
    pool->context = context;
    atomic_store(&pool->remaining, pool->threads - 1);
    publish(pool);
    task(context, 0, pool->threads);
    // A worker descheduled on a busy machine would make pure spinning burn the core it needs.
    for (int spins = 0; atomic_load_explicit(&pool->remaining, memory_order_acquire) > 0; spins++) {
        if (spins < 4096) CKV_RELAX(); else sched_yield();
    }
}
