/* Engine tests on a real trained model: ../shared/models/stories260K (llama2.c)
 * converted by our converter must reproduce the reference implementation's
 * greedy outputs token for token and its logits within 1e-4; and the engine's
 * own invariants (batched == sequential, prefix reuse == fresh, rollback). */
#include "mccom/convert.h"
#include "mccom/kernels.h"
#include "mccom/model.h"
#include "test.h"

#include <stdlib.h>

static const char *convert_stories(void) {
    static char path[512];
    snprintf(path, sizeof path, "%s/s260k.gguf", mc_test_tmpdir());
    mc_err err;
    char model[512], tok[512];
    snprintf(model, sizeof model, "%s", mc_test_shared("models/stories260K/stories260K.bin"));
    snprintf(tok, sizeof tok, "%s", mc_test_shared("models/stories260K/tok512.bin"));
    int rc = mc_convert_llama2c(model, tok, path, &err);
    CHECK_MSG(rc == 0, "convert: %s", err.msg);
    MC_REQUIRE(rc == 0);
    return path;
}

/* Minimal JSON field readers for golden/stories260K/greedy.jsonl. */
static const char *field(const char *line, const char *key) {
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\": ", key);
    const char *p = strstr(line, pat);
    return p ? p + strlen(pat) : NULL;
}

static int read_ints(const char *p, int32_t *out, int cap) {
    int n = 0;
    MC_REQUIRE(p && *p == '[');
    p++;
    while (*p && *p != ']' && n < cap) {
        out[n++] = (int32_t)strtol(p, (char **)&p, 10);
        while (*p == ',' || *p == ' ')
            p++;
    }
    return n;
}

/* Byte length of each tok512 piece as llama2.c prints it (spaces kept). */
static int piece_lens(int *lens, int n) {
    FILE *f = fopen(mc_test_shared("models/stories260K/tok512.bin"), "rb");
    MC_REQUIRE(f);
    int32_t maxlen;
    MC_REQUIRE(fread(&maxlen, 4, 1, f) == 1);
    for (int i = 0; i < n; i++) {
        float score;
        int32_t len;
        MC_REQUIRE(fread(&score, 4, 1, f) == 1 && fread(&len, 4, 1, f) == 1);
        lens[i] = len;
        fseek(f, len, SEEK_CUR);
    }
    fclose(f);
    return n;
}

