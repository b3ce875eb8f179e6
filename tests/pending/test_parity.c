/* tests/test_parity.c — mccom's engine against llama.cpp itself.
 *
 * For several shapes (llama MHA and GQA, qwen2 with q/k/v biases, tied and untied
 * output, odd widths) and weight types, a random model is written by build/tools/mkmodel
 * and evaluated by both engines on the same token ids: mccom in process (model.h), and
 * llama.cpp through build/tools' sibling build/oracle/mccom-oracle (a subprocess; both are
 * built by `make test`). A missing tool is a failure, not a skip: parity is the proof
 * that the engine is right.
 *
 * What is compared, and the bounds (err = max |ours - theirs| / max |theirs| over every
 * position and vocabulary entry):
 *   - logits of every position of one batch: F32 and BF16 weights 1e-4; F16 2e-3;
 *     Q8_0 5e-3; Q4_0 1e-2 (see TOL_* below for why);
 *   - greedy continuations of 20 tokens: equal, except that after a step whose top-two
 *     margin (in our logits) is within the type's bound the sequences may part (a near
 *     tie is decided by rounding, not by the model);
 *   - within mccom: a batch versus one token at a time, and a prompt set with prefix
 *     reuse (mc_ctx_set_prompt) versus a fresh context: 1e-5, the same arithmetic up to
 *     the order of f32 sums.
 * The oracle runs with one thread; the runner runs tests in parallel.
 */
#include "test.h"

