/* tests/test_cascade.c — the cascade with real models in process: stories260K
 * (a trained model) as the SLM, its Q8_0 copy (agrees often) or a random model
 * (agrees rarely) as the LLM, and a small repository for retrieval.
 * Checks: speculative output == plain LLM output, routing by tau, baselines,
 * the session state machine, LLM failures, prompt budgets and caching,
 * healing, multi-line requests. */
#include "../src/cascade/cascade_internal.h" /* the SLM's context, to see its KV cache */
#include "mccom/cascade.h"
#include "mccom/convert.h"
#include "mccom/gguf.h"
#include "test.h"

#include <stdlib.h>
#include <sys/stat.h>

static const char *tmp_path(const char *name) {
    static char buf[4][512];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", mc_test_tmpdir(), name);
    return buf[k];
}

static void write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    MC_REQUIRE(f);
    fputs(text, f);
    fclose(f);
}

typedef struct world {
    mc_model *slm, *llm_m;
    mc_tok *tok;
    mc_llm *llm;
    mc_retr_index *ix;
    mc_copy_index *cx; /* the copy tier's index, when world_copy attached one */
    mc_cascade *c;
} world;

/* llm_kind: 0 = Q8_0 stories260K, 1 = a random model with the same vocabulary */
static void world_open(world *w, int llm_kind, const mc_cascade_params *p) {
    memset(w, 0, sizeof *w);
    mc_err err;
    const char *f32 = tmp_path("s260k.gguf");
    char model[512], tokp[512];
    snprintf(model, sizeof model, "%s", mc_test_shared("models/stories260K/stories260K.bin"));
    snprintf(tokp, sizeof tokp, "%s", mc_test_shared("models/stories260K/tok512.bin"));
    MC_REQUIRE(mc_convert_llama2c(model, tokp, f32, &err) == 0);
    MC_REQUIRE(mc_model_load(f32, &w->slm, &err) == 0);
    MC_REQUIRE(mc_tok_load_gguf(mc_model_gguf(w->slm), &w->tok, &err) == 0);
    const char *lp = tmp_path("llm.gguf");
    if (llm_kind == 0) {
        MC_REQUIRE(mc_quantize_file(f32, lp, MC_TYPE_Q8_0, NULL, NULL, &err) == 0);
    } else {
        char cmd[1024];
        snprintf(cmd, sizeof cmd,
                 "build/tools/mkmodel -q --arch llama --vocab 512 --embd 64 --layers 2 --heads 4 "
                 "--ff 128 --seed 7 --scale 4 %s",
                 lp);
        MC_REQUIRE(system(cmd) == 0);
    }
    MC_REQUIRE(mc_model_load(lp, &w->llm_m, &err) == 0);
    mc_ctx_params cp = mc_ctx_params_default();
    cp.n_ctx = 512;
    cp.kv_f32 = 1;
    MC_REQUIRE(mc_llm_local_new(w->llm_m, w->tok, &cp, &w->llm, &err) == 0);

    /* a repository of "code" that is story text, so the models have something to say */
    const char *root = tmp_path("repo");
    MC_REQUIRE(mkdir(root, 0755) == 0);
    char fp[600];
    snprintf(fp, sizeof fp, "%s/tales.py", root);
    write_file(fp, "Once upon a time, there was a little girl named Lily.\n"
                   "She loved to play outside in the park.\n"
                   "One day, she saw a big, red ball.\n"
                   "She wanted to play with it, but it was too high.\n"
                   "Lily's mom said, \"Lily, let's go to the park.\"\n");
    snprintf(fp, sizeof fp, "%s/other.py", root);
    write_file(fp, "Tom and Sue were friends. They liked to play with toys.\n"
                   "One day, Tom saw a cat in the garden.\n"
                   "The cat was very hungry and sad.\n");
    MC_REQUIRE(mc_retr_new(&w->ix, root, NULL, NULL, &err) == 0);
    MC_REQUIRE(mc_retr_sync(w->ix, NULL, &err) == 0);
    cp.n_ctx = 512;
    MC_REQUIRE(mc_cascade_new(p, w->slm, w->tok, w->llm, w->ix, &cp, &w->c, &err) == 0);
}

/* Attach a copy index (tier 0) following the world's retrieval index. */
static void world_copy(world *w) {
    mc_err err;
    MC_REQUIRE(mc_copy_new(&w->cx, w->ix, &err) == 0);
    MC_REQUIRE(mc_copy_sync(w->cx, NULL, &err) == 0);
    mc_cascade_set_copy(w->c, w->cx);
}

static void world_close(world *w) {
    mc_cascade_free(w->c);
    mc_copy_free(w->cx);
    mc_retr_free(w->ix);
    mc_llm_free(w->llm);
    mc_model_free(w->llm_m);
    mc_tok_free(w->tok);
    mc_model_free(w->slm);
}

static mc_cascade_doc doc_of(const char *text) {
    mc_cascade_doc d;
    memset(&d, 0, sizeof d);
    d.path = "story.py";
    d.text = text;
    d.len = strlen(text);
    d.cursor = d.len;
    d.line = -1;
    return d;
}

static const char *docs[] = {
    "Once upon a time, there was a little girl named Lily.\nShe",
    "One day, Tom saw a cat in the garden.\nThe cat",
    "Lily and Ben were playing in the park.\n",
    "The sun was shining. Mom said, \"Let's go",
    "She wanted to play with the ball, but",
    "Once upon a ti",
};

