/* bench/bench_kernels.c — copy bandwidth and matmul speed per weight type,
 * ISA and thread count, as markdown tables.
 *
 *   build/release/bench_kernels [--quick]
 *
 * Decode (n_tok = 1) is reported in GB/s of weights read, prompt processing
 * (n_tok = 64) in GFLOP/s (2 * n_out * n_in * n_tok per call); every figure is
 * the median of repeated calls, with its ratio to the scalar path of the same
 * run. A last table runs the best ISA's decode on a weight matrix well over
 * 100 MB (beyond any L3) and compares it with the copy bandwidth. Weights are
 * random but finite. --quick shrinks every size (a smoke test).
 */
#include "bench_bw.h"

#include "mccom/kernels.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static uint64_t g_rng = 88172645463325252ull;

static uint32_t rnd_u32(void) {
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return (uint32_t)(g_rng >> 16);
}

static const char *type_name(int type) {
    switch (type) {
    case MC_TYPE_F32: return "f32";
    case MC_TYPE_F16: return "f16";
    case MC_TYPE_BF16: return "bf16";
    case MC_TYPE_Q8_0: return "q8_0";
    case MC_TYPE_Q4_0: return "q4_0";
    default: return "?";
    }
}

/* Random finite weights of any type, filled fast (no quantizer call). */
static void *random_weights(int type, int64_t n_out, int64_t n_in) {
    size_t row = mc_kernels_row_size(type, n_in);
    size_t bytes = row * (size_t)n_out;
    uint8_t *w = aligned_alloc(64, (bytes + 63) & ~(size_t)63);
    if (!w)
        return NULL;
    for (size_t i = 0; i + 4 <= bytes; i += 4) {
        uint32_t r = rnd_u32();
        memcpy(w + i, &r, 4);
    }
    if (type == MC_TYPE_F32) {
        float *f = (float *)w;
        for (size_t i = 0; i < bytes / 4; i++)
            f[i] = (float)(int32_t)rnd_u32() * 0x1p-31f;
    } else if (type == MC_TYPE_F16 || type == MC_TYPE_BF16) {
        uint16_t *h = (uint16_t *)w;
        for (size_t i = 0; i < bytes / 2; i++)
            h[i] = type == MC_TYPE_F16 ? (uint16_t)((h[i] & 0x83ffu) | 0x3800u)
                                       : (uint16_t)((h[i] & 0x807fu) | 0x3f00u);
    } else {
        size_t bsz = type == MC_TYPE_Q8_0 ? sizeof(mc_block_q8_0) : sizeof(mc_block_q4_0);
        for (size_t b = 0; b < bytes / bsz; b++) {
            uint16_t d = (uint16_t)(0x2000u + (rnd_u32() & 0x0fffu));
            memcpy(w + b * bsz, &d, 2);
        }
    }
    return w;
}

typedef struct bench_ctx {
    mc_pool *pools[3]; /* index = threads */
    float *X, *Y;
    void *scratch;
    size_t scratch_size;
} bench_ctx;

/* Median seconds per mc_matmul call: at least min_reps calls, more while the
 * total stays under budget_s. */
static double time_matmul(bench_ctx *b, const mc_kernels *k, int threads, int type, const void *W,
                          int64_t n_out, int64_t n_in, int64_t n_tok, int min_reps, double budget_s) {
    double t[64];
    int n = 0;
    double start = mc_time_s();
    int rc = mc_matmul(k, b->pools[threads], type, W, n_out, n_in, b->X, n_tok, b->Y, b->scratch,
                       b->scratch_size); /* warm-up */
    if (rc) {
        fprintf(stderr, "mc_matmul failed: %s\n", mc_code_name(rc));
        return -1;
    }
    while (n < 64 && (n < min_reps || mc_time_s() - start < budget_s)) {
        double t0 = mc_time_s();
        mc_matmul(k, b->pools[threads], type, W, n_out, n_in, b->X, n_tok, b->Y, b->scratch,
                  b->scratch_size);
        t[n++] = mc_time_s() - t0;
    }
    return mc_bench_median(t, n);
}

static void print_header(void) {
    char model[256] = "unknown CPU";
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (f) {
        char line[512];
        while (fgets(line, sizeof(line), f)) {
            if (!strncmp(line, "model name", 10)) {
                char *c = strchr(line, ':');
                if (c) {
                    snprintf(model, sizeof(model), "%s", c + 2);
                    model[strcspn(model, "\n")] = 0;
                }
                break;
            }
        }
        fclose(f);
    }
    printf("# bench_kernels\n\nmachine: %s, %ld online CPUs; best kernels: %s; build: %s\n\n", model,
           sysconf(_SC_NPROCESSORS_ONLN), mc_kernels_name(mc_kernels_best()),
#ifdef __OPTIMIZE__
           "optimized"
#else
           "unoptimized"
#endif
    );
}