MC_TEST(model_stories260k_matches_llama2c_golden) {
    const char *path = convert_stories();
    mc_model *m;
    mc_err err;
    MC_REQUIRE(mc_model_load(path, &m, &err) == 0);
    const mc_hparams *hp = mc_model_hparams(m);
    CHECK_EQ_INT(hp->n_vocab, 512);
    CHECK_EQ_INT(hp->n_layer, 5);
    CHECK_EQ_INT(hp->n_head_kv, 4);
    CHECK(hp->tied_output);
    int lens[512];
    piece_lens(lens, 512);
    FILE *f = fopen(mc_test_shared("golden/stories260K/greedy.jsonl"), "r");
    MC_REQUIRE(f);
    char *line = NULL;
    size_t cap = 0;
    int n_cases = 0;
    while (getline(&line, &cap, f) > 0) {
        int32_t next[512];
        int n_next = read_ints(field(line, "next_tokens"), next, 511);
        const char *pr = field(line, "prompt");
        MC_REQUIRE(pr && *pr == '"');
        size_t plen = strcspn(pr + 1, "\"");
        /* prompt tokens: the pieces that spell " " + prompt */
        int k = 0;
        size_t sum = 0;
        while (k < n_next && sum < plen + 1)
            sum += (size_t)lens[next[k++]];
        CHECK_EQ_INT(sum, plen + 1);
        double want[3] = {atof(field(line, "logit_0")), atof(field(line, "logit_1")),
                          atof(field(line, "logit_2"))};
        int want_argmax = atoi(field(line, "argmax"));
        double want_max = atof(field(line, "max"));

        /* 1. one batch with logits everywhere (F32 KV cache: exact path) */
        mc_ctx_params p = mc_ctx_params_default();
        p.kv_f32 = 1;
        p.n_threads = 2;
        mc_ctx *c;
        MC_REQUIRE(mc_ctx_new(m, &p, &c, &err) == 0);
        int32_t seq[513];
        seq[0] = 1;
        memcpy(seq + 1, next, (size_t)n_next * 4);
        MC_REQUIRE(mc_ctx_decode(c, seq, n_next, 1, &err) == 0);
        const float *lg = mc_ctx_logits(c, k); /* position of the last prompt token */
        MC_REQUIRE(lg);
        for (int i = 0; i < 3; i++)
            CHECK_NEAR(lg[i], want[i], 1e-4);
        CHECK_EQ_INT(mc_argmax(lg, 512), want_argmax);
        CHECK_NEAR(lg[want_argmax], want_max, 1e-4);
        /* teacher forcing: every generated token is the argmax at its position */
        int agree = 0;
        for (int i = k; i < n_next; i++)
            agree += mc_argmax(mc_ctx_logits(c, i), 512) == next[i];
        CHECK_EQ_INT(agree, n_next - k);

        /* 2. autoregressive greedy decoding reproduces the continuation */
        mc_ctx_truncate(c, 0);
        MC_REQUIRE(mc_ctx_decode(c, seq, k + 1, 0, &err) == 0);
        int ok = 1;
        for (int i = k; i < n_next && ok; i++) {
            int32_t t = mc_argmax(mc_ctx_logits_last(c), 512);
            if (t != next[i]) {
                CHECK_MSG(0, "case %d: step %d: got %d want %d", n_cases, i, t, next[i]);
                ok = 0;
            }
            if (i + 1 < n_next)
                MC_REQUIRE(mc_ctx_decode(c, &t, 1, 0, &err) == 0);
        }
        mc_ctx_free(c);

        /* 3. the default F16 KV cache gives the same greedy tokens */
        p.kv_f32 = 0;
        MC_REQUIRE(mc_ctx_new(m, &p, &c, &err) == 0);
        MC_REQUIRE(mc_ctx_decode(c, seq, n_next, 1, &err) == 0);
        lg = mc_ctx_logits(c, k);
        for (int i = 0; i < 3; i++)
            CHECK_NEAR(lg[i], want[i], 2e-2);
        agree = 0;
        for (int i = k; i < n_next; i++)
            agree += mc_argmax(mc_ctx_logits(c, i), 512) == next[i];
        CHECK_MSG(agree >= (n_next - k) * 95 / 100, "f16 cache: %d of %d", agree, n_next - k);
        mc_ctx_free(c);
        n_cases++;
    }
    free(line);
    fclose(f);
    CHECK(n_cases >= 3);
    mc_model_free(m);
}

static double max_rel_diff(const float *a, const float *b, int n) {
    double md = 0, mx = 0;
    for (int i = 0; i < n; i++) {
        md = fmax(md, fabs((double)a[i] - b[i]));
        mx = fmax(mx, fabs((double)b[i]));
    }
    return md / (mx > 0 ? mx : 1);
}