/* copy: with the copy tier (never shown at once: its candidates are scored,
 * picked and become stage-1 drafts; prompt lookup drafts in stage 2). */
static void spec_vs_plain(int llm_kind, bool copy) {
    mc_cascade_params p = mc_cascade_params_default();
    p.routing = false;
    p.tau_copy = 2.0f;
    p.lookup_min = 1; /* so that the random LLM's tokens find earlier occurrences */
    world w;
    world_open(&w, llm_kind, &p);
    if (copy)
        world_copy(&w);
    int total_accepted = 0, total_drafted = 0, copy_drafts = 0, lookup = 0;
    for (size_t i = 0; i < MC_ARRAY_LEN(docs); i++) {
        for (int lines = 1; lines <= 2; lines++) {
            mc_cascade_doc d = doc_of(docs[i]);
            d.n_lines = lines;
            mc_err err;
            mc_suggestion s, a, b;
            MC_REQUIRE(mc_cascade_suggest(w.c, &d, NULL, &s, &err) == 0);
            CHECK_EQ_INT(s.source, copy && s.copy_precision >= 0 ? MC_SRC_COPY : MC_SRC_SLM);
            CHECK_EQ_INT(s.path, MC_PATH_SLM);
            copy_drafts += s.draft_text != NULL || s.source == MC_SRC_COPY;
            CHECK(s.confidence >= 0.0f && s.confidence <= 1.0f);
            int erc = mc_cascade_escalate(w.c, &d, &s, MC_PATH_REJECTION, NULL, &a, &err);
            CHECK_MSG(erc == 0, "escalate: %s", err.msg);
            MC_REQUIRE(erc == 0);
            p.speculative = false;
            MC_REQUIRE(mc_cascade_set_params(w.c, &p, &err) == 0);
            MC_REQUIRE(mc_cascade_escalate(w.c, &d, &s, MC_PATH_REJECTION, NULL, &b, &err) == 0);
            p.speculative = true;
            MC_REQUIRE(mc_cascade_set_params(w.c, &p, &err) == 0);
            CHECK_MSG(a.len == b.len && strcmp(a.text, b.text) == 0,
                      "doc %zu lines %d: speculative '%s' != plain '%s'", i, lines, a.text, b.text);
            CHECK_EQ_INT(a.source, 1);
            CHECK_EQ_INT(a.path, MC_PATH_REJECTION);
            CHECK_EQ_INT(b.st.llm_calls, 1); /* plain decoding: one call */
            CHECK_EQ_INT(b.st.draft_tokens, 0);
            CHECK(a.st.llm_calls >= 1);
            CHECK(a.st.draft_accepted <= a.st.draft_tokens);
            CHECK(copy || a.st.stage1_accepted <= s.n_slm_ids);
            CHECK(a.st.lookup_accepted <= a.st.lookup_tokens);
            lookup += a.st.lookup_tokens;
            if (!copy)
                CHECK_EQ_INT(a.st.lookup_tokens, 0);
            CHECK_EQ_INT(a.st.llm_calls, 1 + a.st.stage2_rounds);
            /* at most n_lines lines */
            int nl = 0;
            for (size_t k = 0; k < a.len; k++)
                nl += a.text[k] == '\n';
            CHECK(nl <= lines - 1);
            total_accepted += a.st.draft_accepted;
            total_drafted += a.st.draft_tokens;
            mc_suggestion_fini(&s);
            mc_suggestion_fini(&a);
            mc_suggestion_fini(&b);
        }
    }
    if (llm_kind == 0 && !copy) /* the Q8_0 copy agrees with its F32 original most of the time */
        CHECK_MSG(total_accepted * 3 > total_drafted, "accepted %d of %d draft tokens",
                  total_accepted, total_drafted);
    if (copy) {
        CHECK_MSG(copy_drafts > 0, "no copy candidate was ever a draft");
        if (llm_kind == 1) /* the random LLM rejects the SLM's drafts: lookup takes over */
            CHECK_MSG(lookup > 0, "prompt lookup never drafted");
    }
    world_close(&w);
}

MC_TEST_T(cascade_speculative_equals_plain_q8_llm, 240) { spec_vs_plain(0, false); }
MC_TEST_T(cascade_speculative_equals_plain_random_llm, 240) { spec_vs_plain(1, false); }
MC_TEST_T(cascade_speculative_equals_plain_with_copy_drafts_q8_llm, 240) { spec_vs_plain(0, true); }
MC_TEST_T(cascade_speculative_equals_plain_with_copy_drafts_random_llm, 240) {
    spec_vs_plain(1, true);
}

/* Tier 0 shown at once: no model runs, the SLM's KV cache is exactly as it
 * was; a rejection escalates (the next candidate or the copy line is the
 * draft) to the LLM's plain greedy line; the session counts it. */