#include "mccom/model.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* Why these bounds. Both engines read the same weights, so weight rounding is common.
 * What differs is the arithmetic around them:
 *  - F32: only the order of f32 sums and the KV cache (both F16 in llama.cpp by
 *    default; the oracle is run with the KV type chosen by oracle_kv()): ~1e-6
 *    relative per matmul, 1e-4 leaves room for a few layers of growth. BF16 weights take
 *    the same path as F32 in ggml (activations rounded to BF16 on both sides).
 *  - F16: ggml rounds activations to F16 before each matmul (so does mccom, kernels.h);
 *    a 1-ulp difference in an activation before rounding moves it by one F16 ulp
 *    (2^-11 = 4.9e-4 relative), and such flips compound across layers: 2e-3.
 *  - Q8_0 / Q4_0: activations are quantized to Q8_0 per block of 32 (d = amax/127);
 *    an upstream f32 difference can flip one element's rounding, an error of one
 *    quantum (1/127 of the block's max) in that element; Q4_0 weights are coarser so
 *    each such flip weighs more: 5e-3 and 1e-2. Measured values are printed with -v. */
#define TOL_F32 1e-4
#define TOL_F16 2e-3
#define TOL_Q8_0 5e-3
#define TOL_Q4_0 1e-2
#define TOL_SELF 1e-5

static double tol_for(const char *type) {
    if (!strcmp(type, "f16"))
        return TOL_F16;
    if (!strcmp(type, "q8_0"))
        return TOL_Q8_0;
    if (!strcmp(type, "q4_0"))
        return TOL_Q4_0;
    return TOL_F32; /* f32, bf16 */
}

static const char *oracle_path(void) {
    const char *p = getenv("MC_ORACLE");
    return p && *p ? p : "build/oracle/mccom-oracle";
}

static const char *mkmodel_path(void) {
    const char *p = getenv("MC_MKMODEL");
    return p && *p ? p : "build/tools/mkmodel";
}

/* KV cache type for the oracle: mccom's cache is F16 (kernels.h: vec_dot_f16_f32). */
static const char *oracle_kv(void) {
    const char *p = getenv("MC_PARITY_KV");
    return p && *p ? p : "f16";
}

static void require_tools(void) {
    if (access(oracle_path(), X_OK) != 0) {
        mc_test_fail_at(__FILE__, __LINE__,
                        "llama.cpp oracle %s is missing: `make test` installs and builds it "
                        "(scripts/setup-npm.sh, make oracle)",
                        oracle_path());
        mc_test_abort();
    }
    if (access(mkmodel_path(), X_OK) != 0) {
        mc_test_fail_at(__FILE__, __LINE__, "%s is missing: `make tools` builds it",
                        mkmodel_path());
        mc_test_abort();
    }
}

/* Run a shell command; its stdout (up to cap-1 bytes, NUL-terminated) into out. Returns
 * the exit status, or -1 if it could not run. */
static int run(const char *cmd, char *out, size_t cap) {
    FILE *f = popen(cmd, "r");
    if (!f)
        return -1;
    size_t len = 0;
    if (out && cap) {
        size_t r;
        while (len + 1 < cap && (r = fread(out + len, 1, cap - 1 - len, f)) > 0)
            len += r;
        out[len] = 0;
    }
    char sink[256];
    while (fread(sink, 1, sizeof sink, f) > 0) {
    }
    int st = pclose(f);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void tokens_csv(const int32_t *t, int n, char *buf, size_t cap) {
    size_t len = 0;
    buf[0] = 0;
    for (int i = 0; i < n && len < cap; i++)
        len += (size_t)snprintf(buf + len, cap - len, i ? ",%d" : "%d", t[i]);
}

/* Deterministic token ids in [0, n_vocab). */
static void make_tokens(int32_t *t, int n, int n_vocab, uint64_t seed) {
    uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
    for (int i = 0; i < n; i++) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        t[i] = (int32_t)(s % (uint64_t)n_vocab);
    }
}

/* Write a model with mkmodel; returns its path (static buffer per call site is fine: one
 * model per test). */
static const char *make_model(const char *args) {
    static char path[1024];
    char cmd[2048], out[512];
    int w = snprintf(path, sizeof path, "%s/model.gguf", mc_test_tmpdir());
    MC_REQUIRE(w > 0 && (size_t)w < sizeof path);
    w = snprintf(cmd, sizeof cmd, "%s -q %s %s 2>&1", mkmodel_path(), args, path);
    MC_REQUIRE(w > 0 && (size_t)w < sizeof cmd);
    int rc = run(cmd, out, sizeof out);
    if (rc != 0) {
        mc_test_fail_at(__FILE__, __LINE__, "mkmodel %s failed (%d): %s", args, rc, out);
        mc_test_abort();
    }
    return path;
}

/* llama.cpp's logits of every position: n * n_vocab floats (malloc'd). */
static float *oracle_logits(const char *model, const int32_t *t, int n, int n_vocab) {
    char csv[8192], cmd[10240], out[512], bin[1024];
    tokens_csv(t, n, csv, sizeof csv);
    int wb = snprintf(bin, sizeof bin, "%s/oracle-logits.bin", mc_test_tmpdir());
    MC_REQUIRE(wb > 0 && (size_t)wb < sizeof bin);
    int w = snprintf(cmd, sizeof cmd,
                     "%s logits %s --tokens %s --all --threads 1 --kv %s --out %s 2>&1",
                     oracle_path(), model, csv, oracle_kv(), bin);
    MC_REQUIRE(w > 0 && (size_t)w < sizeof cmd);
    int rc = run(cmd, out, sizeof out);
    if (rc != 0) {
        mc_test_fail_at(__FILE__, __LINE__, "oracle logits failed (%d): %s", rc, out);
        mc_test_abort();
    }
    size_t nf = (size_t)n * (size_t)n_vocab;
    float *x = malloc(nf * sizeof *x);
    FILE *f = fopen(bin, "rb");
    MC_REQUIRE(x && f);
    size_t got = fread(x, sizeof(float), nf, f);
    fclose(f);
    if (got != nf) {
        mc_test_fail_at(__FILE__, __LINE__, "oracle wrote %zu floats, expected %zu", got, nf);
        mc_test_abort();
    }
    return x;
}

/* llama.cpp's greedy continuation of n_gen tokens. */
static void oracle_generate(const char *model, const int32_t *t, int n, int n_gen,
                            int32_t *gen) {
    char csv[8192], cmd[10240], out[8192];
    tokens_csv(t, n, csv, sizeof csv);
    int w = snprintf(cmd, sizeof cmd, "%s generate %s --tokens %s -n %d --threads 1 --kv %s 2>&1",
                     oracle_path(), model, csv, n_gen, oracle_kv());
    MC_REQUIRE(w > 0 && (size_t)w < sizeof cmd);
    int rc = run(cmd, out, sizeof out);
    if (rc != 0) {
        mc_test_fail_at(__FILE__, __LINE__, "oracle generate failed (%d): %s", rc, out);
        mc_test_abort();
    }
    char *p = out;
    for (int i = 0; i < n_gen; i++) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p) {
            mc_test_fail_at(__FILE__, __LINE__, "oracle generate printed %d ids, expected %d: %s",
                            i, n_gen, out);
            mc_test_abort();
        }
        gen[i] = (int32_t)v;
        p = end;
    }
}