MC_TEST(model_batched_equals_sequential_and_prefix_reuse) {
    const char *path = convert_stories();
    mc_model *m;
    mc_err err;
    MC_REQUIRE(mc_model_load(path, &m, &err) == 0);
    int V = mc_model_hparams(m)->n_vocab;
    int32_t toks[96];
    for (int i = 0; i < 96; i++)
        toks[i] = 3 + (i * 37) % 500;
    toks[0] = 1;
    for (int kv32 = 0; kv32 <= 1; kv32++) {
        mc_ctx_params p = mc_ctx_params_default();
        p.kv_f32 = kv32;
        p.n_batch = 32; /* 96 tokens run as 3 internal batches */
        mc_ctx *a, *b;
        MC_REQUIRE(mc_ctx_new(m, &p, &a, &err) == 0);
        MC_REQUIRE(mc_ctx_new(m, &p, &b, &err) == 0);
        MC_REQUIRE(mc_ctx_decode(a, toks, 96, 1, &err) == 0);
        double worst = 0;
        for (int i = 0; i < 96; i++) {
            MC_REQUIRE(mc_ctx_decode(b, toks + i, 1, 0, &err) == 0);
            worst = fmax(worst, max_rel_diff(mc_ctx_logits_last(b), mc_ctx_logits(a, i), V));
        }
        CHECK_MSG(worst < 1e-4, "kv_f32=%d: batched vs sequential rel diff %g", kv32, worst);
        CHECK_EQ_INT(mc_ctx_n_past(b), 96);

        /* prefix reuse: a prompt sharing 80 tokens computes only the tail */
        int32_t other[90];
        memcpy(other, toks, 80 * 4);
        for (int i = 80; i < 90; i++)
            other[i] = 100 + i;
        int reused = -1;
        MC_REQUIRE(mc_ctx_set_prompt(b, other, 90, &reused, &err) == 0);
        CHECK_EQ_INT(reused, 80);
        CHECK_EQ_INT(mc_ctx_n_past(b), 90);
        mc_ctx *fresh;
        MC_REQUIRE(mc_ctx_new(m, &p, &fresh, &err) == 0);
        MC_REQUIRE(mc_ctx_decode(fresh, other, 90, 0, &err) == 0);
        CHECK(max_rel_diff(mc_ctx_logits_last(b), mc_ctx_logits_last(fresh), V) < 1e-4);
        /* the same prompt again reuses all but the last token */
        MC_REQUIRE(mc_ctx_set_prompt(b, other, 90, &reused, &err) == 0);
        CHECK_EQ_INT(reused, 89);
        CHECK(max_rel_diff(mc_ctx_logits_last(b), mc_ctx_logits_last(fresh), V) < 1e-4);

        /* rollback of a rejected draft, then a different continuation */
        mc_ctx_truncate(b, 85);
        CHECK_EQ_INT(mc_ctx_n_past(b), 85);
        CHECK(mc_ctx_logits_last(b) == NULL);
        MC_REQUIRE(mc_ctx_decode(b, other + 85, 5, 0, &err) == 0);
        CHECK(max_rel_diff(mc_ctx_logits_last(b), mc_ctx_logits_last(fresh), V) < 1e-4);
        mc_ctx_free(fresh);
        mc_ctx_free(a);
        mc_ctx_free(b);
    }
    mc_model_free(m);
}

MC_TEST(model_rejects_bad_requests_and_files) {
    const char *path = convert_stories();
    mc_model *m;
    mc_err err;
    MC_REQUIRE(mc_model_load(path, &m, &err) == 0);
    mc_ctx_params p = mc_ctx_params_default();
    p.n_ctx = 16;
    mc_ctx *c;
    MC_REQUIRE(mc_ctx_new(m, &p, &c, &err) == 0);
    int32_t t[20] = {1, 2, 3};
    CHECK_EQ_INT(mc_ctx_decode(c, t, 17, 0, &err), MC_EFULL);
    CHECK_EQ_INT(mc_ctx_n_past(c), 0);
    int32_t bad = 512;
    CHECK_EQ_INT(mc_ctx_decode(c, &bad, 1, 0, &err), MC_EINVAL);
    bad = -1;
    CHECK_EQ_INT(mc_ctx_decode(c, &bad, 1, 0, &err), MC_EINVAL);
    CHECK_EQ_INT(mc_ctx_decode(c, t, 0, 0, &err), MC_EINVAL);
    CHECK_EQ_INT(mc_ctx_decode(c, t, 16, 0, &err), 0);
    CHECK_EQ_INT(mc_ctx_decode(c, t, 1, 0, &err), MC_EFULL);
    mc_ctx_free(c);

    /* a file missing one tensor, and one with a wrong shape */
    mc_gguf *g;
    MC_REQUIRE(mc_gguf_open(path, &g, &err) == 0);
    for (int variant = 0; variant < 2; variant++) {
        mc_gguf_writer *w = mc_gguf_writer_new();
        mc_gguf_copy_kv(w, g);
        for (int64_t i = 0; i < mc_gguf_n_tensors(g); i++) {
            const mc_gguf_tensor *tt = mc_gguf_tensor_at(g, i);
            char name[128];
            snprintf(name, sizeof name, "%.*s", (int)tt->name.len, tt->name.ptr);
            if (variant == 0 && !strcmp(name, "blk.3.ffn_up.weight"))
                continue;
            int64_t ne[2] = {tt->ne[0], tt->ne[1]};
            if (variant == 1 && !strcmp(name, "blk.1.attn_k.weight")) {
                ne[0] = tt->ne[1];
                ne[1] = tt->ne[0];
            }
            mc_gguf_add_tensor(w, name, tt->type, tt->n_dims, ne, tt->data, tt->size);
        }
        char out[512];
        snprintf(out, sizeof out, "%s/bad%d.gguf", mc_test_tmpdir(), variant);
        MC_REQUIRE(mc_gguf_writer_write(w, out, &err) == 0);
        mc_gguf_writer_free(w);
        mc_model *bm = NULL;
        int rc = mc_model_load(out, &bm, &err);
        CHECK(rc == MC_EFORMAT && bm == NULL);
        CHECK(strstr(err.msg, variant == 0 ? "blk.3.ffn_up.weight" : "blk.1.attn_k.weight"));
    }
    mc_gguf_close(g);
    mc_model_free(m);
}