MC_TEST(cascade_copy_tier_shown_at_once_runs_no_model) {
    mc_cascade_params p = mc_cascade_params_default();
    p.routing = false;
    p.tau_copy = 0.0f; /* whatever its precision */
    world w;
    world_open(&w, 0, &p);
    world_copy(&w);
    mc_err err;
    /* warm the cache with a line the copy tier has nothing for */
    mc_cascade_doc d0 = doc_of("The sun was shining. Mom said, \"Let's go");
    mc_suggestion s;
    MC_REQUIRE(mc_cascade_suggest(w.c, &d0, NULL, &s, &err) == 0);
    CHECK_EQ_INT(s.source, MC_SRC_SLM);
    mc_suggestion_fini(&s);
    int n_past = mc_ctx_n_past(w.c->slm_ctx);
    MC_REQUIRE(n_past > 0);
    int32_t *before = malloc((size_t)n_past * sizeof *before);
    memcpy(before, mc_ctx_tokens(w.c->slm_ctx), (size_t)n_past * sizeof *before);

    mc_cascade_doc d = doc_of("One day, she saw a big, red ball.\n");
    MC_REQUIRE(mc_cascade_suggest(w.c, &d, NULL, &s, &err) == 0);
    CHECK_EQ_INT(s.path, MC_PATH_COPY);
    CHECK_EQ_INT(s.source, MC_SRC_COPY);
    CHECK_EQ_STR(s.text, "She wanted to play with it, but it was too high.");
    CHECK_EQ_STR(s.copy_file, "tales.py");
    CHECK_EQ_INT(s.copy_line, 3);
    CHECK(s.copy_precision > 0.0f && s.copy_precision < 1.0f);
    CHECK(s.confidence < 0.0f);
    CHECK(s.slm_text == NULL);
    CHECK_EQ_INT(s.st.slm_tokens + s.st.slm_prompt_tokens + s.st.llm_calls, 0);
    CHECK_EQ_INT(mc_ctx_n_past(w.c->slm_ctx), n_past);
    CHECK(!memcmp(mc_ctx_tokens(w.c->slm_ctx), before, (size_t)n_past * sizeof *before));
    free(before);

    /* rejected: the LLM's line, speculative == plain */
    mc_suggestion a, b;
    MC_REQUIRE(mc_cascade_escalate(w.c, &d, &s, MC_PATH_REJECTION, NULL, &a, &err) == 0);
    p.speculative = false;
    MC_REQUIRE(mc_cascade_set_params(w.c, &p, &err) == 0);
    MC_REQUIRE(mc_cascade_escalate(w.c, &d, &s, MC_PATH_REJECTION, NULL, &b, &err) == 0);
    CHECK_EQ_STR(a.text, b.text);
    CHECK_EQ_INT(a.source, MC_SRC_LLM);
    CHECK(a.st.draft_tokens > 0); /* the copy line was the stage-1 draft */
    CHECK_EQ_INT(b.st.draft_tokens, 0);
    mc_suggestion_fini(&a);
    mc_suggestion_fini(&b);
    mc_suggestion_fini(&s);

    /* with --no-copy (the tier off) the same document runs the SLM */
    p.speculative = true;
    p.copy = false;
    MC_REQUIRE(mc_cascade_set_params(w.c, &p, &err) == 0);
    MC_REQUIRE(mc_cascade_suggest(w.c, &d, NULL, &s, &err) == 0);
    CHECK_EQ_INT(s.source, MC_SRC_SLM);
    CHECK(s.st.slm_prompt_tokens > 0);
    CHECK_EQ_INT(s.st.copy_candidates, 0);
    mc_suggestion_fini(&s);

    /* in a session: shown, rejected by Esc, escalated on the next request */
    p.copy = true;
    MC_REQUIRE(mc_cascade_set_params(w.c, &p, &err) == 0);
    mc_session *ss = mc_session_new(w.c);
    const mc_suggestion *sg;
    MC_REQUIRE(mc_session_request(ss, &d, NULL, &sg, &err) == 0);
    CHECK_EQ_INT(sg->source, MC_SRC_COPY);
    /* typing its first characters keeps it, without a model */
    mc_cascade_doc d2 = doc_of("One day, she saw a big, red ball.\nShe w");
    MC_REQUIRE(mc_session_request(ss, &d2, NULL, &sg, &err) == 0);
    CHECK_EQ_STR(sg->text, "anted to play with it, but it was too high.");
    mc_session_rejected(ss);
    CHECK(mc_session_pending(ss));
    MC_REQUIRE(mc_session_request(ss, &d2, NULL, &sg, &err) == 0);
    CHECK_EQ_INT(sg->source, MC_SRC_LLM);
    CHECK_EQ_INT(sg->path, MC_PATH_REJECTION);
    mc_session_stats st;
    mc_session_get_stats(ss, &st);
    CHECK_EQ_INT(st.shown_copy, 1);
    CHECK_EQ_INT(st.escalated_rejection, 1);
    mc_session_free(ss);
    world_close(&w);
}

/* Tier 0 not precise enough: the SLM scores the candidates and, by the
 * default rule, shows the copy line; its own line stays the round-2 query and
 * is unchanged by the scoring; copy_theta above every score keeps its line. */