static mc_ctx *new_ctx(mc_model *m, int n_ctx, int n_batch) {
    mc_ctx_params p = mc_ctx_params_default();
    p.n_ctx = n_ctx;
    p.n_batch = n_batch;
    p.n_threads = 1;
    mc_ctx *c = NULL;
    mc_err err;
    int rc = mc_ctx_new(m, &p, &c, &err);
    if (rc != 0) {
        mc_test_fail_at(__FILE__, __LINE__, "mc_ctx_new: %s", err.msg);
        mc_test_abort();
    }
    return c;
}

/* The logits set_prompt computed: the last row of its internal decode, whose index
 * depends on how many tokens it had to compute (at most n). */
static const float *last_logits(const mc_ctx *c, int n) {
    for (int i = n - 1; i >= 0; i--)
        if (mc_ctx_logits(c, i))
            return mc_ctx_logits(c, i);
    return NULL;
}

/* max |a-b| / max |b| over n floats */
static double rel_err(const float *a, const float *b, size_t n) {
    double md = 0, mb = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (!(d <= md))
            md = d; /* NaN propagates as a failure */
        if (fabs((double)b[i]) > mb)
            mb = fabs((double)b[i]);
    }
    return mb > 0 ? md / mb : md;
}

static double max_abs(const float *x, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++)
        if (fabs((double)x[i]) > m)
            m = fabs((double)x[i]);
    return m;
}

typedef struct pcase {
    const char *args; /* mkmodel arguments except --type */
    const char *type;
    int n_tok;   /* tokens in the logits comparison */
    int n_batch; /* mccom's internal batch (small values exercise splitting) */
} pcase;