MC_TEST(model_quantized_stories_keep_greedy_tokens) {
    const char *path = convert_stories();
    mc_model *m;
    mc_err err;
    MC_REQUIRE(mc_model_load(path, &m, &err) == 0);
    int32_t seq[64];
    seq[0] = 1;
    mc_ctx *c;
    MC_REQUIRE(mc_ctx_new(m, NULL, &c, &err) == 0);
    /* reference greedy run on f32 */
    MC_REQUIRE(mc_ctx_decode(c, seq, 1, 0, &err) == 0);
    for (int i = 1; i < 64; i++) {
        seq[i] = mc_argmax(mc_ctx_logits_last(c), 512);
        if (i + 1 < 64)
            MC_REQUIRE(mc_ctx_decode(c, seq + i, 1, 0, &err) == 0);
    }
    mc_ctx_free(c);
    MC_REQUIRE(mc_ctx_new(m, NULL, &c, &err) == 0);
    MC_REQUIRE(mc_ctx_decode(c, seq, 64, 1, &err) == 0);
    static const struct {
        int type;
        double max_rel, min_agree;
    } cases[] = {/* stories260K rows are 64 wide (two blocks), so 4-bit error is large
                  * relative to its logits; the bound is on the worst logit of 63 rows */
                 {MC_TYPE_F16, 0.01, 0.95}, {MC_TYPE_Q8_0, 0.05, 0.85}, {MC_TYPE_Q4_0, 0.5, 0.8}};
    for (size_t k = 0; k < MC_ARRAY_LEN(cases); k++) {
        char out[512];
        snprintf(out, sizeof out, "%s/q%zu.gguf", mc_test_tmpdir(), k);
        MC_REQUIRE(mc_quantize_file(path, out, cases[k].type, NULL, NULL, &err) == 0);
        mc_model *qm;
        MC_REQUIRE(mc_model_load(out, &qm, &err) == 0);
        mc_ctx *qc;
        MC_REQUIRE(mc_ctx_new(qm, NULL, &qc, &err) == 0);
        MC_REQUIRE(mc_ctx_decode(qc, seq, 64, 1, &err) == 0);
        double worst = 0;
        int agree = 0;
        for (int i = 0; i < 63; i++) {
            worst = fmax(worst, max_rel_diff(mc_ctx_logits(qc, i), mc_ctx_logits(c, i), 512));
            agree += mc_argmax(mc_ctx_logits(qc, i), 512) == seq[i + 1];
        }
        printf("%s: max rel logit diff %.4f, greedy agreement %d/63\n",
               mc_ggml_type_name(cases[k].type), worst, agree);
        CHECK_MSG(worst < cases[k].max_rel, "%s: rel diff %g", mc_ggml_type_name(cases[k].type),
                  worst);
        CHECK_MSG(agree >= cases[k].min_agree * 63, "%s: agree %d",
                  mc_ggml_type_name(cases[k].type), agree);
        mc_ctx_free(qc);
        mc_model_free(qm);
    }
    mc_ctx_free(c);
    mc_model_free(m);
}