MC_TEST(cascade_copy_candidates_scored_and_picked) {
    mc_cascade_params p = mc_cascade_params_default();
    p.routing = false;
    p.tau_copy = 2.0f; /* never at once */
    world w;
    world_open(&w, 0, &p);
    mc_err err;
    mc_cascade_doc d = doc_of("One day, she saw a big, red ball.\n");
    mc_suggestion plain, s, t;
    MC_REQUIRE(mc_cascade_suggest(w.c, &d, NULL, &plain, &err) == 0); /* no copy index yet */
    CHECK_EQ_INT(plain.source, MC_SRC_SLM);
    world_copy(&w);
    MC_REQUIRE(mc_cascade_suggest(w.c, &d, NULL, &s, &err) == 0);
    CHECK_EQ_INT(s.source, MC_SRC_COPY);
    CHECK_EQ_INT(s.path, MC_PATH_SLM);
    CHECK_EQ_STR(s.text, "She wanted to play with it, but it was too high.");
    CHECK_EQ_STR(s.slm_text, plain.text); /* the SLM's own line is unchanged */
    CHECK(s.st.copy_scored >= 1 && s.st.copy_candidates >= s.st.copy_scored);
    CHECK(s.confidence >= 0.0f && s.confidence <= 1.0f);
    CHECK_EQ_STR(s.copy_top, s.text);
    /* a rejection escalates with the SLM's line as the draft (the only other line) */
    CHECK(s.draft_text == NULL);
    /* confidence routing never escalates a copy line at once, whatever tau */
    p.routing = true;
    p.tau = 1.0f;
    MC_REQUIRE(mc_cascade_set_params(w.c, &p, &err) == 0);
    mc_suggestion r;
    MC_REQUIRE(mc_cascade_suggest(w.c, &d, NULL, &r, &err) == 0);
    CHECK_EQ_INT(r.source, MC_SRC_COPY);
    CHECK_EQ_INT(r.path, MC_PATH_SLM);
    CHECK_EQ_INT(r.st.llm_calls, 0);
    mc_suggestion_fini(&r);
    p.routing = false;
    p.copy_theta = 1e9f;
    MC_REQUIRE(mc_cascade_set_params(w.c, &p, &err) == 0);
    MC_REQUIRE(mc_cascade_suggest(w.c, &d, NULL, &t, &err) == 0);
    CHECK_EQ_INT(t.source, MC_SRC_SLM);
    CHECK_EQ_STR(t.text, plain.text);
    CHECK_NEAR(t.confidence, plain.confidence, 1e-6);
    CHECK_EQ_STR(t.draft_text, s.text); /* the copy line is the draft of a rejection */
    /* the copy-only baseline */
    mc_suggestion o;
    MC_REQUIRE(mc_cascade_copy_only(w.c, &d, &o, &err) == 0);
    CHECK_EQ_INT(o.path, MC_PATH_COPY);
    CHECK_EQ_STR(o.text, s.text);
    mc_cascade_doc none = doc_of("Nothing like this line is in the repository.\n");
    mc_suggestion_fini(&o);
    MC_REQUIRE(mc_cascade_copy_only(w.c, &none, &o, &err) == 0);
    CHECK_EQ_STR(o.text, "");
    mc_suggestion_fini(&o);
    mc_suggestion_fini(&plain);
    mc_suggestion_fini(&s);
    mc_suggestion_fini(&t);
    world_close(&w);
}

MC_TEST(cascade_routing_follows_tau) {
    mc_cascade_params p = mc_cascade_params_default();
    world w;
    world_open(&w, 0, &p);
    mc_err err;
    mc_cascade_doc d = doc_of(docs[0]);
    mc_suggestion s;
    p.tau = 1.0f; /* every line is "hopeless" */
    MC_REQUIRE(mc_cascade_set_params(w.c, &p, &err) == 0);
    MC_REQUIRE(mc_cascade_suggest(w.c, &d, NULL, &s, &err) == 0);
    CHECK_EQ_INT(s.path, MC_PATH_CONFIDENCE);
    CHECK_EQ_INT(s.source, 1);
    CHECK(s.st.llm_calls >= 1);
    CHECK(s.st.ms_total >= s.st.ms_slm);
    /* the same as escalating the SLM's line by hand */
    mc_suggestion slm, up;
    p.routing = false;
    MC_REQUIRE(mc_cascade_set_params(w.c, &p, &err) == 0);
    MC_REQUIRE(mc_cascade_suggest(w.c, &d, NULL, &slm, &err) == 0);
    CHECK_EQ_INT(slm.path, MC_PATH_SLM);
    MC_REQUIRE(mc_cascade_escalate(w.c, &d, &slm, MC_PATH_CONFIDENCE, NULL, &up, &err) == 0);
    CHECK_EQ_STR(s.text, up.text);
    CHECK_EQ_STR(s.slm_text, slm.text);
    CHECK_NEAR(s.confidence, slm.confidence, 1e-6);
    mc_suggestion_fini(&s);
    mc_suggestion_fini(&slm);
    mc_suggestion_fini(&up);
    p.routing = true;
    p.tau = 0.0f; /* never */
    MC_REQUIRE(mc_cascade_set_params(w.c, &p, &err) == 0);
    MC_REQUIRE(mc_cascade_suggest(w.c, &d, NULL, &s, &err) == 0);
    CHECK_EQ_INT(s.path, MC_PATH_SLM);
    CHECK_EQ_INT(s.st.llm_calls, 0);
    mc_suggestion_fini(&s);
    /* bad parameters are refused and leave the old ones */
    p.tau = 2.0f;
    CHECK_EQ_INT(mc_cascade_set_params(w.c, &p, &err), MC_EINVAL);
    CHECK_NEAR(mc_cascade_get_params(w.c)->tau, 0.0, 1e-9);
    world_close(&w);
}