static void parity(const pcase *pc) {
    require_tools();
    char args[512];
    snprintf(args, sizeof args, "%s --type %s", pc->args, pc->type);
    const char *path = make_model(args);
    const double tol = tol_for(pc->type);

    mc_model *m = NULL;
    mc_err err;
    int rc = mc_model_load(path, &m, &err);
    if (rc != 0) {
        mc_test_fail_at(__FILE__, __LINE__, "mc_model_load(%s): %s", args, err.msg);
        mc_test_abort();
    }
    const int V = mc_model_hparams(m)->n_vocab;
    const int n = pc->n_tok;
    int32_t toks[256];
    MC_REQUIRE(n <= 200);
    make_tokens(toks, n, V, 7);

    /* 1. logits of every position of one batch, against llama.cpp */
    mc_ctx *c = new_ctx(m, 256, pc->n_batch);
    rc = mc_ctx_decode(c, toks, n, 1, &err);
    CHECK_MSG(rc == 0, "mc_ctx_decode: %s", err.msg);
    MC_REQUIRE(rc == 0);
    float *ours = malloc((size_t)n * V * sizeof *ours);
    MC_REQUIRE(ours);
    for (int i = 0; i < n; i++) {
        const float *row = mc_ctx_logits(c, i);
        MC_REQUIRE(row);
        memcpy(ours + (size_t)i * V, row, (size_t)V * sizeof *row);
    }
    float *theirs = oracle_logits(path, toks, n, V);
    double e = rel_err(ours, theirs, (size_t)n * V);
    fprintf(stderr, "  %s: logits rel err %.3g (bound %.0e, max |logit| %.3g)\n", args, e,
            tol, max_abs(theirs, (size_t)n * V));
    CHECK_MSG(e <= tol, "%s: logits differ from llama.cpp: rel err %.3g > %.0e", args, e, tol);
    /* the argmax of every position agrees unless it is a near tie */
    for (int i = 0; i < n; i++) {
        const float *a = ours + (size_t)i * V, *b = theirs + (size_t)i * V;
        int32_t ia = mc_argmax(a, V), ib = mc_argmax(b, V);
        if (ia != ib)
            CHECK_MSG(fabs((double)b[ia] - (double)b[ib]) <= 2 * tol * max_abs(b, (size_t)V),
                      "position %d: argmax %d vs llama.cpp %d (margin %.3g)", i, ia, ib,
                      (double)(b[ib] - b[ia]));
    }

    /* 2. within mccom: the same tokens one at a time */
    mc_ctx *c1 = new_ctx(m, 256, pc->n_batch);
    double e_step = 0;
    for (int i = 0; i < n; i++) {
        rc = mc_ctx_decode(c1, &toks[i], 1, 0, &err);
        MC_REQUIRE(rc == 0);
        const float *row = mc_ctx_logits(c1, 0);
        MC_REQUIRE(row);
        double ei = rel_err(row, ours + (size_t)i * V, (size_t)V);
        if (ei > e_step)
            e_step = ei;
    }
    fprintf(stderr, "  batch vs one at a time: rel err %.3g\n", e_step);
    CHECK_MSG(e_step <= TOL_SELF, "batched and one-at-a-time decode differ: %.3g", e_step);

    /* 3. prefix reuse: cache holds A+B; set A+C (rollback to A, compute C) vs fresh A+C */
    int na = n / 2, nb = n - na;
    int32_t ac[256];
    memcpy(ac, toks, (size_t)na * sizeof *ac);
    make_tokens(ac + na, nb, V, 99);
    int n_reused = -1;
    rc = mc_ctx_set_prompt(c1, ac, n, &n_reused, &err);
    MC_REQUIRE(rc == 0);
    CHECK_EQ_INT(n_reused, na);
    CHECK_EQ_INT(mc_ctx_n_past(c1), n);
    float *reused = malloc((size_t)V * sizeof *reused);
    MC_REQUIRE(reused);
    MC_REQUIRE(last_logits(c1, n));
    memcpy(reused, last_logits(c1, n), (size_t)V * sizeof *reused);
    mc_ctx *c2 = new_ctx(m, 256, pc->n_batch);
    rc = mc_ctx_set_prompt(c2, ac, n, &n_reused, &err);
    MC_REQUIRE(rc == 0);
    CHECK_EQ_INT(n_reused, 0);
    const float *fresh = last_logits(c2, n);
    MC_REQUIRE(fresh);
    double e_reuse = rel_err(reused, fresh, (size_t)V);
    fprintf(stderr, "  prefix reuse vs fresh: rel err %.3g\n", e_reuse);
    CHECK_MSG(e_reuse <= TOL_SELF, "prefix reuse and a fresh prompt differ: %.3g", e_reuse);
    /* the same prompt again reuses all but the last token */
    rc = mc_ctx_set_prompt(c2, ac, n, &n_reused, &err);
    MC_REQUIRE(rc == 0);
    CHECK_EQ_INT(n_reused, n - 1);

    /* 4. greedy continuation of 20 tokens after an 8-token prompt */
    enum { N_PROMPT = 8, N_GEN = 20 };
    int32_t gen_theirs[N_GEN], gen_ours[N_GEN];
    double margin[N_GEN];
    oracle_generate(path, toks, N_PROMPT, N_GEN, gen_theirs);
    mc_ctx *g = new_ctx(m, 256, pc->n_batch);
    rc = mc_ctx_decode(g, toks, N_PROMPT, 0, &err);
    MC_REQUIRE(rc == 0);
    for (int i = 0; i < N_GEN; i++) {
        const float *row = mc_ctx_logits(g, i == 0 ? N_PROMPT - 1 : 0);
        MC_REQUIRE(row);
        int32_t t = mc_argmax(row, V);
        double second = -INFINITY;
        for (int j = 0; j < V; j++)
            if (j != t && row[j] > second)
                second = row[j];
        margin[i] = ((double)row[t] - second) / max_abs(row, (size_t)V);
        gen_ours[i] = t;
        if (i + 1 < N_GEN) {
            rc = mc_ctx_decode(g, &t, 1, 0, &err);
            MC_REQUIRE(rc == 0);
        }
    }
    for (int i = 0; i < N_GEN; i++) {
        if (gen_ours[i] == gen_theirs[i])
            continue;
        CHECK_MSG(margin[i] <= 2 * tol,
                  "greedy step %d: mccom %d, llama.cpp %d, top-2 margin %.3g (not a near tie)",
                  i, gen_ours[i], gen_theirs[i], margin[i]);
        fprintf(stderr, "  greedy parts at step %d on a near tie (margin %.3g)\n", i, margin[i]);
        break;
    }

    free(reused);
    free(ours);
    free(theirs);
    mc_ctx_free(g);
    mc_ctx_free(c2);
    mc_ctx_free(c1);
    mc_ctx_free(c);
    mc_model_free(m);
}