/* Speculative decoding's guarantee rests on this: a position's logits are bitwise the
 * same whether its token is decoded alone or inside a batch (draft verification), for
 * every weight type and both KV cache types, on the ISA the test names (each test runs
 * in a fresh process, so MCCOM_ISA set here caps the kernels the contexts pick). The
 * batches are uneven on purpose (n_batch 16 over 93 tokens, then a 7-token draft across
 * the edge of a 16-position K cache block) so that full and ragged register tiles, and
 * attention tiles of rows of different lengths, all occur. */
static void check_batch_bitwise(const char *isa) {
    setenv("MCCOM_ISA", isa, 1);
    const mc_kernels *k = mc_kernels_best();
    if (strncmp(mc_kernels_name(k), isa, strlen(isa)) != 0)
        MC_SKIP("this CPU lacks the ISA");
    const char *f32 = convert_stories();
    static const int types[] = {MC_TYPE_F32, MC_TYPE_F16, MC_TYPE_Q8_0, MC_TYPE_Q4_0};
    enum { N = 93, N_PREFIX = 75, N_DRAFT = 7 };
    int32_t toks[N];
    for (int i = 0; i < N; i++)
        toks[i] = 3 + (i * 53) % 500;
    toks[0] = 1;
    mc_err err;
    for (size_t ti = 0; ti < MC_ARRAY_LEN(types); ti++) {
        char path[512];
        snprintf(path, sizeof path, "%s/bw%zu.gguf", mc_test_tmpdir(), ti);
        if (types[ti] == MC_TYPE_F32)
            snprintf(path, sizeof path, "%s", f32);
        else
            MC_REQUIRE(mc_quantize_file(f32, path, types[ti], NULL, NULL, &err) == 0);
        mc_model *m;
        MC_REQUIRE(mc_model_load(path, &m, &err) == 0);
        const int V = mc_model_hparams(m)->n_vocab;
        for (int kv32 = 0; kv32 <= 1; kv32++) {
            mc_ctx_params p = mc_ctx_params_default();
            p.kv_f32 = kv32;
            p.n_batch = 16;
            p.n_threads = 2;
            mc_ctx *batch, *seq;
            MC_REQUIRE(mc_ctx_new(m, &p, &batch, &err) == 0);
            MC_REQUIRE(mc_ctx_new(m, &p, &seq, &err) == 0);
            MC_REQUIRE(mc_ctx_decode(batch, toks, N, 1, &err) == 0);
            int n_diff = 0, first = -1;
            for (int i = 0; i < N; i++) {
                MC_REQUIRE(mc_ctx_decode(seq, toks + i, 1, 0, &err) == 0);
                if (memcmp(mc_ctx_logits_last(seq), mc_ctx_logits(batch, i), (size_t)V * 4)) {
                    n_diff++;
                    if (first < 0)
                        first = i;
                }
            }
            CHECK_MSG(n_diff == 0, "%s %s, kv %s: %d of %d positions differ (first %d)", isa,
                      mc_ggml_type_name(types[ti]), kv32 ? "f32" : "f16", n_diff, N, first);
            /* a draft verified on top of a cached prefix */
            mc_ctx_truncate(batch, N_PREFIX);
            MC_REQUIRE(mc_ctx_decode(batch, toks + N_PREFIX, N_DRAFT, 1, &err) == 0);
            mc_ctx_truncate(seq, N_PREFIX);
            for (int i = 0; i < N_DRAFT; i++) {
                MC_REQUIRE(mc_ctx_decode(seq, toks + N_PREFIX + i, 1, 0, &err) == 0);
                CHECK_MSG(!memcmp(mc_ctx_logits_last(seq), mc_ctx_logits(batch, i), (size_t)V * 4),
                          "%s %s, kv %s: draft position %d differs", isa,
                          mc_ggml_type_name(types[ti]), kv32 ? "f32" : "f16", i);
            }
            mc_ctx_free(batch);
            mc_ctx_free(seq);
        }
        mc_model_free(m);
    }
}

MC_TEST(model_batch_bitwise_equals_decode_scalar) { check_batch_bitwise("scalar"); }
MC_TEST(model_batch_bitwise_equals_decode_avx2) { check_batch_bitwise("avx2"); }
MC_TEST(model_batch_bitwise_equals_decode_avx512) { check_batch_bitwise("avx512"); }