MC_TEST(cascade_llm_only_rounds) {
    mc_cascade_params p = mc_cascade_params_default();
    world w;
    world_open(&w, 0, &p);
    mc_err err;
    mc_cascade_doc d = doc_of(docs[1]);
    mc_suggestion s0, s1, s2;
    MC_REQUIRE(mc_cascade_llm_only(w.c, &d, 0, NULL, &s0, &err) == 0);
    MC_REQUIRE(mc_cascade_llm_only(w.c, &d, 1, NULL, &s1, &err) == 0);
    MC_REQUIRE(mc_cascade_llm_only(w.c, &d, 2, NULL, &s2, &err) == 0);
    CHECK_EQ_INT(s0.st.llm_calls, 1);
    CHECK_EQ_INT(s0.st.retr1_windows, 0);
    CHECK_EQ_INT(s1.st.llm_calls, 1);
    CHECK_MSG(s1.st.retr1_windows > 0, "windows %d prompt %d", s1.st.retr1_windows, s1.st.llm_prompt_tokens);
    CHECK_EQ_INT(s2.st.llm_calls, 2);
    CHECK(s2.st.retr2_windows > 0);
    CHECK_EQ_INT(s0.path, MC_PATH_LLM);
    CHECK(s0.confidence < 0.0f);
    /* RepoCoder's two rounds send two prompts: both are counted */
    CHECK_MSG(s2.st.llm_prompt_tokens > s1.st.llm_prompt_tokens, "two rounds %d, one %d",
              s2.st.llm_prompt_tokens, s1.st.llm_prompt_tokens);
    mc_suggestion_fini(&s0);
    CHECK_EQ_INT(mc_cascade_llm_only(w.c, &d, 3, NULL, &s0, &err), MC_EINVAL);
    mc_suggestion_fini(&s1);
    mc_suggestion_fini(&s2);
    world_close(&w);
}

MC_TEST(cascade_session_state_machine) {
    mc_cascade_params p = mc_cascade_params_default();
    p.routing = false;
    world w;
    world_open(&w, 0, &p);
    mc_err err;
    mc_session *s = mc_session_new(w.c);
    MC_REQUIRE(s);
    char text[512];
    snprintf(text, sizeof text, "%s", docs[0]);
    mc_cascade_doc d = doc_of(text);
    const mc_suggestion *sg;
    MC_REQUIRE(mc_session_request(s, &d, NULL, &sg, &err) == 0);
    CHECK_EQ_INT(sg->source, 0);
    MC_REQUIRE(sg->len >= 2); /* stories260K continues "She" with a word or more */
    char sugg[256];
    snprintf(sugg, sizeof sugg, "%s", sg->text);
    uint64_t id = sg->id;

    /* type-through: the user types the first two characters of the suggestion */
    size_t L = strlen(text);
    memcpy(text + L, sugg, 2);
    text[L + 2] = '\0';
    d = doc_of(text);
    MC_REQUIRE(mc_session_request(s, &d, NULL, &sg, &err) == 0);
    CHECK_EQ_INT((int64_t)sg->id, (int64_t)id);
    CHECK_EQ_STR(sg->text, sugg + 2);
    mc_session_stats st;
    mc_session_get_stats(s, &st);
    CHECK_EQ_INT(st.reused, 1);
    CHECK_EQ_INT(st.typed_through, 2);

    /* a diverging keystroke rejects: the next request on the line escalates */
    text[L + 2] = sugg[2] == '#' ? '@' : '#';
    text[L + 3] = '\0';
    d = doc_of(text);
    MC_REQUIRE(mc_session_request(s, &d, NULL, &sg, &err) == 0);
    CHECK_EQ_INT(sg->source, 1);
    CHECK_EQ_INT(sg->path, MC_PATH_REJECTION);
    CHECK(!mc_session_pending(s));
    mc_session_get_stats(s, &st);
    CHECK_EQ_INT(st.rejected, 1);
    CHECK_EQ_INT(st.escalated_rejection, 1);
    CHECK_EQ_INT(st.shown_llm, 1);

    /* accepting the LLM's line */
    mc_session_accepted(s, sg->len);
    CHECK(mc_session_current(s) == NULL);
    mc_session_get_stats(s, &st);
    CHECK_EQ_INT(st.accepted_llm, 1);

    /* a new line: SLM again; Esc then a request on the same line escalates */
    snprintf(text, sizeof text, "%s", docs[1]);
    d = doc_of(text);
    MC_REQUIRE(mc_session_request(s, &d, NULL, &sg, &err) == 0);
    CHECK_EQ_INT(sg->source, 0);
    mc_session_rejected(s);
    CHECK(mc_session_pending(s));
    MC_REQUIRE(mc_session_request(s, &d, NULL, &sg, &err) == 0);
    CHECK_EQ_INT(sg->path, MC_PATH_REJECTION);
    /* moving to another line drops everything */
    mc_session_cursor_moved(s);
    CHECK(mc_session_current(s) == NULL);
    CHECK(!mc_session_pending(s));
    /* an explicit re-ask escalates the shown SLM line; nothing shown: ENOTFOUND */
    MC_REQUIRE(mc_session_request(s, &d, NULL, &sg, &err) == 0);
    CHECK_EQ_INT(sg->source, 0);
    MC_REQUIRE(mc_session_escalate(s, &d, NULL, &sg, &err) == 0);
    CHECK_EQ_INT(sg->source, 1);
    mc_session_cursor_moved(s);
    CHECK_EQ_INT(mc_session_escalate(s, &d, NULL, &sg, &err), MC_ENOTFOUND);
    /* explicit typed events */
    MC_REQUIRE(mc_session_request(s, &d, NULL, &sg, &err) == 0);
    MC_REQUIRE(sg->len >= 1);
    char first = sg->text[0];
    CHECK_EQ_INT(mc_session_typed(s, &first, 1), 1);
    char wrong = '\x01';
    CHECK_EQ_INT(mc_session_typed(s, &wrong, 1), 0);
    CHECK(mc_session_pending(s));
    mc_session_free(s);
    world_close(&w);
}

