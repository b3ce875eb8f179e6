/* bench/bench_engine.c — mccom's engine speed, measured the way llama-bench measures.
 *
 *   bench_engine speed MODEL.gguf [--pp 128] [--tg 64] [--threads N] [--reps 3]
 *   bench_engine completion MODEL.gguf [--ctx 1500] [--append 16] [--gen 12]
 *                           [--threads N] [--reps 3]
 *
 * speed: prompt processing = pp tokens in one batch into an empty cache; text generation
 * = tg tokens decoded one at a time from an empty cache (llama-bench's pp/tg tests). One
 * warm-up of each, then reps timed runs; prints JSON with the medians in tokens/s, like
 * `mccom-oracle bench`, so scripts/bench.sh can put the two side by side. Also the same
 * per second of process CPU time (pp_cpu_tok_s, tg_cpu_tok_s): on a shared machine,
 * where wall-clock time includes waiting for a core, that is the steadier figure for one
 * thread (with more, it counts the time threads spin waiting for each other).
 *
 * completion: the cost of one line-completion request on a long file. The cache holds a
 * ctx-token context; the request is that context plus `append` new tokens (what the
 * user typed), followed by `gen` greedy tokens. Warm: mc_ctx_set_prompt reuses the cached
 * prefix; cold: the same request on an empty cache. Prints JSON with the median
 * milliseconds of each.
 *
 * Token ids are pseudo-random (the models are random too); the KV cache is F16 (the
 * default, as llama.cpp's). Run with no arguments it prints usage and exits 0, so
 * scripts/bench.sh can call every bench_* program; bench.sh calls this one with models.
 */
#include "mccom/common.h"
#include "mccom/model.h"

#include <errno.h>
#include <time.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char USAGE[] =
    "usage: bench_engine speed MODEL.gguf [--pp 128] [--tg 64] [--threads N] [--reps 3]\n"
    "       bench_engine completion MODEL.gguf [--ctx 1500] [--append 16] [--gen 12]\n"
    "                    [--threads N] [--reps 3]\n";

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("bench_engine: ", stderr);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(1);
}

typedef struct opts {
    const char *model;
    int pp, tg, threads, reps;
    int ctx, append, gen;
} opts;

static int parse_int(const char *flag, const char *s, int lo, int hi) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        die("%s: expected an integer in [%d, %d], got '%s'", flag, lo, hi, s);
    return (int)v;
}

static void parse(opts *o, int argc, char **argv) {
    *o = (opts){NULL, 128, 64, 0, 3, 1500, 16, 12};
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        int *dst = !strcmp(a, "--pp")        ? &o->pp
                   : !strcmp(a, "--tg")      ? &o->tg
                   : !strcmp(a, "--threads") ? &o->threads
                   : !strcmp(a, "--reps")    ? &o->reps
                   : !strcmp(a, "--ctx")     ? &o->ctx
                   : !strcmp(a, "--append")  ? &o->append
                   : !strcmp(a, "--gen")     ? &o->gen
                                             : NULL;
        if (dst) {
            if (!v)
                die("%s needs a value", a);
            *dst = parse_int(a, v, 0, 1 << 20);
            i++;
        } else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(USAGE, stdout);
            exit(0);
        } else if (a[0] == '-') {
            die("unknown option '%s'\n%s", a, USAGE);
        } else if (!o->model) {
            o->model = a;
        } else {
            die("unexpected argument '%s'", a);
        }
    }
    if (!o->model)
        die("no model given\n%s", USAGE);
    if (o->reps < 1)
        o->reps = 1;
    if (o->threads == 0)
        o->threads = (int)sysconf(_SC_NPROCESSORS_ONLN);
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static void make_tokens(int32_t *t, int n, int n_vocab, uint64_t seed) {
    uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
    for (int i = 0; i < n; i++) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        t[i] = (int32_t)(s % (uint64_t)n_vocab);
    }
}

