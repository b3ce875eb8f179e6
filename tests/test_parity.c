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
 * position and vocabulary entry; values measured on this machine in brackets):
 *   - logits of every position of one batch, KV cache F32 on both sides: F32 weights 1e-4
 *     [4e-7 to 5e-7]; KV cache F16 on both sides (llama.cpp's default): F32 and F16 weights
 *     2e-3 [8e-4, 9e-4]; BF16 1e-2 [5e-3]; Q8_0 and Q4_0 4e-2 [1.7e-2 to 1.9e-2]. Why
 *     these bounds: see TOL_* below;
 *   - greedy continuation of 20 tokens after 8: equal until a near tie (top-two margin
 *     within 2x the bound, decided by rounding, not by the model); and, following
 *     llama.cpp's sequence (teacher forcing), every step's argmax equal to llama.cpp's
 *     choice or a near tie, with at least 16 of the 20 equal;
 *   - within mccom: a batch versus one token at a time, and a prompt set with prefix
 *     reuse and rollback (mc_ctx_set_prompt) versus a fresh context: bitwise equal (what
 *     speculative decoding relies on; see tests/test_model.c).
 * The oracle runs with one thread; the runner runs tests in parallel.
 */
#include "test.h"

#include "mccom/model.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* Why these bounds. Both engines read the same weights, so weight rounding is common;
 * what differs is the arithmetic around them.
 *  - F32, F32 KV: the same operations in another order of f32 sums: ~1e-6 relative.
 *  - F16 KV: ggml multiplies the F16 K and V caches by activations it first rounds to
 *    F16 (q, and the softmax weights); mccom keeps those in f32. llama.cpp against itself
 *    (same model, F16 vs F32 KV cache) moves the logits by 6e-4 to 9e-4, so 2e-3.
 *  - F16 / BF16 weights: ggml rounds activations to F16 / BF16 before each matmul (so does
 *    mccom); an f32 difference upstream can move a value across a rounding boundary, one
 *    ulp (2^-11 / 2^-8 relative) in that element: 2e-3 / 1e-2.
 *  - Q8_0 / Q4_0: activations are quantized to Q8_0 per 32 (quantum = max/127), so any
 *    upstream difference flips some roundings and each flip perturbs everything after it:
 *    once one happens, the difference settles at the quantization noise. llama.cpp
 *    against itself (F16 vs F32 KV cache, a q8_0 model) differs by 1.7e-2; bound 4e-2.
 *    With F32 KV on both sides (MC_PARITY_KV=f32) a model where no rounding flips agrees
 *    to 1e-7, which shows the arithmetic itself is the same.
 * A real bug (a wrong RoPE pair, a missing bias, a norm epsilon) moves logits by O(1). */
#define TOL_F32 1e-4
#define TOL_F16 2e-3
#define TOL_BF16 1e-2
#define TOL_Q8_0 4e-2
#define TOL_Q4_0 4e-2
#define TOL_KV_F16 2e-3

static double tol_for(const char *type, const char *kv) {
    double t = TOL_F32;
    if (!strcmp(type, "f16"))
        t = TOL_F16;
    else if (!strcmp(type, "bf16"))
        t = TOL_BF16;
    else if (!strcmp(type, "q8_0"))
        t = TOL_Q8_0;
    else if (!strcmp(type, "q4_0"))
        t = TOL_Q4_0;
    if (!strcmp(kv, "f16") && t < TOL_KV_F16)
        t = TOL_KV_F16;
    return t;
}

static const char *oracle_path(void) {
    const char *p = getenv("MC_ORACLE");
    return p && *p ? p : "build/oracle/mccom-oracle";
}

static const char *mkmodel_path(void) {
    const char *p = getenv("MC_MKMODEL");
    return p && *p ? p : "build/tools/mkmodel";
}

/* KV cache type of both engines for this test: "f32" or "f16". */
static const char *g_kv = "f16";
static const char *oracle_kv(void) { return g_kv; }

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
    p.kv_f32 = !strcmp(g_kv, "f32");
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

/* sqrt(mean (a-b)^2) / sqrt(mean b^2) over n floats */
static double rms_err(const float *a, const float *b, size_t n) {
    double se = 0, sb = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)a[i] - (double)b[i];
        se += d * d;
        sb += (double)b[i] * b[i];
    }
    return sb > 0 ? sqrt(se / sb) : sqrt(se);
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
    const char *kv;  /* KV cache type of both engines */
    int n_tok;   /* tokens in the logits comparison */
    int n_batch; /* mccom's internal batch (small values exercise splitting) */
} pcase;