/* An empty suggestion shows nothing, so typing on after it is no rejection
 * and must not cost a large-model call. (With one token per line and a
 * healed cursor, stories260K's line after "Once upon a time" is the healed
 * word itself: empty.) */
MC_TEST(cascade_session_empty_suggestion_is_not_rejected) {
    mc_cascade_params p = mc_cascade_params_default();
    p.routing = false;
    p.max_line_tokens = 1;
    world w;
    world_open(&w, 0, &p);
    mc_session *s = mc_session_new(w.c);
    mc_err err;
    const mc_suggestion *sg;
    mc_cascade_doc d = doc_of("Once upon a time");
    MC_REQUIRE(mc_session_request(s, &d, NULL, &sg, &err) == 0);
    MC_REQUIRE(sg->len == 0 && sg->source == 0);
    d = doc_of("Once upon a time,");
    MC_REQUIRE(mc_session_request(s, &d, NULL, &sg, &err) == 0);
    CHECK_EQ_INT(sg->source, 0);
    CHECK_EQ_INT(sg->path, MC_PATH_SLM);
    mc_session_stats st;
    mc_session_get_stats(s, &st);
    CHECK_EQ_INT(st.rejected, 0);
    CHECK_EQ_INT(st.escalated_rejection, 0);
    /* Esc on an empty suggestion: nothing to escalate either */
    d = doc_of("Once upon a time, there");
    MC_REQUIRE(mc_session_request(s, &d, NULL, &sg, &err) == 0);
    MC_REQUIRE(sg->len == 0);
    mc_session_rejected(s);
    CHECK(!mc_session_pending(s));
    mc_session_free(s);
    world_close(&w);
}

/* An LLM tier that always fails, and one that is "down". */
static int fail_generate(void *self, const mc_llm_request *rq, mc_llm_result *res, mc_err *err) {
    (void)rq;
    (void)res;
    (*(int *)self)++;
    return mc_err_set(err, MC_ENET, -1, "connection refused");
}
static bool down_available(void *self) {
    (void)self;
    return false;
}

MC_TEST(cascade_llm_failure_keeps_local_answer) {
    mc_cascade_params p = mc_cascade_params_default();
    p.tau = 1.0f;
    world w;
    world_open(&w, 0, &p);
    int calls = 0;
    mc_llm_ops ops = {fail_generate, NULL, NULL, NULL};
    mc_llm *bad = mc_llm_new(&ops, &calls);
    MC_REQUIRE(bad);
    mc_cascade_set_llm(w.c, bad);
    mc_err err;
    mc_cascade_doc d = doc_of(docs[0]);
    mc_suggestion s;
    MC_REQUIRE(mc_cascade_suggest(w.c, &d, NULL, &s, &err) == 0);
    CHECK_EQ_INT(s.source, 0);
    CHECK(s.st.llm_failed);
    CHECK_EQ_INT(calls, 1);
    CHECK(s.len > 0);
    mc_suggestion_fini(&s);
    /* a tier that says it is down is not called at all */
    mc_llm_ops ops2 = {fail_generate, down_available, NULL, NULL};
    mc_llm *down = mc_llm_new(&ops2, &calls);
    mc_cascade_set_llm(w.c, down);
    MC_REQUIRE(mc_cascade_suggest(w.c, &d, NULL, &s, &err) == 0);
    CHECK(s.st.llm_failed);
    CHECK_EQ_INT(calls, 1);
    mc_suggestion up;
    CHECK_EQ_INT(mc_cascade_escalate(w.c, &d, &s, MC_PATH_REJECTION, NULL, &up, &err), MC_ENET);
    mc_suggestion_fini(&s);
    /* no LLM at all */
    mc_cascade_set_llm(w.c, NULL);
    MC_REQUIRE(mc_cascade_suggest(w.c, &d, NULL, &s, &err) == 0);
    CHECK_EQ_INT(s.path, MC_PATH_SLM);
    CHECK(!s.st.llm_failed);
    CHECK_EQ_INT(mc_cascade_escalate(w.c, &d, &s, MC_PATH_REJECTION, NULL, &up, &err),
                 MC_EUNSUPPORTED);
    mc_suggestion_fini(&s);
    mc_cascade_set_llm(w.c, w.llm);
    mc_llm_free(bad);
    mc_llm_free(down);
    world_close(&w);
}

