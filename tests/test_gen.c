/* tests/test_gen.c — generation: greedy loop equivalence, speculative draft
 * verification (output == greedy without draft), stop rules, streaming text,
 * healing, cancellation, scoring, bad input. On stories260K (a real trained
 * model, SPM vocabulary) converted by our converter, and on random models. */
#include "mccom/convert.h"
#include "mccom/gen.h"
#include "test.h"

#include <stdlib.h>

static const char *stories_path(void) {
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

typedef struct fixture {
    mc_model *m;
    mc_tok *tok;
    mc_ctx *c;
    int n_vocab;
} fixture;

static void fx_open(fixture *f, int kv_f32) {
    mc_err err;
    MC_REQUIRE(mc_model_load(stories_path(), &f->m, &err) == 0);
    MC_REQUIRE(mc_tok_load_gguf(mc_model_gguf(f->m), &f->tok, &err) == 0);
    mc_ctx_params cp = mc_ctx_params_default();
    cp.n_ctx = 512;
    cp.kv_f32 = kv_f32;
    cp.n_threads = 2;
    MC_REQUIRE(mc_ctx_new(f->m, &cp, &f->c, &err) == 0);
    f->n_vocab = mc_model_hparams(f->m)->n_vocab;
}

static void fx_close(fixture *f) {
    mc_ctx_free(f->c);
    mc_tok_free(f->tok);
    mc_model_free(f->m);
}

static int encode(const fixture *f, const char *text, int32_t *ids, int cap) {
    int64_t n = 0;
    MC_REQUIRE(mc_tok_encode(f->tok, text, strlen(text), MC_TOK_ADD_BOS, ids, cap, &n) == 0);
    return (int)n;
}

/* Plain greedy decoding written out by hand: the reference. */
static int greedy_ref(const fixture *f, const int32_t *prompt, int n_prompt, int n_gen,
                      int32_t *out) {
    mc_err err;
    mc_ctx_truncate(f->c, 0);
    MC_REQUIRE(mc_ctx_decode(f->c, prompt, n_prompt, 0, &err) == 0);
    for (int i = 0; i < n_gen; i++) {
        out[i] = mc_argmax(mc_ctx_logits_last(f->c), f->n_vocab);
        if (i + 1 < n_gen)
            MC_REQUIRE(mc_ctx_decode(f->c, &out[i], 1, 0, &err) == 0);
    }
    return n_gen;
}

static const char *prompts[] = {
    "Once upon a time", "Lily and Ben", "The cat sat on the", "One day, a little boy",
    "Tom was sad because", "She saw a big", "The sun was", "Mom said",
};

MC_TEST(gen_greedy_equals_hand_loop) {
    fixture f;
    fx_open(&f, 1);
    for (size_t k = 0; k < MC_ARRAY_LEN(prompts); k++) {
        int32_t p[64], ref[40];
        int np = encode(&f, prompts[k], p, 64);
        greedy_ref(&f, p, np, 40, ref);
        mc_gen_params gp = mc_gen_params_default();
        gp.max_new = 40;
        mc_gen_result r;
        mc_err err;
        MC_REQUIRE(mc_gen_run(f.c, f.tok, p, np, NULL, 0, &gp, &r, &err) == 0);
        CHECK_EQ_INT(r.n, 40);
        CHECK_EQ_INT(r.stop, MC_GEN_LENGTH);
        for (int i = 0; i < r.n && i < 40; i++)
            CHECK_EQ_INT(r.toks[i].id, ref[i]);
        /* the text is the decoded tokens */
        char buf[2048];
        int64_t len = 0;
        int32_t ids[40];
        for (int i = 0; i < 40; i++)
            ids[i] = ref[i];
        len = mc_tok_decode(f.tok, ids, 40, 0, buf, sizeof buf);
        MC_REQUIRE(len >= 0 && len < (int64_t)sizeof buf);
        CHECK_EQ_INT((int64_t)r.text_len, len);
        CHECK(memcmp(r.text, buf, (size_t)len) == 0);
        /* cache holds prompt + all but the last returned token */
        CHECK_EQ_INT(mc_ctx_n_past(f.c), np + 39);
        mc_gen_result_fini(&r);
    }
    fx_close(&f);
}

/* Drafts of every kind give exactly the greedy tokens; acceptance is as
 * predicted. */
static void spec_equivalence(int kv_f32) {
    fixture f;
    fx_open(&f, kv_f32);
    uint64_t rng = 12345;
    int n_cases = 0;
    for (size_t k = 0; k < MC_ARRAY_LEN(prompts); k++) {
        int32_t p[64], ref[48];
        int np = encode(&f, prompts[k], p, 64);
        const int G = 32;
        greedy_ref(&f, p, np, G, ref);
        for (int kind = 0; kind < 5; kind++) {
            int32_t draft[48];
            int nd = 0, expect_acc = -1;
            if (kind == 0) { /* the exact greedy continuation */
                nd = 12;
                memcpy(draft, ref, sizeof(int32_t) * (size_t)nd);
                expect_acc = nd;
            } else if (kind == 1) { /* right up to position j, then wrong */
                int j = (int)(rng % 10);
                rng = rng * 6364136223846793005ull + 1442695040888963407ull;
                nd = 12;
                memcpy(draft, ref, sizeof(int32_t) * (size_t)nd);
                draft[j] = (ref[j] + 7) % f.n_vocab;
                expect_acc = j;
            } else if (kind == 2) { /* random tokens */
                nd = 8;
                for (int i = 0; i < nd; i++) {
                    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
                    draft[i] = (int32_t)((rng >> 33) % (uint64_t)f.n_vocab);
                }
            } else if (kind == 3) { /* longer than what is generated */
                nd = G + 8;
                memcpy(draft, ref, sizeof(int32_t) * G);
                for (int i = G; i < nd; i++)
                    draft[i] = 5;
            } else { /* one token */
                nd = 1;
                draft[0] = ref[0];
                expect_acc = 1;
            }
            for (int warm = 0; warm <= 1; warm++) {
                /* warm: the cache already holds the prompt and some junk */
                mc_err err;
                mc_ctx_truncate(f.c, 0);
                if (warm) {
                    int32_t junk[8] = {5, 6, 7, 8, 9, 10, 11, 12};
                    MC_REQUIRE(mc_ctx_decode(f.c, p, np, 0, &err) == 0);
                    MC_REQUIRE(mc_ctx_decode(f.c, junk, 8, 0, &err) == 0);
                }
                mc_gen_params gp = mc_gen_params_default();
                gp.max_total = G;
                gp.max_new = G;
                mc_gen_result r;
                MC_REQUIRE(mc_gen_run(f.c, f.tok, p, np, draft, nd, &gp, &r, &err) == 0);
                CHECK_EQ_INT(r.n, G);
                int same = 1;
                for (int i = 0; i < r.n && i < G; i++)
                    same &= r.toks[i].id == ref[i];
                CHECK_MSG(same, "prompt %zu draft kind %d warm %d: output differs from greedy", k,
                          kind, warm);
                if (expect_acc >= 0)
                    CHECK_EQ_INT(r.n_accepted, expect_acc);
                /* accepted tokens are exactly the leading from_draft ones */
                for (int i = 0; i < r.n; i++)
                    CHECK_EQ_INT(r.toks[i].from_draft, i < r.n_accepted);
                if (warm)
                    CHECK_EQ_INT(r.n_reused, np - 1);
                n_cases++;
                mc_gen_result_fini(&r);
            }
        }
    }
    CHECK_EQ_INT(n_cases, (int)MC_ARRAY_LEN(prompts) * 10);
    fx_close(&f);
}

MC_TEST(gen_spec_equals_greedy_kv_f32) { spec_equivalence(1); }
MC_TEST(gen_spec_equals_greedy_kv_f16) { spec_equivalence(0); }

/* Verification costs one pass for the prompt and one for the whole draft. */
MC_TEST(gen_verify_is_one_pass) {
    fixture f;
    fx_open(&f, 1);
    int32_t p[64], ref[24];
    int np = encode(&f, "Once upon a time", p, 64);
    greedy_ref(&f, p, np, 24, ref);
    mc_ctx_truncate(f.c, 0);
    mc_gen_params gp = mc_gen_params_default();
    gp.max_new = 0; /* verify only */
    mc_gen_result r;
    mc_err err;
    MC_REQUIRE(mc_gen_run(f.c, f.tok, p, np, ref, 16, &gp, &r, &err) == 0);
    CHECK_EQ_INT(r.n_accepted, 16);
    CHECK_EQ_INT(r.n, 16);
    CHECK_EQ_INT(r.n_passes, np > 16 ? 2 : 1); /* a short cold prompt joins the draft */
    CHECK_EQ_INT(r.n_computed, np + 16);
    mc_gen_result_fini(&r);
    /* a cached prompt (a stage-2 round): its last token and the draft in one pass */
    MC_REQUIRE(mc_gen_run(f.c, f.tok, p, np, ref, 16, &gp, &r, &err) == 0);
    CHECK_EQ_INT(r.n_accepted, 16);
    CHECK_EQ_INT(r.n_passes, 1);
    CHECK_EQ_INT(r.n_computed, 1 + 16);
    mc_gen_result_fini(&r);
    /* a long uncached prompt: the tail alone, then the draft */
    int32_t longp[200];
    for (int i = 0; i < 200; i++)
        longp[i] = i == 0 ? 1 : 3 + (i * 7) % 500;
    mc_ctx_truncate(f.c, 0);
    MC_REQUIRE(mc_gen_run(f.c, f.tok, longp, 200, ref, 4, &gp, &r, &err) == 0);
    CHECK_EQ_INT(r.n_passes, 2);
    mc_gen_result_fini(&r);
    /* max_new 1 after a rejected draft: exactly the correction */
    int32_t bad[4] = {ref[0], ref[1], (ref[2] + 1) % f.n_vocab, ref[3]};
    gp.max_new = 1;
    MC_REQUIRE(mc_gen_run(f.c, f.tok, p, np, bad, 4, &gp, &r, &err) == 0);
    CHECK_EQ_INT(r.n_accepted, 2);
    CHECK_EQ_INT(r.n, 3);
    CHECK_EQ_INT(r.toks[2].id, ref[2]);
    CHECK_EQ_INT(mc_ctx_n_past(f.c), np + 2); /* the rejected tail was rolled back */
    mc_gen_result_fini(&r);
    fx_close(&f);
}

/* Streaming callback: collects text. */
typedef struct sink {
    char buf[4096];
    size_t len;
    int calls;
    int cancel_after;
} sink;

static int on_tok(void *ud, const mc_gen_token *t) {
    sink *s = ud;
    s->calls++;
    MC_REQUIRE(s->len + t->text_len < sizeof s->buf);
    memcpy(s->buf + s->len, t->text, t->text_len);
    s->len += t->text_len;
    return s->cancel_after > 0 && s->calls >= s->cancel_after;
}

MC_TEST(gen_stop_newline_and_stop_strings) {
    fixture f;
    fx_open(&f, 1);
    int32_t p[64], ref[200];
    int np = encode(&f, "Once upon a time", p, 64);
    greedy_ref(&f, p, np, 200, ref);
    char full[4096];
    int64_t fl = mc_tok_decode(f.tok, ref, 200, 0, full, sizeof full);
    MC_REQUIRE(fl > 0 && fl < (int64_t)sizeof full);
    full[fl] = '\0';
    const char *nl = strchr(full, '\n');
    MC_REQUIRE(nl); /* the golden text has a newline within 100 tokens */

    mc_gen_params gp = mc_gen_params_default();
    gp.max_new = 200;
    gp.stop_newline = true;
    sink s = {0};
    gp.on_token = on_tok;
    gp.ud = &s;
    mc_gen_result r;
    mc_err err;
    MC_REQUIRE(mc_gen_run(f.c, f.tok, p, np, NULL, 0, &gp, &r, &err) == 0);
    CHECK_EQ_INT(r.stop, MC_GEN_NEWLINE);
    CHECK_EQ_INT((int64_t)r.text_len, (int64_t)(nl - full));
    CHECK(memcmp(r.text, full, r.text_len) == 0);
    CHECK_EQ_INT((int64_t)s.len, (int64_t)r.text_len); /* streamed == returned */
    CHECK(memcmp(s.buf, r.text, s.len) == 0);
    /* the token holding the newline is the last one returned */
    char last[64];
    int pl = mc_tok_decode_piece(f.tok, r.toks[r.n - 1].id, 0, last, sizeof last);
    CHECK(pl > 0 && memchr(last, '\n', (size_t)pl) != NULL);
    mc_gen_result_fini(&r);

    /* a stop string inside the text, and one that straddles tokens */
    const char *words[] = {"Lily", "park. One", "ball"};
    for (size_t w = 0; w < MC_ARRAY_LEN(words); w++) {
        const char *at = strstr(full, words[w]);
        MC_REQUIRE(at);
        const char *stops[2] = {"zzz-never", words[w]};
        gp = mc_gen_params_default();
        gp.max_new = 200;
        gp.stop = stops;
        gp.n_stop = 2;
        memset(&s, 0, sizeof s);
        gp.on_token = on_tok;
        gp.ud = &s;
        MC_REQUIRE(mc_gen_run(f.c, f.tok, p, np, NULL, 0, &gp, &r, &err) == 0);
        CHECK_EQ_INT(r.stop, MC_GEN_STOP);
        CHECK_EQ_INT((int64_t)r.text_len, (int64_t)(at - full));
        CHECK(memcmp(r.text, full, r.text_len) == 0);
        CHECK_EQ_INT((int64_t)s.len, (int64_t)r.text_len);
        CHECK(memcmp(s.buf, r.text, s.len) == 0);
        mc_gen_result_fini(&r);
    }

    /* the same stop found through an accepted draft */
    gp = mc_gen_params_default();
    gp.max_new = 200;
    gp.stop_newline = true;
    MC_REQUIRE(mc_gen_run(f.c, f.tok, p, np, ref, 150, &gp, &r, &err) == 0);
    CHECK_EQ_INT(r.stop, MC_GEN_NEWLINE);
    CHECK_EQ_INT((int64_t)r.text_len, (int64_t)(nl - full));
    CHECK_EQ_INT(r.n_accepted, r.n); /* every returned token came from the draft */
    mc_gen_result_fini(&r);
    fx_close(&f);
}

MC_TEST(gen_healing_constrains_first_tokens) {
    fixture f;
    fx_open(&f, 1);
    const char *text = "Once upon a ti";
    int32_t ids[64];
    mc_tok_heal_result h;
    MC_REQUIRE(mc_tok_heal(f.tok, text, strlen(text), MC_TOK_ADD_BOS, 0, ids, 64, &h) == 0);
    MC_REQUIRE(h.removed_len > 0);
    mc_gen_params gp = mc_gen_params_default();
    gp.max_new = 8;
    gp.heal = text + h.keep_len;
    gp.heal_len = h.removed_len;
    mc_gen_result r;
    mc_err err;
    MC_REQUIRE(mc_gen_run(f.c, f.tok, ids, (int)h.n_ids, NULL, 0, &gp, &r, &err) == 0);
    /* the generated bytes begin with the removed ones */
    char raw[1024];
    int32_t gen[8];
    for (int i = 0; i < r.n; i++)
        gen[i] = r.toks[i].id;
    int64_t rl = mc_tok_decode(f.tok, gen, r.n, 0, raw, sizeof raw);
    MC_REQUIRE(rl >= (int64_t)h.removed_len);
    CHECK(memcmp(raw, text + h.keep_len, h.removed_len) == 0);
    /* and the text is what follows them */
    CHECK_EQ_INT((int64_t)r.text_len, rl - (int64_t)h.removed_len);
    CHECK(memcmp(r.text, raw + h.removed_len, r.text_len) == 0);
    /* the model continues "Once upon a ti" as it continues "Once upon a time" */
    CHECK_MSG(strncmp(r.text, "me", 2) == 0, "healed text '%s'", r.text);
    mc_gen_result_fini(&r);
    fx_close(&f);
}

static volatile int g_cancel_flag;

MC_TEST(gen_cancel_and_ctx_full) {
    fixture f;
    fx_open(&f, 1);
    int32_t p[64];
    int np = encode(&f, "Once upon a time", p, 64);
    mc_gen_params gp = mc_gen_params_default();
    gp.max_new = 100;
    sink s = {0};
    s.cancel_after = 5;
    gp.on_token = on_tok;
    gp.ud = &s;
    mc_gen_result r;
    mc_err err;
    MC_REQUIRE(mc_gen_run(f.c, f.tok, p, np, NULL, 0, &gp, &r, &err) == 0);
    CHECK_EQ_INT(r.stop, MC_GEN_CANCELED);
    CHECK_EQ_INT(r.n, 5);
    mc_gen_result_fini(&r);

    g_cancel_flag = 1;
    gp = mc_gen_params_default();
    gp.cancel = &g_cancel_flag;
    MC_REQUIRE(mc_gen_run(f.c, f.tok, p, np, NULL, 0, &gp, &r, &err) == 0);
    CHECK_EQ_INT(r.stop, MC_GEN_CANCELED);
    CHECK_EQ_INT(r.n, 0);
    mc_gen_result_fini(&r);

    /* a 512-token context fills up */
    gp = mc_gen_params_default();
    gp.max_new = 1000;
    MC_REQUIRE(mc_gen_run(f.c, f.tok, p, np, NULL, 0, &gp, &r, &err) == 0);
    CHECK_EQ_INT(r.stop, MC_GEN_CTX_FULL);
    CHECK_EQ_INT(np + r.n, 512 + 1); /* the last token never needs the cache */
    mc_gen_result_fini(&r);
    fx_close(&f);
}

MC_TEST(gen_score_matches_generation_logprobs) {
    fixture f;
    fx_open(&f, 1);
    int32_t p[64];
    int np = encode(&f, "Lily and Ben", p, 64);
    mc_gen_params gp = mc_gen_params_default();
    gp.max_new = 20;
    gp.n_top = 5;
    mc_gen_result r;
    mc_err err;
    MC_REQUIRE(mc_gen_run(f.c, f.tok, p, np, NULL, 0, &gp, &r, &err) == 0);
    int32_t all[96];
    memcpy(all, p, sizeof(int32_t) * (size_t)np);
    for (int i = 0; i < r.n; i++) {
        all[np + i] = r.toks[i].id;
        /* greedy: the chosen token is the best alternative */
        CHECK_EQ_INT(r.toks[i].top_id[0], r.toks[i].id);
        CHECK_NEAR(r.toks[i].top_logprob[0], r.toks[i].logprob, 1e-6);
        CHECK_EQ_INT(r.toks[i].rank, 1);
        CHECK(r.toks[i].logprob <= 0.0f);
        for (int j = 1; j < r.toks[i].n_top; j++)
            CHECK(r.toks[i].top_logprob[j] <= r.toks[i].top_logprob[j - 1]);
    }
    mc_gen_token sc[96];
    MC_REQUIRE(mc_gen_score(f.c, all, np + r.n, 5, sc, &err) == 0);
    CHECK_EQ_INT(sc[0].n_top, 0);
    CHECK_EQ_INT(sc[0].rank, 0);
    /* a prompt token's rank: 1 + the alternatives strictly more likely */
    for (int i = 1; i < np; i++) {
        int better = 0;
        for (int j = 0; j < sc[i].n_top; j++)
            better += sc[i].top_logprob[j] > sc[i].logprob;
        if (better < sc[i].n_top)
            CHECK_EQ_INT(sc[i].rank, better + 1);
        else
            CHECK(sc[i].rank > sc[i].n_top);
    }
    for (int i = 0; i < r.n; i++) {
        CHECK_EQ_INT(sc[np + i].id, r.toks[i].id);
        CHECK_NEAR(sc[np + i].logprob, r.toks[i].logprob, 1e-3);
        CHECK_EQ_INT(sc[np + i].top_id[0], r.toks[i].top_id[0]);
    }
    mc_gen_result_fini(&r);
    /* probabilities of a row sum to one */
    float row[5] = {1.0f, 2.0f, 3.0f, -1.0f, 0.5f};
    double sum = 0;
    for (int i = 0; i < 5; i++)
        sum += exp(mc_gen_logprob(row, 5, i));
    CHECK_NEAR(sum, 1.0, 1e-6);
    int32_t ti[3];
    float tl[3];
    CHECK_EQ_INT(mc_gen_top(row, 5, 3, ti, tl), 3);
    CHECK_EQ_INT(ti[0], 2);
    CHECK_EQ_INT(ti[1], 1);
    CHECK_EQ_INT(ti[2], 0);
    CHECK_EQ_INT(mc_gen_rank(row, 5, 2), 1);
    CHECK_EQ_INT(mc_gen_rank(row, 5, 3), 5);
    CHECK_EQ_INT(mc_gen_rank(row, 5, 7), 0);
    float tie[4] = {1.0f, 3.0f, 3.0f, 3.0f};
    CHECK_EQ_INT(mc_gen_rank(tie, 4, 3), 1); /* ties share the better rank */
    CHECK_EQ_INT(mc_gen_top(tie, 4, 2, ti, tl), 2);
    CHECK_EQ_INT(ti[0], 1); /* ties: lower id first */
    CHECK_EQ_INT(ti[1], 2);
    fx_close(&f);
}

MC_TEST(gen_rejects_bad_requests) {
    fixture f;
    fx_open(&f, 1);
    int32_t p[4] = {1, 50, 60, 70};
    mc_gen_params gp = mc_gen_params_default();
    mc_gen_result r;
    mc_err err;
    int32_t bad[2] = {1, 100000};
    CHECK_EQ_INT(mc_gen_run(f.c, f.tok, bad, 2, NULL, 0, &gp, &r, &err), MC_EINVAL);
    CHECK(strstr(err.msg, "100000") != NULL);
    CHECK_EQ_INT(mc_gen_run(f.c, f.tok, p, 0, NULL, 0, &gp, &r, &err), MC_EINVAL);
    CHECK_EQ_INT(mc_gen_run(f.c, f.tok, p, 4, bad, 2, &gp, &r, &err), MC_EINVAL);
    mc_sampler smp = {0.8f, 40, 1.0f, 7};
    gp.sampler = &smp;
    CHECK_EQ_INT(mc_gen_run(f.c, f.tok, p, 4, p, 2, &gp, &r, &err), MC_EINVAL);
    CHECK(strstr(err.msg, "greedy") != NULL);
    gp = mc_gen_params_default();
    gp.stop_newline = true;
    CHECK_EQ_INT(mc_gen_run(f.c, NULL, p, 4, NULL, 0, &gp, &r, &err), MC_EINVAL);
    gp = mc_gen_params_default();
    gp.n_top = MC_GEN_MAX_TOP + 1;
    CHECK_EQ_INT(mc_gen_run(f.c, f.tok, p, 4, NULL, 0, &gp, &r, &err), MC_EINVAL);
    int32_t *longp = calloc(600, sizeof(int32_t));
    MC_REQUIRE(longp);
    gp = mc_gen_params_default();
    CHECK_EQ_INT(mc_gen_run(f.c, f.tok, longp, 600, NULL, 0, &gp, &r, &err), MC_EFULL);
    free(longp);
    CHECK(r.n == 0 && r.toks == NULL && r.text == NULL);
    /* still usable afterwards; sampling is reproducible for a seed */
    gp.sampler = &smp;
    gp.max_new = 16;
    mc_gen_result a, b;
    MC_REQUIRE(mc_gen_run(f.c, f.tok, p, 4, NULL, 0, &gp, &a, &err) == 0);
    MC_REQUIRE(mc_gen_run(f.c, f.tok, p, 4, NULL, 0, &gp, &b, &err) == 0);
    CHECK_EQ_INT(a.n, b.n);
    for (int i = 0; i < a.n && i < b.n; i++)
        CHECK_EQ_INT(a.toks[i].id, b.toks[i].id);
    CHECK_EQ_INT(smp.rng, 7); /* the caller's sampler is not advanced */
    mc_gen_result_fini(&a);
    mc_gen_result_fini(&b);
    fx_close(&f);
}
