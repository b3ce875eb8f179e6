/* bench/bench_bw.h — STREAM-style copy bandwidth, for any bench program.
 *
 * mc_bench_copy_bandwidth(bytes, pool) copies a `bytes`-byte buffer into
 * another with memcpy split over the pool's threads (NULL = one thread) and
 * returns the median over `reps` repeats of (read + written bytes) / time, in
 * GB/s, as STREAM's "Copy" counts it. Use a buffer far larger than the last
 * level cache (>= 4x) for a memory figure. Returns 0 if allocation fails.
 */
#ifndef MCCOM_BENCH_BW_H
#define MCCOM_BENCH_BW_H

#include "mccom/common.h"
#include "mccom/pool.h"

#include <stdlib.h>
#include <string.h>

typedef struct mc_bench_copy_job {
    char *dst;
    const char *src;
    size_t bytes;
    int n_parts;
} mc_bench_copy_job;

static void mc_bench_copy_task(void *arg, int task, int thread) {
    (void)thread;
    mc_bench_copy_job *j = arg;
    size_t per = (j->bytes / (size_t)j->n_parts + 4095) & ~(size_t)4095;
    size_t a = per * (size_t)task;
    if (a >= j->bytes)
        return;
    size_t n = MC_MIN(per, j->bytes - a);
    memcpy(j->dst + a, j->src + a, n);
}

static int mc_bench_cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static inline double mc_bench_median(double *v, int n) {
    qsort(v, (size_t)n, sizeof(double), mc_bench_cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static inline double mc_bench_copy_bandwidth(size_t bytes, mc_pool *pool, int reps) {
    char *src = aligned_alloc(4096, (bytes + 4095) & ~(size_t)4095);
    char *dst = aligned_alloc(4096, (bytes + 4095) & ~(size_t)4095);
    if (!src || !dst) {
        free(src);
        free(dst);
        return 0.0;
    }
    memset(src, 1, bytes);
    memset(dst, 2, bytes); /* fault the pages in before timing */
    mc_bench_copy_job j = {dst, src, bytes, mc_pool_n_threads(pool)};
    double gbs[64];
    reps = MC_MAX(1, MC_MIN(reps, 64));
    for (int r = 0; r < reps; r++) {
        double t0 = mc_time_s();
        mc_pool_run(pool, mc_bench_copy_task, &j, j.n_parts);
        double dt = mc_time_s() - t0;
        gbs[r] = 2.0 * (double)bytes / dt / 1e9;
    }
    free(src);
    free(dst);
    return mc_bench_median(gbs, reps);
}

#endif