MC_TEST(cascade_prompt_budget_cache_and_healing) {
    mc_cascade_params p = mc_cascade_params_default();
    p.routing = false;
    p.slm_prompt_tokens = 400;
    p.retr_tokens = 60;
    world w;
    world_open(&w, 0, &p);
    mc_err err;
    /* a long document: many story lines */
    size_t cap = 64 * 1024, n = 0;
    char *text = malloc(cap);
    MC_REQUIRE(text);
    for (int i = 0; n + 200 < cap / 2; i++)
        n += (size_t)snprintf(text + n, cap - n, "Line %d: the cat and the dog played in the sun.\n", i);
    n += (size_t)snprintf(text + n, cap - n, "Lily saw a big");
    mc_cascade_doc d = doc_of(text);
    mc_suggestion a, b;
    MC_REQUIRE(mc_cascade_suggest(w.c, &d, NULL, &a, &err) == 0);
    CHECK(a.st.slm_prompt_tokens <= 400);
    /* the budget is used: the cut moves in steps of 8 lines, so at most 8
     * lines' worth of tokens (plus the healed word) are left unused */
    int64_t per_line = 0;
    const char *one = "Line 1234: the cat and the dog played in the sun.\n";
    MC_REQUIRE(mc_tok_encode(w.tok, one, strlen(one), 0, NULL, 0, &per_line) == MC_EFULL);
    CHECK_MSG(a.st.slm_prompt_tokens >= 400 - 9 * per_line, "prompt %d tokens, %lld per line",
              a.st.slm_prompt_tokens, (long long)per_line);
    /* typing a character on the same line: the prompt prefix is reused */
    text[n++] = ' ';
    text[n] = '\0';
    d = doc_of(text);
    MC_REQUIRE(mc_cascade_suggest(w.c, &d, NULL, &b, &err) == 0);
    CHECK_MSG(b.st.slm_reused >= b.st.slm_prompt_tokens - 4, "reused %d of %d", b.st.slm_reused,
              b.st.slm_prompt_tokens);
    mc_suggestion_fini(&a);
    mc_suggestion_fini(&b);
    free(text);

    /* healing: the cursor inside "time" — the suggestion does not repeat "ti" */
    p.slm_prompt_tokens = 0;
    MC_REQUIRE(mc_cascade_set_params(w.c, &p, &err) == 0);
    d = doc_of("Once upon a ti");
    MC_REQUIRE(mc_cascade_suggest(w.c, &d, NULL, &a, &err) == 0);
    CHECK_MSG(strncmp(a.text, "me", 2) == 0, "healed suggestion '%s'", a.text);
    mc_suggestion_fini(&a);
    /* an empty document and a cursor at 0 still work */
    d = doc_of("");
    MC_REQUIRE(mc_cascade_suggest(w.c, &d, NULL, &a, &err) == 0);
    mc_suggestion_fini(&a);
    /* bad documents are refused */
    d = doc_of("abc");
    d.cursor = 10;
    CHECK_EQ_INT(mc_cascade_suggest(w.c, &d, NULL, &a, &err), MC_EINVAL);
    /* cancellation */
    static volatile int stop = 1;
    d = doc_of(docs[0]);
    CHECK_EQ_INT(mc_cascade_suggest(w.c, &d, &stop, &a, &err), MC_ECANCELED);
    world_close(&w);
}

/* A statement-level request (several lines) on a document far longer than the
 * context: the escalation must fit the large model's context with the small
 * model's multi-line draft and the lines it generates. It failed with
 * MC_EFULL ("the prompt has 513 tokens, more than the context of 512") when
 * the prompt budget kept room for one line only, and in a session the small
 * model's line then silently stood (found by the evaluation's stmt tasks). */
MC_TEST(cascade_multiline_escalation_fits_context) {
    mc_cascade_params p = mc_cascade_params_default();
    p.routing = false;
    world w;
    world_open(&w, 1, &p);
    mc_err err;
    size_t cap = 16 * 1024, n = 0;
    char *text = malloc(cap);
    MC_REQUIRE(text);
    while (n + 100 < cap)
        n += (size_t)snprintf(text + n, cap - n, "Once upon a time there was a girl who loved the park.\n");
    for (int n_lines = 1; n_lines <= 8; n_lines += 7) {
        mc_cascade_doc d = doc_of(text);
        d.n_lines = n_lines;
        mc_suggestion s, e, l;
        MC_REQUIRE(mc_cascade_suggest(w.c, &d, NULL, &s, &err) == 0);
        int rc = mc_cascade_escalate(w.c, &d, &s, MC_PATH_REJECTION, NULL, &e, &err);
        CHECK_MSG(rc == 0, "escalation of %d lines failed: %s", n_lines, err.msg);
        if (rc == 0) {
            CHECK(e.st.llm_calls >= 1);
            int nl = 0;
            for (size_t i = 0; i < e.len; i++)
                nl += e.text[i] == '\n';
            CHECK(nl <= n_lines - 1);
            /* the large model alone on the same prompt: the same greedy lines */
            MC_REQUIRE(mc_cascade_llm_only(w.c, &d, 1, NULL, &l, &err) == 0);
            CHECK_EQ_STR(l.text, e.text);
            mc_suggestion_fini(&l);
        }
        mc_suggestion_fini(&e);
        mc_suggestion_fini(&s);
    }
    free(text);
    world_close(&w);
}

/* The shipped code pair (models/): both load, share one vocabulary, the large model
 * verifies the small one's lines, and speculative decoding gives exactly the large
 * model's plain greedy line, on Python code with a Python repository to retrieve from. */