static mc_model *load(const char *path) {
    mc_model *m = NULL;
    mc_err err;
    if (mc_model_load(path, &m, &err) != 0)
        die("cannot load '%s': %s", path, err.msg);
    return m;
}

static mc_ctx *new_ctx(mc_model *m, int n_ctx, int n_threads) {
    mc_ctx_params p = mc_ctx_params_default();
    p.n_ctx = n_ctx;
    p.n_threads = n_threads;
    mc_ctx *c = NULL;
    mc_err err;
    if (mc_ctx_new(m, &p, &c, &err) != 0)
        die("cannot create a context: %s", err.msg);
    return c;
}

static void decode(mc_ctx *c, const int32_t *t, int n) {
    mc_err err;
    if (mc_ctx_decode(c, t, n, 0, &err) != 0)
        die("decode failed: %s", err.msg);
}

static double cpu_time_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void print_runs(const char *key, const double *v, int n) {
    printf("  \"%s\": [", key);
    for (int i = 0; i < n; i++)
        printf(i ? ", %.3f" : "%.3f", v[i]);
    printf("],\n");
}

static int cmd_speed(const opts *o) {
    mc_model *m = load(o->model);
    const mc_hparams *hp = mc_model_hparams(m);
    int n_tok = MC_MAX(o->pp, o->tg) + 1;
    mc_ctx *c = new_ctx(m, n_tok, o->threads);
    int32_t *toks = malloc((size_t)n_tok * sizeof *toks);
    double *pp = calloc((size_t)o->reps, sizeof *pp), *tg = calloc((size_t)o->reps, sizeof *tg);
    double *ppc = calloc((size_t)o->reps, sizeof *ppc), *tgc = calloc((size_t)o->reps, sizeof *tgc);
    if (!toks || !pp || !tg || !ppc || !tgc)
        die("out of memory");
    make_tokens(toks, n_tok, hp->n_vocab, 1);
    if (o->pp > 0) { /* warm-up */
        mc_ctx_truncate(c, 0);
        decode(c, toks, o->pp);
    }
    if (o->tg > 0) {
        mc_ctx_truncate(c, 0);
        decode(c, toks, 1);
    }
    for (int r = 0; r < o->reps; r++) {
        if (o->pp > 0) {
            mc_ctx_truncate(c, 0);
            double t0 = mc_time_s(), c0 = cpu_time_s();
            decode(c, toks, o->pp);
            pp[r] = o->pp / (mc_time_s() - t0);
            ppc[r] = o->pp / (cpu_time_s() - c0);
        }
        if (o->tg > 0) {
            mc_ctx_truncate(c, 0);
            double t0 = mc_time_s(), c0 = cpu_time_s();
            for (int i = 0; i < o->tg; i++)
                decode(c, &toks[i], 1);
            tg[r] = o->tg / (mc_time_s() - t0);
            tgc[r] = o->tg / (cpu_time_s() - c0);
        }
    }
    printf("{\n  \"engine\": \"mccom\",\n  \"model\": \"%s\",\n", o->model);
    printf("  \"arch\": \"%s\",\n  \"n_vocab\": %d,\n  \"n_embd\": %d,\n  \"n_layer\": %d,\n",
           hp->arch, hp->n_vocab, hp->n_embd, hp->n_layer);
    printf("  \"model_bytes\": %zu,\n", mc_model_weight_bytes(m));
    printf("  \"threads\": %d,\n  \"pp\": %d,\n  \"tg\": %d,\n  \"reps\": %d,\n", o->threads,
           o->pp, o->tg, o->reps);
    if (o->pp > 0)
        print_runs("pp_runs", pp, o->reps);
    if (o->tg > 0)
        print_runs("tg_runs", tg, o->reps);
    printf("  \"pp_cpu_tok_s\": %.3f,\n", o->pp > 0 ? median(ppc, o->reps) : 0.0);
    printf("  \"tg_cpu_tok_s\": %.3f,\n", o->tg > 0 ? median(tgc, o->reps) : 0.0);
    printf("  \"pp_tok_s\": %.3f,\n", o->pp > 0 ? median(pp, o->reps) : 0.0);
    printf("  \"tg_tok_s\": %.3f\n}\n", o->tg > 0 ? median(tg, o->reps) : 0.0);
    free(pp);
    free(tg);
    free(ppc);
    free(tgc);
    free(toks);
    mc_ctx_free(c);
    mc_model_free(m);
    return 0;
}

