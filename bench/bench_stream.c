/* bench/bench_stream.c — STREAM-style memory bandwidth (the "copy" kernel).
 *
 *   bench_stream [--threads N] [--mb M] [--reps R] [--json]
 *
 * c[i] = a[i] over two arrays of M MiB (default 256, far beyond any cache), split
 * across N threads (default: 1 and every online CPU), best of R runs (default 10), as
 * STREAM reports. Bandwidth counts bytes read plus bytes written (2 x M MiB per run),
 * STREAM's convention. scripts/bench.sh uses it to put decode speed against the memory
 * bandwidth limit (a decode step reads every weight once). Each thread first-touches its
 * own slice so pages sit near the thread that copies them.
 */
#include "mccom/common.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct job {
    double *a, *c;
    size_t n;
    pthread_barrier_t *bar;
    int reps;
    double *best_s; /* written by thread 0 */
} job;

/* Every thread runs reps copies between barriers; thread 0 times each. */
static void *worker(void *arg) {
    job *j = arg;
    for (size_t i = 0; i < j->n; i++) {
        j->a[i] = 1.0 + (double)(i & 1023);
        j->c[i] = 0.0;
    }
    for (int r = 0; r < j->reps; r++) {
        pthread_barrier_wait(j->bar);
        double t0 = j->best_s ? mc_time_s() : 0;
        memcpy(j->c, j->a, j->n * sizeof(double));
        pthread_barrier_wait(j->bar);
        if (j->best_s) {
            double dt = mc_time_s() - t0;
            if (dt < *j->best_s)
                *j->best_s = dt;
        }
    }
    return NULL;
}

/* Best copy bandwidth in GB/s (1e9 bytes) with n_threads threads. */
static double stream_copy(int n_threads, size_t mib, int reps) {
    size_t n = mib * 1024 * 1024 / sizeof(double);
    double *a = malloc(n * sizeof *a), *c = malloc(n * sizeof *c);
    if (!a || !c) {
        fprintf(stderr, "bench_stream: cannot allocate 2 x %zu MiB\n", mib);
        exit(1);
    }
    pthread_barrier_t bar;
    pthread_barrier_init(&bar, NULL, (unsigned)n_threads);
    double best = 1e30;
    job *jobs = calloc((size_t)n_threads, sizeof *jobs);
    pthread_t *th = calloc((size_t)n_threads, sizeof *th);
    size_t per = (n + (size_t)n_threads - 1) / (size_t)n_threads;
    for (int t = 0; t < n_threads; t++) {
        size_t lo = MC_MIN(n, (size_t)t * per), hi = MC_MIN(n, lo + per);
        jobs[t] = (job){a + lo, c + lo, hi - lo, &bar, reps, t == 0 ? &best : NULL};
    }
    for (int t = 1; t < n_threads; t++)
        pthread_create(&th[t], NULL, worker, &jobs[t]);
    worker(&jobs[0]);
    for (int t = 1; t < n_threads; t++)
        pthread_join(th[t], NULL);
    pthread_barrier_destroy(&bar);
    free(jobs);
    free(th);
    free(a);
    free(c);
    return 2.0 * (double)(n * sizeof(double)) / best / 1e9;
}

static int parse_int(const char *flag, const char *s, int lo, int hi) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) {
        fprintf(stderr, "bench_stream: %s: expected an integer in [%d, %d]\n", flag, lo, hi);
        exit(2);
    }
    return (int)v;
}

int main(int argc, char **argv) {
    int threads = 0, mib = 256, reps = 10, json = 0;
    for (int i = 1; i < argc; i++) {
        const char *v = i + 1 < argc ? argv[i + 1] : "";
        if (!strcmp(argv[i], "--threads"))
            threads = parse_int("--threads", v, 1, 1024), i++;
        else if (!strcmp(argv[i], "--mb"))
            mib = parse_int("--mb", v, 1, 1 << 16), i++;
        else if (!strcmp(argv[i], "--reps"))
            reps = parse_int("--reps", v, 1, 1000), i++;
        else if (!strcmp(argv[i], "--json"))
            json = 1;
        else {
            fprintf(stderr, "usage: bench_stream [--threads N] [--mb M] [--reps R] [--json]\n");
            return strcmp(argv[i], "--help") && strcmp(argv[i], "-h") ? 2 : 0;
        }
    }
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    int list[2] = {1, ncpu > 1 ? (int)ncpu : 1};
    int n_list = list[1] > 1 ? 2 : 1;
    if (threads) {
        list[0] = threads;
        n_list = 1;
    }
    if (!json)
        printf("## Memory bandwidth (STREAM copy, 2 x %d MiB, best of %d)\n\n"
               "| threads | copy GB/s |\n|---:|---:|\n",
               mib, reps);
    for (int k = 0; k < n_list; k++) {
        double gbs = stream_copy(list[k], (size_t)mib, reps);
        if (json)
            printf("{\"threads\": %d, \"mib\": %d, \"copy_gb_s\": %.2f}\n", list[k], mib, gbs);
        else
            printf("| %d | %.2f |\n", list[k], gbs);
    }
    if (!json)
        printf("\n");
    return 0;
}
