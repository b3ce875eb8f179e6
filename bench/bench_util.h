/* bench/bench_util.h — small helpers shared by the bench programs: a growable set of
 * timing samples with percentiles, and reading a whole file.
 *
 * mc_bench_push(s, x)   appends (exits with a message when memory runs out)
 * mc_bench_pct(s, p)    the p-quantile (0.5 = median, nearest rank), NaN when empty;
 *                       sorts the samples in place
 * mc_bench_free(s)      releases them
 * mc_bench_slurp(path, &len)  the file's bytes plus a terminating NUL, or NULL; len may
 *                       be NULL
 */
#ifndef MCCOM_BENCH_UTIL_H
#define MCCOM_BENCH_UTIL_H

#include <stdio.h>
#include <stdlib.h>

typedef struct mc_bench_samples {
    double *v;
    int n, cap;
} mc_bench_samples;

static inline void mc_bench_push(mc_bench_samples *s, double x) {
    if (s->n == s->cap) {
        int cap = s->cap ? s->cap * 2 : 64;
        double *v = realloc(s->v, (size_t)cap * sizeof *v);
        if (!v) {
            fprintf(stderr, "bench: out of memory\n");
            exit(1);
        }
        s->v = v;
        s->cap = cap;
    }
    s->v[s->n++] = x;
}

static inline int mc_bench_cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static inline double mc_bench_pct(mc_bench_samples *s, double p) {
    if (s->n == 0)
        return 0.0 / 0.0;
    qsort(s->v, (size_t)s->n, sizeof *s->v, mc_bench_cmp_d);
    return s->v[(int)(p * (s->n - 1) + 0.5)];
}

static inline void mc_bench_free(mc_bench_samples *s) {
    free(s->v);
    s->v = NULL;
    s->n = s->cap = 0;
}

static inline char *mc_bench_slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    long n = -1;
    if (fseek(f, 0, SEEK_END) == 0)
        n = ftell(f);
    char *b = n >= 0 && fseek(f, 0, SEEK_SET) == 0 ? malloc((size_t)n + 1) : NULL;
    if (b && fread(b, 1, (size_t)n, f) != (size_t)n) {
        free(b);
        b = NULL;
    }
    fclose(f);
    if (b) {
        b[n] = '\0';
        if (len)
            *len = (size_t)n;
    }
    return b;
}

#endif