/* Compare the engines on the model at `path`; `args` names it in messages. */
static void parity_file(const pcase *pc, const char *path, const char *args) {
    g_kv = pc->kv;
    if (getenv("MC_PARITY_KV") && *getenv("MC_PARITY_KV"))
        g_kv = getenv("MC_PARITY_KV"); /* diagnostics: force one KV type */
    const double tol = tol_for(pc->type, g_kv);

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
    double e_rms = rms_err(ours, theirs, (size_t)n * V);
    fprintf(stderr, "  %s, kv %s: logits rel err %.3g (bound %.0e), rms %.3g, max |logit| %.3g\n",
            args, g_kv, e, tol, e_rms, max_abs(theirs, (size_t)n * V));
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
    CHECK_MSG(e_step == 0, "batched and one-at-a-time decode differ: %.3g (must be bitwise equal)",
              e_step);

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
    CHECK_MSG(e_reuse == 0, "prefix reuse and a fresh prompt differ: %.3g (must be bitwise equal)",
              e_reuse);
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
    int agree = 0;
    while (agree < N_GEN && gen_ours[agree] == gen_theirs[agree])
        agree++;
    if (agree < N_GEN) {
        if (margin[agree] <= 2 * tol)
            fprintf(stderr, "  greedy: %d tokens agree, then a near tie (margin %.3g)\n", agree,
                    margin[agree]);
        else
            mc_test_fail_at(__FILE__, __LINE__,
                            "greedy step %d: mccom %d, llama.cpp %d, top-2 margin %.3g (not a "
                            "near tie)",
                            agree, gen_ours[agree], gen_theirs[agree], margin[agree]);
    } else {
        fprintf(stderr, "  greedy: all %d tokens agree\n", N_GEN);
    }
    /* Past a near tie the free-running sequences no longer see the same history; so also
     * follow llama.cpp's sequence (teacher forcing): at every one of the N_GEN steps our
     * argmax must be llama.cpp's choice, or a near tie in our logits. */
    int32_t forced[N_PROMPT + N_GEN];
    memcpy(forced, toks, N_PROMPT * sizeof *forced);
    memcpy(forced + N_PROMPT, gen_theirs, (N_GEN - 1) * sizeof *forced);
    mc_ctx_truncate(g, 0);
    rc = mc_ctx_decode(g, forced, N_PROMPT + N_GEN - 1, 1, &err);
    MC_REQUIRE(rc == 0);
    int n_ties = 0;
    for (int i = 0; i < N_GEN; i++) {
        const float *row = mc_ctx_logits(g, N_PROMPT - 1 + i);
        MC_REQUIRE(row);
        int32_t t = mc_argmax(row, V);
        if (t == gen_theirs[i])
            continue;
        double gap = ((double)row[t] - row[gen_theirs[i]]) / max_abs(row, (size_t)V);
        if (gap <= 2 * tol)
            n_ties++;
        else
            mc_test_fail_at(__FILE__, __LINE__,
                            "teacher-forced step %d: mccom %d, llama.cpp %d, gap %.3g", i, t,
                            gen_theirs[i], gap);
    }
    fprintf(stderr, "  teacher-forced greedy: %d of %d steps agree, %d near ties\n",
            N_GEN - n_ties, N_GEN, n_ties);
    CHECK_MSG(N_GEN - n_ties >= 16, "only %d of %d greedy steps agree with llama.cpp",
              N_GEN - n_ties, N_GEN);

    free(reused);
    free(ours);
    free(theirs);
    mc_ctx_free(g);
    mc_ctx_free(c2);
    mc_ctx_free(c1);
    mc_ctx_free(c);
    mc_model_free(m);
}

static void parity(const pcase *pc) {
    require_tools();
    char args[512];
    snprintf(args, sizeof args, "%s --type %s", pc->args, pc->type);
    parity_file(pc, make_model(args), args);
}