/* One request: make the cache hold req[0..n) (reusing what it can), then gen greedy
 * tokens. Returns seconds. */
static double request(mc_ctx *c, const int32_t *req, int n, int gen, const mc_hparams *hp,
                      int *n_reused) {
    mc_err err;
    double t0 = mc_time_s();
    if (mc_ctx_set_prompt(c, req, n, n_reused, &err) != 0)
        die("set_prompt failed: %s", err.msg);
    int n_last = n - *n_reused; /* rows computed by set_prompt: the last one is ours */
    const float *row = NULL;
    for (int i = n_last - 1; i >= 0 && !row; i--)
        row = mc_ctx_logits(c, i);
    for (int i = 0; i < gen; i++) {
        if (!row)
            die("no logits after decode");
        int32_t t = mc_argmax(row, hp->n_vocab);
        decode(c, &t, 1);
        row = mc_ctx_logits(c, 0);
    }
    return mc_time_s() - t0;
}

static int cmd_completion(const opts *o) {
    mc_model *m = load(o->model);
    const mc_hparams *hp = mc_model_hparams(m);
    int n_req = o->ctx + o->append;
    int n_ctx = n_req + o->gen + 1;
    if (n_ctx > hp->n_ctx_train)
        fprintf(stderr, "bench_engine: note: %d tokens exceed the model's context_length %d\n",
                n_ctx, hp->n_ctx_train);
    mc_ctx *c = new_ctx(m, n_ctx, o->threads);
    int32_t *req = malloc((size_t)n_req * sizeof *req);
    double *warm = calloc((size_t)o->reps, sizeof *warm);
    double *cold = calloc((size_t)o->reps, sizeof *cold);
    if (!req || !warm || !cold)
        die("out of memory");
    make_tokens(req, n_req, hp->n_vocab, 2);
    int n_reused = 0, warm_reused = 0;
    request(c, req, o->ctx, 0, hp, &n_reused); /* warm-up and the cached context */
    for (int r = 0; r < o->reps; r++) {
        /* warm: the cache holds the context (and last request's tail, rolled back) */
        mc_ctx_truncate(c, o->ctx);
        warm[r] = request(c, req, n_req, o->gen, hp, &warm_reused);
        /* cold: nothing cached */
        mc_ctx_truncate(c, 0);
        cold[r] = request(c, req, n_req, o->gen, hp, &n_reused);
    }
    printf("{\n  \"engine\": \"mccom\",\n  \"model\": \"%s\",\n  \"threads\": %d,\n", o->model,
           o->threads);
    printf("  \"ctx\": %d,\n  \"append\": %d,\n  \"gen\": %d,\n  \"reps\": %d,\n", o->ctx,
           o->append, o->gen, o->reps);
    printf("  \"warm_reused\": %d,\n", warm_reused);
    printf("  \"warm_ms\": %.2f,\n  \"cold_ms\": %.2f\n}\n", 1e3 * median(warm, o->reps),
           1e3 * median(cold, o->reps));
    free(warm);
    free(cold);
    free(req);
    mc_ctx_free(c);
    mc_model_free(m);
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fputs(USAGE, stdout);
        return 0;
    }
    opts o;
    if (!strcmp(argv[1], "speed")) {
        parse(&o, argc - 2, argv + 2);
        return cmd_speed(&o);
    }
    if (!strcmp(argv[1], "completion")) {
        parse(&o, argc - 2, argv + 2);
        return cmd_completion(&o);
    }
    if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
        fputs(USAGE, stdout);
        return 0;
    }
    die("unknown command '%s'\n%s", argv[1], USAGE);
}