/* Shapes. Quantized types need widths that are multiples of 32. */
#define LLAMA_MHA "--arch llama --vocab 1000 --embd 128 --layers 2 --heads 4 --ff 256"
#define LLAMA_GQA "--arch llama --vocab 777 --embd 128 --layers 3 --heads 8 --kv-heads 2 --ff 384 --tied"
#define QWEN2_BIAS "--arch qwen2 --vocab 1000 --embd 128 --layers 2 --heads 4 --kv-heads 2 --ff 256 --bias --tied"
#define ODD "--arch llama --vocab 1000 --embd 96 --layers 2 --heads 6 --kv-heads 2 --ff 200"
#define ODD_QWEN "--arch qwen2 --vocab 1000 --embd 96 --layers 2 --heads 6 --kv-heads 2 --ff 200 --bias"

#define PARITY(name_, args_, type_, n_tok_, n_batch_)           \
    MC_TEST_T(parity_##name_, 300) {                            \
        static const pcase pc = {args_, type_, n_tok_, n_batch_}; \
        parity(&pc);                                            \
    }

PARITY(llama_mha_f32, LLAMA_MHA, "f32", 40, 512)
PARITY(llama_gqa_tied_f32, LLAMA_GQA, "f32", 33, 7)
PARITY(qwen2_bias_f32, QWEN2_BIAS, "f32", 40, 512)
PARITY(odd_llama_f32, ODD, "f32", 29, 512)
PARITY(odd_qwen2_f32, ODD_QWEN, "f32", 29, 5)
PARITY(odd_llama_f16, ODD, "f16", 29, 512)
PARITY(llama_gqa_tied_f16, LLAMA_GQA, "f16", 33, 512)
PARITY(qwen2_bias_bf16, QWEN2_BIAS, "bf16", 40, 512)
PARITY(llama_mha_q8_0, LLAMA_MHA, "q8_0", 40, 512)
PARITY(qwen2_bias_q8_0, QWEN2_BIAS, "q8_0", 40, 9)
PARITY(llama_gqa_tied_q4_0, LLAMA_GQA, "q4_0", 33, 512)
PARITY(qwen2_bias_q4_0, QWEN2_BIAS, "q4_0", 40, 512)