/* Shapes. Quantized types need widths that are multiples of 32. */
#define LLAMA_MHA "--arch llama --vocab 1000 --embd 128 --layers 2 --heads 4 --ff 256"
#define LLAMA_GQA "--arch llama --vocab 777 --embd 128 --layers 3 --heads 8 --kv-heads 2 --ff 384 --tied"
#define QWEN2_BIAS "--arch qwen2 --vocab 1000 --embd 128 --layers 2 --heads 4 --kv-heads 2 --ff 256 --bias --tied"
#define ODD "--arch llama --vocab 1000 --embd 96 --layers 2 --heads 6 --kv-heads 2 --ff 200"
#define ODD_QWEN "--arch qwen2 --vocab 1000 --embd 96 --layers 2 --heads 6 --kv-heads 2 --ff 200 --bias"

#define PARITY(name_, args_, type_, kv_, n_tok_, n_batch_)            \
    MC_TEST_T(parity_##name_, 300) {                                   \
        static const pcase pc = {args_, type_, kv_, n_tok_, n_batch_}; \
        parity(&pc);                                                   \
    }

PARITY(llama_mha_f32, LLAMA_MHA, "f32", "f32", 40, 512)
PARITY(llama_mha_f32_kv16, LLAMA_MHA, "f32", "f16", 40, 512)
PARITY(llama_gqa_tied_f32, LLAMA_GQA, "f32", "f32", 33, 7)
PARITY(qwen2_bias_f32, QWEN2_BIAS, "f32", "f32", 40, 512)
PARITY(odd_llama_f32, ODD, "f32", "f32", 29, 512)
PARITY(odd_qwen2_f32, ODD_QWEN, "f32", "f32", 29, 5)
PARITY(odd_llama_f16, ODD, "f16", "f16", 29, 512)
PARITY(llama_gqa_tied_f16, LLAMA_GQA, "f16", "f16", 33, 512)
PARITY(qwen2_bias_bf16, QWEN2_BIAS, "bf16", "f16", 40, 512)
PARITY(llama_mha_q8_0, LLAMA_MHA, "q8_0", "f16", 40, 512)
PARITY(qwen2_bias_q8_0, QWEN2_BIAS, "q8_0", "f16", 40, 9)
PARITY(llama_gqa_tied_q4_0, LLAMA_GQA, "q4_0", "f16", 33, 512)
PARITY(qwen2_bias_q4_0, QWEN2_BIAS, "q4_0", "f16", 40, 512)

/* A real trained model: stories260K (llama2.c, TinyStories) converted by `mccom convert`,
 * with its SentencePiece vocabulary of 512 (the tokens here are ids, not text). */
MC_TEST_T(parity_stories260K_f32, 300) {
    require_tools();
    const char *bin = mc_test_shared("models/stories260K/stories260K.bin");
    char bin_path[1024], tok_path[1024], out[1024], cmd[4096], msg[1024];
    snprintf(bin_path, sizeof bin_path, "%s", bin);
    snprintf(tok_path, sizeof tok_path, "%s", mc_test_shared("models/stories260K/tok512.bin"));
    if (access(bin_path, R_OK) != 0) {
        mc_test_fail_at(__FILE__, __LINE__, "%s is missing (../shared or $MC_SHARED)", bin_path);
        mc_test_abort();
    }
    int w = snprintf(out, sizeof out, "%s/stories260K.gguf", mc_test_tmpdir());
    MC_REQUIRE(w > 0 && (size_t)w < sizeof out);
    w = snprintf(cmd, sizeof cmd, "%s convert llama2c %s %s %s 2>&1", mc_test_bin(), bin_path,
                 tok_path, out);
    MC_REQUIRE(w > 0 && (size_t)w < sizeof cmd);
    int rc = run(cmd, msg, sizeof msg);
    if (rc != 0) {
        mc_test_fail_at(__FILE__, __LINE__, "mccom convert failed (%d): %s", rc, msg);
        mc_test_abort();
    }
    static const pcase pc = {"stories260K", "f32", "f32", 40, 512};
    parity_file(&pc, out, "stories260K (f32)");
}