MC_TEST_T(cascade_shipped_pair_speculative_equals_plain, 240) {
    const char *slm_path = "models/mccom-cpu-small-q8_0.gguf";
    const char *llm_path = "models/mccom-cpu-large-q8_0.gguf";
    mc_err err;
    mc_model *slm = NULL, *llm_m = NULL;
    mc_tok *tok = NULL, *tok_l = NULL;
    MC_REQUIRE(mc_model_load(slm_path, &slm, &err) == 0);
    MC_REQUIRE(mc_model_load(llm_path, &llm_m, &err) == 0);
    MC_REQUIRE(mc_tok_load_gguf(mc_model_gguf(slm), &tok, &err) == 0);
    MC_REQUIRE(mc_tok_load_gguf(mc_model_gguf(llm_m), &tok_l, &err) == 0);
    CHECK_EQ_INT(mc_model_hparams(slm)->n_vocab, 16384);
    CHECK_EQ_INT(mc_model_hparams(llm_m)->n_vocab, 16384);
    CHECK(mc_model_hparams(llm_m)->n_layer > mc_model_hparams(slm)->n_layer);
    /* one vocabulary: the same text gives the same ids in both */
    const char *probe = "def parse_args(argv):\n    parser = argparse.ArgumentParser()\n";
    int32_t a_ids[64], b_ids[64];
    int64_t na = 0, nb = 0;
    MC_REQUIRE(mc_tok_encode(tok, probe, strlen(probe), 0, a_ids, 64, &na) == 0);
    MC_REQUIRE(mc_tok_encode(tok_l, probe, strlen(probe), 0, b_ids, 64, &nb) == 0);
    MC_REQUIRE(na > 0 && na == nb);
    CHECK(memcmp(a_ids, b_ids, (size_t)na * sizeof(int32_t)) == 0);
    mc_tok_free(tok_l);

    mc_ctx_params cp = mc_ctx_params_default();
    cp.n_ctx = 1024;
    mc_llm *llm = NULL;
    MC_REQUIRE(mc_llm_local_new(llm_m, tok, &cp, &llm, &err) == 0);
    const char *root = tmp_path("pyrepo");
    MC_REQUIRE(mkdir(root, 0755) == 0);
    char fp[600];
    snprintf(fp, sizeof fp, "%s/cli.py", root);
    write_file(fp, "import argparse\nimport os\n\n\ndef build_parser():\n"
                   "    parser = argparse.ArgumentParser(description='tool')\n"
                   "    parser.add_argument('--verbose', action='store_true')\n"
                   "    parser.add_argument('--output', default=None)\n"
                   "    return parser\n");
    mc_retr_index *ix = NULL;
    MC_REQUIRE(mc_retr_new(&ix, root, NULL, NULL, &err) == 0);
    MC_REQUIRE(mc_retr_sync(ix, NULL, &err) == 0);
    mc_cascade_params p = mc_cascade_params_default();
    p.routing = false;
    mc_cascade *c = NULL;
    MC_REQUIRE(mc_cascade_new(&p, slm, tok, llm, ix, &cp, &c, &err) == 0);
    static const char *code[] = {
        "import os\nimport sys\n\n\ndef main(argv):\n    parser = argparse.",
        "class Config:\n    def __init__(self, path):\n        self.path = path\n        self.",
        "def read_lines(path):\n    with open(path) as f:\n        return ",
        "for i in range(len(items)):\n    if items[i] is None:\n        ",
        "import argparse\n\n\ndef build_parser():\n    parser = argparse.ArgumentParser(",
    };
    int drafted = 0;
    for (size_t i = 0; i < MC_ARRAY_LEN(code); i++) {
        mc_cascade_doc d;
        memset(&d, 0, sizeof d);
        d.path = "main.py";
        d.text = code[i];
        d.len = strlen(code[i]);
        d.cursor = d.len;
        d.line = -1;
        d.n_lines = 1;
        mc_suggestion s, a, b;
        MC_REQUIRE(mc_cascade_suggest(c, &d, NULL, &s, &err) == 0);
        CHECK_EQ_INT(s.path, MC_PATH_SLM);
        CHECK(s.n_slm_ids > 0);
        MC_REQUIRE(mc_cascade_escalate(c, &d, &s, MC_PATH_REJECTION, NULL, &a, &err) == 0);
        p.speculative = false;
        MC_REQUIRE(mc_cascade_set_params(c, &p, &err) == 0);
        MC_REQUIRE(mc_cascade_escalate(c, &d, &s, MC_PATH_REJECTION, NULL, &b, &err) == 0);
        p.speculative = true;
        MC_REQUIRE(mc_cascade_set_params(c, &p, &err) == 0);
        CHECK_MSG(a.len == b.len && strcmp(a.text, b.text) == 0,
                  "code %zu: speculative '%s' != plain '%s'", i, a.text, b.text);
        CHECK_EQ_INT(a.source, 1);
        CHECK(a.st.draft_tokens > 0);
        CHECK(a.st.draft_accepted <= a.st.draft_tokens);
        drafted += a.st.draft_tokens;
        mc_suggestion_fini(&s);
        mc_suggestion_fini(&a);
        mc_suggestion_fini(&b);
    }
    CHECK(drafted > 0);
    mc_cascade_free(c);
    mc_retr_free(ix);
    mc_llm_free(llm);
    mc_model_free(llm_m);
    mc_tok_free(tok);
    mc_model_free(slm);
}