int main(int argc, char **argv) {
    int quick = argc > 1 && !strcmp(argv[1], "--quick");
    double t_start = mc_time_s();
    print_header();

    bench_ctx b;
    memset(&b, 0, sizeof(b));
    for (int t = 1; t <= 2; t++) {
        if (mc_pool_new(t, &b.pools[t])) {
            fprintf(stderr, "cannot create a pool\n");
            return 1;
        }
    }

    /* ---- copy bandwidth ---- */
    size_t copy_bytes = quick ? (16u << 20) : (256u << 20);
    double bw[3] = {0};
    printf("## Copy bandwidth (STREAM-style, %zu MiB buffers, median of 7)\n\n", copy_bytes >> 20);
    printf("| threads | GB/s |\n|---:|---:|\n");
    for (int t = 1; t <= 2; t++) {
        bw[t] = mc_bench_copy_bandwidth(copy_bytes, b.pools[t], 7);
        printf("| %d | %.1f |\n", t, bw[t]);
    }
    printf("\n");

    /* ---- matmul per type x ISA ---- */
    const int64_t n_out = quick ? 512 : 4096, n_in = quick ? 512 : 4096;
    const int64_t toks[2] = {1, quick ? 8 : 64};
    static const int types[] = {MC_TYPE_F32, MC_TYPE_F16, MC_TYPE_BF16, MC_TYPE_Q8_0, MC_TYPE_Q4_0};
    int64_t max_tok = MC_MAX(toks[1], 1);
    b.X = malloc((size_t)(max_tok * n_in) * sizeof(float));
    b.Y = malloc((size_t)(max_tok * 16384) * sizeof(float));
    b.scratch_size = mc_matmul_scratch_size(MC_TYPE_Q8_0, 16384, max_tok);
    b.scratch_size = MC_MAX(b.scratch_size, mc_matmul_scratch_size(MC_TYPE_F16, n_in, max_tok));
    b.scratch = malloc(b.scratch_size);
    if (!b.X || !b.Y || !b.scratch)
        return 1;
    for (int64_t i = 0; i < max_tok * n_in; i++)
        b.X[i] = (float)(int32_t)rnd_u32() * 0x1p-31f;

    printf("## Matmul %lld x %lld (n_out x n_in)\n\n", (long long)n_out, (long long)n_in);
    printf("n_tok = 1: GB/s of weights read; n_tok = %lld: GFLOP/s. Median of repeats; "
           "x scalar = speed-up over the scalar path at the same thread count "
           "(the scalar path at n_tok > 1 is timed on 1/16 of the rows and scaled).\n\n",
           (long long)toks[1]);
    printf("| type | ISA | n_tok | threads | ms/call | GB/s or GFLOP/s | x scalar |\n");
    printf("|---|---|---:|---:|---:|---:|---:|\n");
    for (size_t ti = 0; ti < MC_ARRAY_LEN(types); ti++) {
        int type = types[ti];
        void *W = random_weights(type, n_out, n_in);
        if (!W)
            return 1;
        double wbytes = (double)mc_kernels_row_size(type, n_in) * (double)n_out;
        for (int tk = 0; tk < 2; tk++) {
            int64_t n_tok = toks[tk];
            for (int threads = 1; threads <= 2; threads++) {
                double t_scalar = 0;
                for (int isa = 0; isa < MC_ISA_COUNT; isa++) {
                    const mc_kernels *k = mc_kernels_for(isa);
                    if (!k)
                        continue;
                    /* the scalar path is slow at n_tok > 1: it computes the
                     * first 1/16 of the rows, timed once and scaled */
                    int slow = isa == MC_ISA_SCALAR && n_tok > 1;
                    int64_t rows = slow ? MC_MAX(16, n_out / 16) : n_out;
                    double t = time_matmul(&b, k, threads, type, W, rows, n_in, n_tok,
                                           slow ? 1 : 5, slow ? 0.0 : 0.3);
                    t *= (double)n_out / (double)rows;
                    if (t <= 0)
                        return 1;
                    if (isa == MC_ISA_SCALAR)
                        t_scalar = t;
                    double rate = n_tok == 1 ? wbytes / t / 1e9
                                             : 2.0 * (double)n_out * (double)n_in * (double)n_tok / t / 1e9;
                    printf("| %s | %s | %lld | %d | %.3f | %.1f | %.2f |\n", type_name(type),
                           k->name, (long long)n_tok, threads, t * 1e3, rate, t_scalar / t);
                    fflush(stdout);
                }
            }
        }
        free(W);
    }
    printf("\n");

    /* ---- decode on a matrix beyond the caches ---- */
    const int64_t big_out = quick ? 1024 : 14336, big_in = quick ? 1024 : 8192;
    const mc_kernels *best = mc_kernels_best();
    printf("## Decode (n_tok = 1) on a %lld x %lld matrix, %s\n\n", (long long)big_out,
           (long long)big_in, best->name);
    printf("| type | MB | threads | ms/call | GB/s | %% of copy GB/s |\n|---|---:|---:|---:|---:|---:|\n");
    static const int big_types[] = {MC_TYPE_Q8_0, MC_TYPE_Q4_0, MC_TYPE_F16};
    for (size_t ti = 0; ti < MC_ARRAY_LEN(big_types); ti++) {
        int type = big_types[ti];
        void *W = random_weights(type, big_out, big_in);
        if (!W)
            return 1;
        double wbytes = (double)mc_kernels_row_size(type, big_in) * (double)big_out;
        for (int threads = 1; threads <= 2; threads++) {
            double t = time_matmul(&b, best, threads, type, W, big_out, big_in, 1, 5, 0.5);
            if (t <= 0)
                return 1;
            double gbs = wbytes / t / 1e9;
            printf("| %s | %.0f | %d | %.2f | %.1f | %.0f%% |\n", type_name(type),
                   wbytes / 1e6, threads, t * 1e3, gbs, 100.0 * gbs / bw[threads]);
            fflush(stdout);
        }
        free(W);
    }
    printf("\ntotal bench time: %.1f s\n", mc_time_s() - t_start);

    for (int t = 1; t <= 2; t++)
        mc_pool_free(b.pools[t]);
    free(b.X);
    free(b.Y);
    free(b.scratch);
    return 0;
}
