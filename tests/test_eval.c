/* tests/test_eval.c — the evaluation harness: RepoCoder's scores against
 * hand-computed cases, benchmark and record files, the latency accounting and
 * the threshold sweep on made-up records, the simulated user on real models
 * with a fake clock, retrieval's leakage filter on the benchmark's
 * repositories, and `mccom eval` end to end on ../shared/bench/ci.jsonl.
 *
 * The repositories: $MC_BENCH_REPOS, else build/bench-repos (`make test` runs
 * fetch-repos.sh into it). */
#include "mccom/convert.h"
#include "mccom/eval.h"
#include "mccom/gguf.h"
#include "test.h"

#include <jansson.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static mc_eval_score score(const char *t, const char *p) {
    mc_eval_score s;
    MC_REQUIRE(mc_eval_score_text(t, strlen(t), p, strlen(p), &s) == 0);
    return s;
}

#define CHECK_SCORE(t, p, em_, es_, fuzz_)                                                   \
    do {                                                                                     \
        mc_eval_score s_ = score(t, p);                                                      \
        CHECK_MSG(s_.em == (em_) && fabs(s_.es - (es_)) < 1e-12 && s_.fuzz == (fuzz_),       \
                  "score(%s | %s) = em %d es %.15g fuzz %d, want %d %.15g %d", #t, #p, s_.em, \
                  s_.es, s_.fuzz, em_, (double)(es_), fuzz_);                                \
    } while (0)

MC_TEST(eval_normalize_like_repocoder) {
    char *o;
    size_t n;
    int lines;
    /* strip, drop blank lines, every str.splitlines boundary, "\r\n" as one */
    const char *s = "  a = 1  \n\n\tb\r\n  \x0b" "c\x1c" "d\xc2\x85" "e\xe2\x80\xa8" "f\xe2\x80\xa9g";
    MC_REQUIRE(mc_eval_normalize(s, strlen(s), -1, &o, &n, &lines) == 0);
    CHECK_EQ_STR(o, "a = 1\nb\nc\nd\ne\nf\ng");
    CHECK_EQ_INT(lines, 7);
    free(o);
    /* Unicode whitespace is stripped (NBSP, ideographic space), inner spaces kept */
    s = "\xc2\xa0x  y\xe3\x80\x80";
    MC_REQUIRE(mc_eval_normalize(s, strlen(s), -1, &o, &n, &lines) == 0);
    CHECK_EQ_STR(o, "x  y");
    free(o);
    /* at most max_lines non-blank lines */
    s = "\n\none\n\ntwo\nthree\n";
    MC_REQUIRE(mc_eval_normalize(s, strlen(s), 2, &o, &n, &lines) == 0);
    CHECK_EQ_STR(o, "one\ntwo");
    CHECK_EQ_INT(lines, 2);
    free(o);
    MC_REQUIRE(mc_eval_normalize("", 0, -1, &o, &n, &lines) == 0);
    CHECK_EQ_STR(o, "");
    CHECK_EQ_INT(lines, 0);
    free(o);
}

/* Expected values computed by hand (RepoCoder: editdistance.eval / max len;
 * fuzz: python-Levenshtein ratio = (sum - indel) / sum, rounded half to even). */
MC_TEST(eval_scores_hand_computed) {
    CHECK_SCORE("    return x + 1", "return x + 1  ", 1, 1.0, 100);
    /* one substitution in 3: ES 2/3; indel 2 of 6: 66.67 -> 67 */
    CHECK_SCORE("abc", "abd", 0, 2.0 / 3.0, 67);
    /* kitten/sitting: Levenshtein 3 of 7; LCS 4, indel 5 of 13: 61.5 -> 62 */
    CHECK_SCORE("kitten", "sitting", 0, 4.0 / 7.0, 62);
    /* the prediction is cut to the target's line count */
    CHECK_SCORE("a(\n  b,\n)", "a(\n b,\n)\nextra", 1, 1.0, 100);
    /* fewer lines: no EM; "x\ny" vs "x" is 2 deletions of 3 */
    CHECK_SCORE("x\ny", "x", 0, 1.0 / 3.0, 50);
    CHECK_SCORE("a\n\nb", "a\nb", 1, 1.0, 100);
    CHECK_SCORE("abc", "", 0, 0.0, 0);
    CHECK_SCORE("", "", 1, 1.0, 100);
    /* code points, not bytes: é is one character (bytes would give 1 - 2/6) */
    CHECK_SCORE("\xc3\xa9 = 1", "e = 1", 0, 0.8, 80);
    /* 100 * 6/48 = 12.5 rounds half to even: 12 (round-half-up would say 13) */
    CHECK_SCORE("abcxxxxxxxxxxxxxxxxxxxxx", "abcyyyyyyyyyyyyyyyyyyyyy", 0, 3.0 / 24.0, 12);
    /* U+2028 and \f are line boundaries */
    CHECK_SCORE("foo(bar)\xe2\x80\xa8" "baz", "foo(bar)\nbaz", 1, 1.0, 100);
    CHECK_SCORE("if a:\x0c" "b", "if a:\nb", 1, 1.0, 100);
    CHECK_SCORE("x = 1\r\ny = 2", "x = 1\ny = 3", 0, 10.0 / 11.0, 91);
    /* invalid UTF-8 from a model becomes U+FFFD */
    size_t n;
    char *c = mc_eval_utf8_clean("a\xff" "b\xe2\x82", 5, &n);
    MC_REQUIRE(c);
    CHECK_EQ_STR(c, "a\xef\xbf\xbd" "b\xef\xbf\xbd\xef\xbf\xbd");
    free(c);
}

static const char *tmp(const char *name) {
    static char buf[4][512];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", mc_test_tmpdir(), name);
    return buf[k];
}

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    MC_REQUIRE(f);
    fputs(text, f);
    fclose(f);
}

MC_TEST(eval_bench_load_and_select) {
    mc_eval_bench b;
    mc_err err;
    MC_REQUIRE(mc_eval_bench_load(mc_test_shared("bench/ci.jsonl"), &b, &err) == 0);
    CHECK_EQ_STR(b.split, "ci");
    CHECK_EQ_INT(b.n, 48);
    /* nltk/6 of the README: a line task in nltk/draw/util.py */
    const mc_eval_task *t = NULL;
    for (int i = 0; i < b.n; i++)
        if (!strcmp(b.tasks[i].id, "mne/4"))
            t = &b.tasks[i];
    MC_REQUIRE(t);
    CHECK_EQ_STR(t->repo, "mne");
    CHECK(strncmp(t->path, "mne/", 4) == 0);
    CHECK(t->n_lines >= 1 && t->line > 0 && t->prompt_len > 0);
    mc_eval_bench_select(&b, 2, 0);
    CHECK_EQ_INT(b.n, 16);
    for (int i = 0; i < b.n; i++) {
        int same = 0;
        for (int j = 0; j < b.n; j++)
            same += !strcmp(b.tasks[i].repo, b.tasks[j].repo);
        CHECK_EQ_INT(same, 2);
    }
    CHECK_EQ_STR(b.tasks[0].id, "mne/0"); /* file order kept */
    mc_eval_bench_select(&b, 0, 5);
    CHECK_EQ_INT(b.n, 5);
    mc_eval_bench_fini(&b);

    /* bad files: the message names the line */
    const char *p = tmp("bad.jsonl");
    write_text(p, "{\"prompt\": \"x\", \"metadata\": {\"task_id\": \"r/0\", \"ground_truth\": \"y\", "
                  "\"fpath_tuple\": [\"r\", \"a.py\"], \"line_no\": 1}}\n"
                  "{\"prompt\": \"x\", \"metadata\": {\"task_id\": \"r/1\"}}\n");
    CHECK_EQ_INT(mc_eval_bench_load(p, &b, &err), MC_EFORMAT);
    CHECK_MSG(strstr(err.msg, "bad.jsonl:2") != NULL, "%s", err.msg);
    write_text(p, "{\"prompt\": \"x\", \"metadata\": {\"task_id\": \"r/0\", \"ground_truth\": \"y\", "
                  "\"fpath_tuple\": [\"r\", \"..\", \"a.py\"], \"line_no\": 1}}\n");
    CHECK_EQ_INT(mc_eval_bench_load(p, &b, &err), MC_EFORMAT);
    write_text(p, "not json\n");
    CHECK_EQ_INT(mc_eval_bench_load(p, &b, &err), MC_EFORMAT);
    CHECK_EQ_INT(mc_eval_bench_load(tmp("missing.jsonl"), &b, &err), MC_ENOTFOUND);
}

/* A made-up record of a cascade-no-routing run. */
static mc_eval_rec mk(const char *task, int path, float conf, const char *pred, int em,
                      double ms_first, double ms_second, int calls, const char *shadow,
                      double ms_shadow, int shadow_calls) {
    mc_eval_rec r;
    memset(&r, 0, sizeof r);
    r.split = strdup("s");
    r.task = strdup(task);
    r.repo = strdup("repo");
    r.hash = 0x0123456789abcdefull;
    r.mode = MC_EVAL_CASCADE_NO_ROUTING;
    r.tau = -1;
    r.path = path;
    r.pred = strdup(pred);
    r.slm = strdup(path == MC_PATH_SLM ? pred : "slm line");
    r.conf = conf;
    r.score.em = em;
    r.score.es = em ? 1.0 : 0.5;
    r.score.fuzz = em ? 100 : 50;
    r.ms_first = ms_first;
    r.ms_second = ms_second;
    r.calls = calls;
    if (shadow) {
        r.shadow = strdup(shadow);
        r.shadow_score.em = 0;
        r.shadow_score.es = 0.25;
    }
    r.ms_shadow = ms_shadow;
    r.shadow_calls = shadow_calls;
    return r;
}

MC_TEST(eval_records_roundtrip_and_resume) {
    const char *p = tmp("rec.jsonl");
    FILE *f = fopen(p, "w");
    MC_REQUIRE(f);
    mc_eval_rec a = mk("t/0", MC_PATH_SLM, 0.75f, "x = \"é\"\n\ty", 1, 12.5, 0, 0, "z", 40, 3);
    mc_eval_rec b = mk("t/1", MC_PATH_REJECTION, 0.125f, "llm", 0, 10, 30, 2, NULL, 0, 0);
    free(b.slm);
    b.slm = NULL;
    b.error = strdup("it broke");
    CHECK_EQ_INT(mc_eval_rec_write(f, &a), 0);
    CHECK_EQ_INT(mc_eval_rec_write(f, &b), 0);
    fputs("{\"split\":\"s\",\"task\":\"t/2\"", f); /* a torn last line */
    fclose(f);
    mc_eval_recs rs;
    mc_err err;
    MC_REQUIRE(mc_eval_recs_load(p, &rs, &err) == 0);
    CHECK_EQ_INT(rs.n, 2);
    const mc_eval_rec *x = mc_eval_recs_find(&rs, "s", "t/0", MC_EVAL_CASCADE_NO_ROUTING);
    MC_REQUIRE(x);
    CHECK_EQ_STR(x->pred, a.pred);
    CHECK_EQ_STR(x->slm, a.slm);
    CHECK_EQ_STR(x->shadow, "z");
    CHECK(x->hash == a.hash);
    CHECK(x->conf == 0.75f);
    CHECK_NEAR(x->ms_first, 12.5, 0);
    CHECK_EQ_INT(x->shadow_calls, 3);
    CHECK_EQ_INT(x->path, MC_PATH_SLM);
    const mc_eval_rec *y = mc_eval_recs_find(&rs, "s", "t/1", MC_EVAL_CASCADE_NO_ROUTING);
    MC_REQUIRE(y);
    CHECK(y->slm == NULL && y->shadow == NULL);
    CHECK_EQ_STR(y->error, "it broke");
    CHECK(mc_eval_recs_find(&rs, "s", "t/1", MC_EVAL_SLM) == NULL);
    CHECK(mc_eval_recs_find(&rs, "s", "t/2", MC_EVAL_CASCADE_NO_ROUTING) == NULL);
    /* many records: the lookup table grows */
    for (int i = 0; i < 1000; i++) {
        char id[32];
        snprintf(id, sizeof id, "u/%d", i);
        mc_eval_rec r = mk(id, MC_PATH_SLM, 0.5f, id, 1, 1, 0, 0, NULL, 0, 0);
        MC_REQUIRE(mc_eval_recs_push(&rs, &r) == 0);
        if (i % 97 == 0)
            CHECK(mc_eval_recs_find(&rs, "s", "u/0", MC_EVAL_CASCADE_NO_ROUTING) != NULL);
    }
    const mc_eval_rec *z = mc_eval_recs_find(&rs, "s", "u/777", MC_EVAL_CASCADE_NO_ROUTING);
    CHECK(z && !strcmp(z->pred, "u/777"));
    mc_eval_recs_fini(&rs);
    /* a corrupt line in the middle is an error, with its line number */
    write_text(p, "{}\n{}\n");
    CHECK_EQ_INT(mc_eval_recs_load(p, &rs, &err), MC_EFORMAT);
    CHECK_MSG(strstr(err.msg, ":1:") != NULL, "%s", err.msg);
    mc_eval_rec_fini(&a);
    mc_eval_rec_fini(&b);
}

/* Latency, the outcome at any tau, the sweep and the calibration, on records
 * whose numbers are chosen by hand. */
MC_TEST(eval_latency_sweep_and_calibration) {
    /* accepted, confident: 10 ms; its shadow escalation took 40 ms, 3 calls, wrong */
    mc_eval_rec r0 = mk("a", MC_PATH_SLM, 0.9f, "ok", 1, 10, 0, 0, "bad", 40, 3);
    /* accepted, unsure (0.3) */
    mc_eval_rec r1 = mk("b", MC_PATH_SLM, 0.3f, "ok", 1, 10, 0, 0, "bad", 50, 1);
    /* rejected (0.2): escalation 60 ms, 2 calls, the LLM is right */
    mc_eval_rec r2 = mk("c", MC_PATH_REJECTION, 0.2f, "llm", 1, 10, 60, 2, NULL, 0, 0);
    /* rejected (0.8), the LLM is wrong too */
    mc_eval_rec r3 = mk("d", MC_PATH_REJECTION, 0.8f, "llm", 0, 20, 80, 1, NULL, 0, 0);
    const mc_eval_rec *cal[4] = {&r0, &r1, &r2, &r3};

    CHECK_NEAR(mc_eval_latency(&r2, 0), 70, 1e-12);
    CHECK_NEAR(mc_eval_latency(&r2, 50), 170, 1e-12);
    CHECK_NEAR(mc_eval_latency(&r0, 50), 10, 1e-12); /* the shadow is off the record */

    mc_eval_outcome o;
    MC_REQUIRE(mc_eval_outcome_at(&r1, 0.5, 10, &o));
    CHECK_EQ_INT(o.path, MC_PATH_CONFIDENCE);
    CHECK_EQ_STR(o.pred, "bad");
    CHECK_EQ_INT(o.score.em, 0);
    CHECK_NEAR(o.latency, 10 + 50 + 10, 1e-12);
    MC_REQUIRE(mc_eval_outcome_at(&r1, 0.3, 10, &o)); /* conf >= tau: as recorded */
    CHECK_EQ_INT(o.path, MC_PATH_SLM);
    MC_REQUIRE(mc_eval_outcome_at(&r2, 0.5, 0, &o));
    CHECK_EQ_INT(o.path, MC_PATH_CONFIDENCE);
    CHECK_NEAR(o.latency, 70, 1e-12);
    CHECK_EQ_INT(o.calls, 2);

    mc_eval_sweep_pt pt;
    MC_REQUIRE(mc_eval_sweep_at(cal, 4, 0.0, 0, 100, &pt) == 0);
    CHECK_EQ_INT(pt.n, 4);
    CHECK_NEAR(pt.em, 0.75, 1e-12);
    CHECK_NEAR(pt.usage, 0.5, 1e-12);
    CHECK_NEAR(pt.lat_mean, (10 + 10 + 70 + 100) / 4.0, 1e-12);
    CHECK_NEAR(pt.time_mean, pt.lat_mean + 100 * 2 / 4.0, 1e-12);
    CHECK_EQ_INT(pt.n_path[MC_PATH_REJECTION], 2);
    /* tau 0.5: b and c escalate by confidence; b loses its EM */
    MC_REQUIRE(mc_eval_sweep_at(cal, 4, 0.5, 0, 100, &pt) == 0);
    CHECK_NEAR(pt.em, 0.5, 1e-12);
    CHECK_NEAR(pt.usage, 0.75, 1e-12);
    CHECK_NEAR(pt.lat_mean, (10 + 60 + 70 + 100) / 4.0, 1e-12);
    CHECK_NEAR(pt.time_mean, pt.lat_mean + 100 * 1 / 4.0, 1e-12);
    CHECK_EQ_INT(pt.n_path[MC_PATH_CONFIDENCE], 2);
    /* p95 of {10, 60, 70, 100}: 70 + 0.85 * 30 (linear interpolation) */
    CHECK_NEAR(pt.lat_p95, 95.5, 1e-9);

    /* calibration: with no reaction cost nothing beats tau 0; with a large one
     * the rejection of c is worth escalating it at once (tau 0.25), as long as
     * the EM may not drop at all (b must stay) */
    double grid[5] = {0, 0.25, 0.5, 0.85, 1};
    CHECK_EQ_INT(mc_eval_choose_tau(cal, 4, grid, 5, 0, 0, 0), 0);
    CHECK_EQ_INT(mc_eval_choose_tau(cal, 4, grid, 5, 0, 1000, 0), 1);
    /* allowing a 25-point drop, escalating everything below 0.85 wins */
    CHECK_EQ_INT(mc_eval_choose_tau(cal, 4, grid, 5, 0, 1000, 0.25), 3);
    CHECK_EQ_INT(mc_eval_choose_tau(cal, 0, grid, 5, 0, 0, 0), MC_EINVAL);

    /* aggregate: path counts, calls, percentiles */
    mc_eval_agg a;
    MC_REQUIRE(mc_eval_aggregate(cal, 4, 10, 100, &a) == 0);
    CHECK_EQ_INT(a.n, 4);
    CHECK_EQ_INT(a.n_path[MC_PATH_SLM], 2);
    CHECK_EQ_INT(a.n_llm, 2);
    CHECK_NEAR(a.calls, 0.75, 1e-12);
    CHECK_NEAR(a.lat_mean, (10 + 10 + 90 + 110) / 4.0, 1e-12);
    CHECK_NEAR(a.lat_p50, 50, 1e-12);
    CHECK_NEAR(a.react_mean, 50, 1e-12);
    CHECK_NEAR(a.em, 0.75, 1e-12);
    for (int i = 0; i < 4; i++)
        mc_eval_rec_fini((mc_eval_rec *)cal[i]);
}

/* ---- the simulated user on real models, with a fake clock ----------------- */

typedef struct fake_clock {
    double t;
    int reads;
} fake_clock;

static double fake_now(void *ud) {
    fake_clock *c = ud;
    c->reads++;
    c->t += 1.0; /* every reading is one millisecond later */
    return c->t;
}

typedef struct user_world {
    mc_model *slm, *llm;
    mc_tok *tok;
    mc_eval_runner *r;
    fake_clock clock;
} user_world;

static void user_open(user_world *w, double tau) {
    memset(w, 0, sizeof *w);
    mc_err err;
    MC_REQUIRE(mc_model_load("models/stories260K.gguf", &w->slm, &err) == 0);
    MC_REQUIRE(mc_tok_load_gguf(mc_model_gguf(w->slm), &w->tok, &err) == 0);
    const char *q8 = tmp("llm-q8.gguf");
    MC_REQUIRE(mc_quantize_file("models/stories260K.gguf", q8, MC_TYPE_Q8_0, NULL, NULL, &err) == 0);
    MC_REQUIRE(mc_model_load(q8, &w->llm, &err) == 0);
    mc_eval_setup s;
    memset(&s, 0, sizeof s);
    s.slm = w->slm;
    s.tok = w->tok;
    s.llm_model = w->llm;
    s.slm_ctx = mc_ctx_params_default();
    s.slm_ctx.n_threads = 1;
    s.llm_ctx = s.slm_ctx;
    s.params = mc_cascade_params_default();
    s.params.llm_budget_ms = 0; /* as mccom eval: answers must not depend on the load */
    s.params.tau = (float)tau;
    s.clock.now_ms = fake_now;
    s.clock.ud = &w->clock;
    MC_REQUIRE(mc_eval_runner_new(&s, &w->r, &err) == 0);
}

static void user_close(user_world *w) {
    mc_eval_runner_free(w->r);
    mc_model_free(w->llm);
    mc_model_free(w->slm);
    mc_tok_free(w->tok);
}

static mc_eval_task story_task(const char *truth) {
    mc_eval_task t;
    memset(&t, 0, sizeof t);
    t.id = (char *)"story/0";
    t.repo = (char *)"story";
    t.path = (char *)"tale.py";
    t.prompt = (char *)"Once upon a time, there was a little girl named Lily.\n"
                       "She loved to play outside in the park.";
    t.prompt_len = strlen(t.prompt);
    t.truth = (char *)truth;
    t.line = 2;
    t.n_lines = 1;
    return t;
}

MC_TEST(eval_simulated_user_paths_and_clock) {
    user_world w;
    user_open(&w, 0.0);
    mc_err err;
    mc_eval_rec slm, acc, rej, calib, calib_rej;
    /* the small model's line for the document */
    mc_eval_task t = story_task("nothing like it");
    MC_REQUIRE(mc_eval_run(w.r, "s", &t, MC_EVAL_SLM, &slm, &err) == 0);
    CHECK_EQ_INT(w.clock.reads, 2);
    CHECK_NEAR(slm.ms_first, 1, 0);
    char *norm;
    MC_REQUIRE(mc_eval_normalize(slm.pred, strlen(slm.pred), -1, &norm, NULL, NULL) == 0);
    MC_REQUIRE(norm[0] != '\0'); /* the model has something to say here */

    /* the ground truth is its line: accepted, no LLM call */
    t = story_task(slm.pred);
    MC_REQUIRE(mc_eval_run(w.r, "s", &t, MC_EVAL_CASCADE, &acc, &err) == 0);
    CHECK_EQ_INT(acc.path, MC_PATH_SLM);
    CHECK_EQ_INT(acc.calls, 0);
    CHECK_EQ_INT(acc.score.em, 1);
    CHECK_EQ_STR(acc.pred, slm.pred);
    CHECK_EQ_STR(acc.slm, slm.pred);
    CHECK(acc.shadow == NULL);
    CHECK_NEAR(acc.ms_first, 1, 0);
    CHECK_NEAR(acc.ms_second, 0, 0);
    CHECK_NEAR(mc_eval_latency(&acc, 50), 1, 0);

    /* a different ground truth: rejected, escalated, the LLM's line is final */
    t = story_task("nothing like it");
    int reads = w.clock.reads;
    MC_REQUIRE(mc_eval_run(w.r, "s", &t, MC_EVAL_CASCADE, &rej, &err) == 0);
    CHECK_EQ_INT(w.clock.reads - reads, 4); /* request, then escalation: two readings each */
    CHECK_EQ_INT(rej.path, MC_PATH_REJECTION);
    CHECK(rej.calls >= 1);
    CHECK(!rej.llm_failed);
    CHECK_EQ_STR(rej.slm, slm.pred);
    CHECK_NEAR(rej.ms_first, 1, 0);
    CHECK_NEAR(rej.ms_second, 1, 0);
    /* model + network time only: the reaction never enters */
    CHECK_NEAR(mc_eval_latency(&rej, 50), 2 + 50.0 * rej.calls, 0);

    /* the calibration run escalates an accepted line off the record */
    t = story_task(slm.pred);
    MC_REQUIRE(mc_eval_run(w.r, "s", &t, MC_EVAL_CASCADE_NO_ROUTING, &calib, &err) == 0);
    CHECK_EQ_INT(calib.path, MC_PATH_SLM);
    CHECK_EQ_INT(calib.calls, 0);
    MC_REQUIRE(calib.shadow != NULL);
    CHECK(calib.shadow_calls >= 1);
    CHECK_NEAR(calib.ms_shadow, 1, 0);
    CHECK_NEAR(mc_eval_latency(&calib, 50), 1, 0);
    CHECK(calib.tau < 0);
    /* ... and the shadow is what a rejection would have shown */
    t = story_task("nothing like it");
    MC_REQUIRE(mc_eval_run(w.r, "s", &t, MC_EVAL_CASCADE_NO_ROUTING, &calib_rej, &err) == 0);
    CHECK_EQ_STR(calib.shadow, calib_rej.pred);
    CHECK_EQ_STR(calib.shadow, rej.pred);

    /* tau above the confidence: escalated at once, even for a right line */
    MC_REQUIRE(mc_eval_runner_set_tau(w.r, 1.0, &err) == 0);
    mc_eval_rec conf;
    t = story_task(slm.pred);
    reads = w.clock.reads;
    MC_REQUIRE(mc_eval_run(w.r, "s", &t, MC_EVAL_CASCADE, &conf, &err) == 0);
    MC_REQUIRE(conf.conf < 1.0f);
    CHECK_EQ_INT(conf.path, MC_PATH_CONFIDENCE);
    CHECK_EQ_INT(w.clock.reads - reads, 2); /* one request: the user never saw the SLM's line */
    CHECK(conf.calls >= 1);
    CHECK_EQ_STR(conf.pred, rej.pred);
    CHECK_NEAR(conf.tau, 1.0, 0);
    /* the sweep derives the same from the calibration record */
    mc_eval_outcome o;
    MC_REQUIRE(mc_eval_outcome_at(&calib, 1.0, 0, &o));
    CHECK_EQ_INT(o.path, MC_PATH_CONFIDENCE);
    CHECK_EQ_STR(o.pred, conf.pred);

    /* the LLM-only baselines: one call, two for RepoCoder's iteration */
    mc_eval_rec l0, l2;
    MC_REQUIRE(mc_eval_run(w.r, "s", &t, MC_EVAL_LLM, &l0, &err) == 0);
    MC_REQUIRE(mc_eval_run(w.r, "s", &t, MC_EVAL_LLM_ITER, &l2, &err) == 0);
    CHECK_EQ_INT(l0.path, MC_PATH_LLM);
    CHECK_EQ_INT(l0.calls, 1);
    CHECK_EQ_INT(l2.calls, 2);
    CHECK(l0.slm == NULL && l0.conf < 0);
    mc_eval_rec *all[] = {&slm, &acc, &rej, &calib, &calib_rej, &conf, &l0, &l2};
    for (size_t i = 0; i < MC_ARRAY_LEN(all); i++)
        mc_eval_rec_fini(all[i]);
    free(norm);
    user_close(&w);
}

/* Without a large model the cascade is the small model: rejected lines stand. */
MC_TEST(eval_simulated_user_without_llm) {
    mc_err err;
    mc_model *m;
    mc_tok *tok;
    mc_eval_runner *r;
    MC_REQUIRE(mc_model_load("models/stories260K.gguf", &m, &err) == 0);
    MC_REQUIRE(mc_tok_load_gguf(mc_model_gguf(m), &tok, &err) == 0);
    mc_eval_setup s;
    memset(&s, 0, sizeof s);
    s.slm = m;
    s.tok = tok;
    s.slm_ctx = mc_ctx_params_default();
    s.params = mc_cascade_params_default();
    s.params.llm_budget_ms = 0; /* as mccom eval: answers must not depend on the load */
    MC_REQUIRE(mc_eval_runner_new(&s, &r, &err) == 0);
    mc_eval_task t = story_task("nothing like it");
    mc_eval_rec a, b;
    MC_REQUIRE(mc_eval_run(r, "s", &t, MC_EVAL_SLM, &a, &err) == 0);
    MC_REQUIRE(mc_eval_run(r, "s", &t, MC_EVAL_CASCADE, &b, &err) == 0);
    CHECK_EQ_STR(b.pred, a.pred);
    CHECK_EQ_INT(b.calls, 0);
    CHECK(b.llm_failed);
    mc_eval_rec_fini(&b);
    CHECK_EQ_INT(mc_eval_run(r, "s", &t, MC_EVAL_LLM_RAG, &b, &err), MC_EINVAL);
    mc_eval_rec_fini(&a);
    mc_eval_runner_free(r);
    mc_tok_free(tok);
    mc_model_free(m);
}

/* ---- the benchmark's repositories ------------------------------------------ */

static const char *bench_repos(void) {
    const char *r = getenv("MC_BENCH_REPOS");
    return r && *r ? r : "build/bench-repos";
}

static void require_repos(void) {
    static const char *const names[] = {"mne", "dask", "nltk", "optuna", "biopython",
                                        "sqlalchemy", "sphinx", "breezy"};
    for (size_t i = 0; i < MC_ARRAY_LEN(names); i++) {
        char p[1024];
        struct stat st;
        snprintf(p, sizeof p, "%s/%s", bench_repos(), names[i]);
        if (stat(p, &st) != 0) {
            mc_test_fail_at(__FILE__, __LINE__,
                            "benchmark repository %s is missing: `make bench-repos` (run by make "
                            "test) fetches them, or set MC_BENCH_REPOS",
                            p);
            mc_test_abort();
        }
    }
}

/* Retrieval never shows a task its own target or anything after it: for every
 * ci task, the query most likely to find the target (its own lines) returns
 * no window of the task's file that reaches the target line, while without
 * the file named it does find them (so the filter is what keeps them out, and
 * the paths the harness passes are the index's). */
MC_TEST_T(eval_retrieval_leakage_filter, 300) {
    require_repos();
    mc_eval_bench b;
    mc_err err;
    MC_REQUIRE(mc_eval_bench_load(mc_test_shared("bench/ci.jsonl"), &b, &err) == 0);
    mc_retr_index *ix = NULL;
    const char *ix_repo = NULL;
    int would_leak = 0;
    for (int i = 0; i < b.n; i++) {
        const mc_eval_task *t = &b.tasks[i];
        if (!ix_repo || strcmp(ix_repo, t->repo)) {
            mc_retr_free(ix);
            char root[1024];
            snprintf(root, sizeof root, "%s/%s", bench_repos(), t->repo);
            MC_REQUIRE(mc_retr_new(&ix, root, NULL, NULL, &err) == 0);
            MC_REQUIRE(mc_retr_sync(ix, NULL, &err) == 0);
            ix_repo = t->repo;
        }
        /* the path and line are the index's: the target is there */
        mc_str w;
        size_t first = strcspn(t->truth, "\n");
        MC_REQUIRE(mc_retr_window_text(ix, t->path, t->line, 1, &w) == 0);
        CHECK_MSG(w.len == first && !memcmp(w.ptr, t->truth, first), "%s: line %d of %s", t->id,
                  t->line, t->path);
        mc_retr_query q = mc_retr_query_default();
        q.text = t->truth;
        q.len = strlen(t->truth);
        q.k = 50;
        mc_retr_hit hits[50];
        int n = mc_retr_search(ix, &q, hits, 50, &err);
        MC_REQUIRE(n >= 0);
        for (int h = 0; h < n; h++)
            if (!strcmp(hits[h].file, t->path) && hits[h].start_line + hits[h].n_lines > t->line) {
                would_leak++;
                break;
            }
        q.file = t->path;
        q.cursor_line = t->line;
        n = mc_retr_search(ix, &q, hits, 50, &err);
        MC_REQUIRE(n >= 0);
        for (int h = 0; h < n; h++)
            CHECK_MSG(strcmp(hits[h].file, t->path) || hits[h].start_line + hits[h].n_lines <= t->line,
                      "%s: window %s:%d+%d reaches the target line %d", t->id, hits[h].file,
                      hits[h].start_line, hits[h].n_lines, t->line);
    }
    CHECK_MSG(would_leak >= b.n / 2, "only %d of %d tasks find their own target unfiltered",
              would_leak, b.n);
    mc_retr_free(ix);
    mc_eval_bench_fini(&b);
}

/* ---- mccom eval end to end ------------------------------------------------- */

static int run_cmd(const char *cmd, char *out, size_t cap) {
    FILE *p = popen(cmd, "r");
    MC_REQUIRE(p);
    size_t n = 0, r;
    while (n + 1 < cap && (r = fread(out + n, 1, cap - 1 - n, p)) > 0)
        n += r;
    out[n] = '\0';
    char sink[4096];
    while (fread(sink, 1, sizeof sink, p) > 0) {
    }
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static bool file_starts_with(const char *path, const char *magic, size_t n) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return false;
    char buf[16] = {0};
    size_t r = fread(buf, 1, n, f);
    fclose(f);
    return r == n && memcmp(buf, magic, n) == 0;
}

static char *slurp(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    if (b && fread(b, 1, (size_t)n, f) != (size_t)n) {
        free(b);
        b = NULL;
    }
    if (b)
        b[n] = '\0';
    fclose(f);
    return b;
}

/* ci.jsonl with the ground truth of every other one-line task replaced by the
 * small model's line (from `slm` records), so that the simulated user accepts
 * some lines: any file in RepoEval's format is a benchmark. */
static int derive_bench(const char *src, const char *dst, mc_eval_recs *slm) {
    FILE *in = fopen(src, "r"), *out = fopen(dst, "w");
    MC_REQUIRE(in && out);
    char *line = NULL;
    size_t cap = 0;
    int k = 0, replaced = 0;
    while (getline(&line, &cap, in) > 0) {
        json_t *o = json_loads(line, 0, NULL);
        MC_REQUIRE(o);
        json_t *md = json_object_get(o, "metadata");
        const char *id = json_string_value(json_object_get(md, "task_id"));
        const char *gt = json_string_value(json_object_get(md, "ground_truth"));
        const mc_eval_rec *r = mc_eval_recs_find(slm, "ci", id, MC_EVAL_SLM);
        MC_REQUIRE(r);
        char *norm;
        int nl = 0;
        MC_REQUIRE(mc_eval_normalize(r->pred, strlen(r->pred), -1, &norm, NULL, &nl) == 0);
        if (!strchr(gt, '\n') && nl == 1 && !strchr(r->pred, '\n') && k++ % 2 == 0) {
            json_object_set_new(md, "ground_truth", json_string(r->pred));
            replaced++;
        }
        free(norm);
        char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
        fprintf(out, "%s\n", s);
        free(s);
        json_decref(o);
    }
    free(line);
    fclose(in);
    fclose(out);
    return replaced;
}

static mc_eval_task *find_task(mc_eval_bench *b, const char *id) {
    for (int i = 0; i < b->n; i++)
        if (!strcmp(b->tasks[i].id, id))
            return &b->tasks[i];
    return NULL;
}

MC_TEST_T(eval_cli_end_to_end_ci, 600) {
    require_repos();
    mc_err err;
    static char out[1 << 16];
    char cmd[4096];
    char llm[512]; /* tmp()'s buffers are reused */
    snprintf(llm, sizeof llm, "%s", tmp("llm-q8.gguf"));
    MC_REQUIRE(mc_quantize_file("models/stories260K.gguf", llm, MC_TYPE_Q8_0, NULL, NULL, &err) == 0);
    const char *common = "--ctx 512 --prompt-tokens 192 -t 1 -q";

    /* 1. the small model's lines, to derive a benchmark with accepted lines */
    snprintf(cmd, sizeof cmd, "%s eval --bench %s --repos %s --slm models/stories260K.gguf "
             "--modes slm --out %s %s 2>&1", mc_test_bin(), mc_test_shared("bench/ci.jsonl"),
             bench_repos(), tmp("slm"), common);
    CHECK_EQ_INT(run_cmd(cmd, out, sizeof out), 0);
    mc_eval_recs slm;
    char rp[1024];
    snprintf(rp, sizeof rp, "%s/records.jsonl", tmp("slm"));
    MC_REQUIRE(mc_eval_recs_load(rp, &slm, &err) == 0);
    MC_REQUIRE(slm.n == 48);
    MC_REQUIRE(mkdir(tmp("b"), 0755) == 0);
    char bench[1024];
    snprintf(bench, sizeof bench, "%s/ci.jsonl", tmp("b"));
    int replaced = derive_bench(mc_test_shared("bench/ci.jsonl"), bench, &slm);
    MC_REQUIRE(replaced >= 5);
    mc_eval_recs_fini(&slm);

    /* 2. every mode */
    char run_a[2048];
    snprintf(run_a, sizeof run_a, "%s eval --bench %s --repos %s --slm models/stories260K.gguf "
             "--llm %s --tau 0.05 --rtt-ms 5 --reaction-ms 300 --tau-copy 2 --copy-theta 1e9 "
             "--out %s --report %s %s 2>&1",
             mc_test_bin(), bench, bench_repos(), llm, tmp("all"), tmp("rep/eval.md"), common);
    MC_REQUIRE(mkdir(tmp("rep"), 0755) == 0);
    int rc = run_cmd(run_a, out, sizeof out);
    CHECK_MSG(rc == 0, "mccom eval failed (%d): %s", rc, out);
    mc_eval_recs rs;
    snprintf(rp, sizeof rp, "%s/records.jsonl", tmp("all"));
    MC_REQUIRE(mc_eval_recs_load(rp, &rs, &err) == 0);
    CHECK_EQ_INT(rs.n, 48 * MC_EVAL_N_MODES);
    mc_eval_bench b;
    MC_REQUIRE(mc_eval_bench_load(bench, &b, &err) == 0);

    /* the copy tier runs (its modes, its candidates as drafts) but never shows a line in the
     * cascade modes here (--tau-copy 2 --copy-theta 1e9): the user sees the small model's
     * lines, as the derived tasks need; copy_tier_end_to_end checks the tier's own paths */
    int n_path[MC_EVAL_N_MODES][MC_CASCADE_N_PATHS] = {{0}}, n_calls[MC_EVAL_N_MODES] = {0};
    int spec_same = 0, slm_same = 0, noiter_same = 0, noiter_esc = 0, sweep_same = 0;
    for (int i = 0; i < rs.n; i++) {
        const mc_eval_rec *r = &rs.r[i];
        const mc_eval_task *t = find_task(&b, r->task);
        MC_REQUIRE(t);
        CHECK(r->hash == t->hash);
        CHECK_MSG(!r->error && !r->llm_failed, "%s %s: %s", r->task, mc_eval_mode_name(r->mode),
                  r->error ? r->error : "llm failed");
        /* the recorded score is the prediction's */
        mc_eval_score s = score(t->truth, r->pred);
        CHECK(s.em == r->score.em && s.fuzz == r->score.fuzz && fabs(s.es - r->score.es) < 1e-9);
        /* each (task, mode) once */
        CHECK(mc_eval_recs_find(&rs, "ci", r->task, r->mode) == r);
        n_path[r->mode][r->path]++;
        n_calls[r->mode] += r->calls > 0;
        if (!mc_eval_mode_cascade(r->mode))
            continue;
        const mc_eval_rec *sl = mc_eval_recs_find(&rs, "ci", r->task, MC_EVAL_SLM);
        MC_REQUIRE(sl);
        slm_same += r->slm && !strcmp(r->slm, sl->pred);
        /* accepted iff the small model's line is right */
        CHECK((r->path == MC_PATH_SLM) == (score(t->truth, r->slm).em == 1 && r->path != MC_PATH_CONFIDENCE));
        if (r->mode == MC_EVAL_CASCADE) {
            const mc_eval_rec *ns = mc_eval_recs_find(&rs, "ci", r->task, MC_EVAL_CASCADE_NO_SPEC);
            MC_REQUIRE(ns);
            spec_same += !strcmp(ns->pred, r->pred) && ns->path == r->path;
            const mc_eval_rec *nr = mc_eval_recs_find(&rs, "ci", r->task, MC_EVAL_CASCADE_NO_ROUTING);
            mc_eval_outcome o;
            MC_REQUIRE(nr && mc_eval_outcome_at(nr, r->tau, 0, &o));
            sweep_same += o.path == r->path && !strcmp(o.pred, r->pred);
        }
        if (r->mode == MC_EVAL_CASCADE_NO_ROUTING && r->path == MC_PATH_SLM)
            CHECK(r->shadow != NULL && r->shadow_calls >= 1);
        if (r->mode == MC_EVAL_CASCADE_NO_ITER && r->path != MC_PATH_SLM) {
            const mc_eval_rec *rag = mc_eval_recs_find(&rs, "ci", r->task, MC_EVAL_LLM_RAG);
            MC_REQUIRE(rag);
            noiter_esc++;
            noiter_same += !strcmp(rag->pred, r->pred);
        }
    }
    CHECK_EQ_INT(slm_same, 48 * (MC_EVAL_N_MODES - MC_EVAL_CASCADE));
    CHECK_EQ_INT(spec_same, 48);
    CHECK_EQ_INT(sweep_same, 48);
    CHECK_EQ_INT(noiter_same, noiter_esc);
    for (int m = MC_EVAL_CASCADE; m < MC_EVAL_N_MODES; m++) {
        /* per-path counts sum to the total; LLM call rate = 1 - accepted share */
        CHECK_EQ_INT(n_path[m][0] + n_path[m][1] + n_path[m][2], 48);
        CHECK_EQ_INT(n_path[m][MC_PATH_COPY], 0);
        CHECK_EQ_INT(n_calls[m], 48 - n_path[m][MC_PATH_SLM]);
    }
    /* the derived tasks were accepted where the router let the user see them */
    CHECK(n_path[MC_EVAL_CASCADE_NO_ROUTING][MC_PATH_SLM] >= replaced);
    CHECK_EQ_INT(n_path[MC_EVAL_CASCADE_NO_ROUTING][MC_PATH_CONFIDENCE], 0);
    CHECK_EQ_INT(n_path[MC_EVAL_SLM][MC_PATH_SLM], 48);
    CHECK_EQ_INT(n_calls[MC_EVAL_LLM_ITER], 48);

    /* the report: sections, plots, no failed check */
    char *md = slurp(tmp("rep/eval.md"));
    MC_REQUIRE(md);
    static const char *const sections[] = {
        "## Headline: the paper's claims beside ours", "## Results by split", "## By repository",
        "## Cascade paths", "## Speculative decoding", "## The large model inside the cascade vs alone",
        "## Threshold calibration and sweep", "## Consistency checks", "−47.9%", "−46.3%", "+8.9%",
        "73.8%", "| `cascade-no-iter` |", "](eval/latency-em.png)", "](eval/tau-sweep.png)"};
    for (size_t i = 0; i < MC_ARRAY_LEN(sections); i++)
        CHECK_MSG(strstr(md, sections[i]) != NULL, "report lacks \"%s\"", sections[i]);
    CHECK_MSG(strstr(md, "FAILED") == NULL, "a consistency check failed:\n%s", strstr(md, "FAILED"));
    CHECK(file_starts_with(tmp("rep/eval/latency-em.png"), "\x89PNG", 4));
    CHECK(file_starts_with(tmp("rep/eval/tau-sweep.png"), "\x89PNG", 4));

    /* the copy modes ran no model beyond the small one and never called the LLM */
    CHECK_EQ_INT(n_path[MC_EVAL_COPY][MC_PATH_COPY], 48);
    CHECK_EQ_INT(n_calls[MC_EVAL_COPY] + n_calls[MC_EVAL_SLM_COPY], 0);

    /* 3. resume: nothing left to run, nothing added; a torn line is repaired */
    FILE *f = fopen(rp, "a");
    MC_REQUIRE(f);
    fputs("{\"split\":\"ci\",\"ta", f);
    fclose(f);
    rc = run_cmd(run_a, out, sizeof out);
    CHECK_MSG(rc == 0, "resumed run failed (%d): %s", rc, out);
    mc_eval_recs again;
    MC_REQUIRE(mc_eval_recs_load(rp, &again, &err) == 0);
    CHECK_EQ_INT(again.n, rs.n);
    mc_eval_recs_fini(&again);
    /* the report from the records alone is the same report */
    char *md2 = NULL;
    snprintf(cmd, sizeof cmd, "%s eval --bench %s --report-only --out %s --report %s --tau 0.05 "
             "--rtt-ms 5 --reaction-ms 300 2>&1", mc_test_bin(), bench, tmp("all"), tmp("rep/again.md"));
    CHECK_EQ_INT(run_cmd(cmd, out, sizeof out), 0);
    md2 = slurp(tmp("rep/again.md"));
    MC_REQUIRE(md2);
    for (char *a = strstr(md2, "](again/"); a; a = strstr(a, "](again/")) {
        memcpy(a, "](eval/", 7); /* the plots' directory is named after the report */
        memmove(a + 7, a + 8, strlen(a + 8) + 1);
    }
    char *x = strstr(md, "## Headline"), *y = strstr(md2, "## Headline");
    MC_REQUIRE(x && y);
    CHECK_MSG(strcmp(x, y) == 0, "the redrawn report differs");
    free(md2);
    free(md);

    /* 4. another setting on the same records is refused */
    snprintf(cmd, sizeof cmd, "%s eval --bench %s --repos %s --slm models/stories260K.gguf "
             "--llm %s --tau 0.5 --out %s %s 2>&1", mc_test_bin(), bench, bench_repos(), llm,
             tmp("all"), common);
    CHECK_EQ_INT(run_cmd(cmd, out, sizeof out), 1);
    CHECK_MSG(strstr(out, "other settings") != NULL, "%s", out);

    /* 5. no large model: the cascade is the small model */
    snprintf(cmd, sizeof cmd, "%s eval --bench %s --repos %s --slm models/stories260K.gguf "
             "--modes slm,cascade --no-copy --tau 0.05 --out %s %s 2>&1", mc_test_bin(), bench, bench_repos(),
             tmp("nollm"), common);
    CHECK_EQ_INT(run_cmd(cmd, out, sizeof out), 0);
    mc_eval_recs nl;
    snprintf(rp, sizeof rp, "%s/records.jsonl", tmp("nollm"));
    MC_REQUIRE(mc_eval_recs_load(rp, &nl, &err) == 0);
    CHECK_EQ_INT(nl.n, 96);
    int same = 0;
    for (int i = 0; i < nl.n; i++) {
        const mc_eval_rec *r = &nl.r[i];
        if (r->mode != MC_EVAL_CASCADE)
            continue;
        const mc_eval_rec *s0 = mc_eval_recs_find(&nl, "ci", r->task, MC_EVAL_SLM);
        same += s0 && !strcmp(s0->pred, r->pred) && r->calls == 0;
    }
    CHECK_EQ_INT(same, 48);
    mc_eval_recs_fini(&nl);

    /* 6. bad input gets a message, not a crash */
    snprintf(cmd, sizeof cmd, "%s eval --bench /nonexistent.jsonl --slm models/stories260K.gguf "
             "--out %s 2>&1", mc_test_bin(), tmp("bad"));
    CHECK_EQ_INT(run_cmd(cmd, out, sizeof out), 1);
    CHECK(strstr(out, "cannot open benchmark") != NULL);
    snprintf(cmd, sizeof cmd, "%s eval --bench %s --slm models/stories260K.gguf --modes slm,bogus "
             "--out %s 2>&1", mc_test_bin(), bench, tmp("bad"));
    CHECK_EQ_INT(run_cmd(cmd, out, sizeof out), 2);
    snprintf(cmd, sizeof cmd, "%s eval --bench %s --slm models/stories260K.gguf --modes llm "
             "--out %s 2>&1", mc_test_bin(), bench, tmp("bad"));
    CHECK_EQ_INT(run_cmd(cmd, out, sizeof out), 2);
    snprintf(cmd, sizeof cmd, "%s eval --bench %s --repos %s --slm models/stories260K.gguf "
             "--modes slm --out %s 2>&1", mc_test_bin(), bench, tmp("nowhere"), tmp("bad2"));
    CHECK_EQ_INT(run_cmd(cmd, out, sizeof out), 1);
    CHECK_MSG(strstr(out, "is missing") != NULL, "%s", out);
    mc_eval_recs_fini(&rs);
    mc_eval_bench_fini(&b);
}

/* The copy tier end to end on the real ci tasks: `copy` runs no model, `slm+copy`
 * shows the copy line wherever there is one (the default pick rule) and is
 * never worse than `copy`, the cascade shows precise copy lines at once without
 * a model or an LLM call, `cascade-no-copy` has no trace of the tier, and the
 * report's checks hold. */
MC_TEST_T(eval_copy_tier_end_to_end, 600) {
    require_repos();
    mc_err err;
    static char out[1 << 16];
    char cmd[4096], llm[512];
    snprintf(llm, sizeof llm, "%s", tmp("llm-q8.gguf"));
    MC_REQUIRE(mc_quantize_file("models/stories260K.gguf", llm, MC_TYPE_Q8_0, NULL, NULL, &err) == 0);
    MC_REQUIRE(mkdir(tmp("rep"), 0755) == 0);
    snprintf(cmd, sizeof cmd, "%s eval --bench %s --repos %s --slm models/stories260K.gguf --llm %s "
             "--modes copy,slm+copy,slm,cascade,cascade-no-copy --tau 0.05 --out %s --report %s "
             "--ctx 512 --prompt-tokens 192 -t 1 -q 2>&1",
             mc_test_bin(), mc_test_shared("bench/ci.jsonl"), bench_repos(), llm, tmp("copy"),
             tmp("rep/copy.md"));
    int rc = run_cmd(cmd, out, sizeof out);
    CHECK_MSG(rc == 0, "mccom eval failed (%d): %s", rc, out);
    mc_eval_recs rs;
    char rp[1024];
    snprintf(rp, sizeof rp, "%s/records.jsonl", tmp("copy"));
    MC_REQUIRE(mc_eval_recs_load(rp, &rs, &err) == 0);
    CHECK_EQ_INT(rs.n, 48 * 5);
    mc_eval_bench b;
    MC_REQUIRE(mc_eval_bench_load(mc_test_shared("bench/ci.jsonl"), &b, &err) == 0);
    int em_copy = 0, em_slm_copy = 0, n_prop = 0, n_copy_path = 0;
    for (int i = 0; i < rs.n; i++) {
        const mc_eval_rec *r = &rs.r[i];
        const mc_eval_task *t = find_task(&b, r->task);
        MC_REQUIRE(t);
        CHECK_MSG(!r->error, "%s %s: %s", r->task, mc_eval_mode_name(r->mode), r->error);
        const mc_eval_rec *cp = mc_eval_recs_find(&rs, "ci", r->task, MC_EVAL_COPY);
        const mc_eval_rec *sl = mc_eval_recs_find(&rs, "ci", r->task, MC_EVAL_SLM);
        MC_REQUIRE(cp && sl);
        switch (r->mode) {
        case MC_EVAL_COPY:
            CHECK_EQ_INT(r->path, MC_PATH_COPY);
            CHECK_EQ_INT(r->calls, 0);
            CHECK(r->slm == NULL);
            CHECK_EQ_STR(r->pred, r->copy ? r->copy : "");
            CHECK((r->copy != NULL) == (r->copy_p > 0));
            em_copy += r->score.em;
            n_prop += r->copy != NULL;
            break;
        case MC_EVAL_SLM_COPY:
            CHECK_EQ_INT(r->calls, 0);
            /* the copy line wherever the tier has one, else the small model's */
            CHECK_EQ_STR(r->pred, cp->copy ? cp->copy : sl->pred);
            CHECK((r->path == MC_PATH_COPY) == (cp->copy_p >= 0.5f));
            em_slm_copy += r->score.em;
            break;
        case MC_EVAL_CASCADE:
            if (r->path == MC_PATH_COPY) { /* shown at once and accepted: no model at all */
                n_copy_path++;
                CHECK_EQ_INT(r->calls, 0);
                CHECK(r->slm == NULL && r->copy_p >= 0.5f);
                CHECK_EQ_INT(r->score.em, 1);
            }
            CHECK(r->copy_p <= 0 || r->path != MC_PATH_CONFIDENCE); /* copy lines: not routed */
            if (r->copy_p > 0 && r->path == MC_PATH_REJECTION)
                CHECK_EQ_INT(score(t->truth, r->copy).em, 0); /* only a wrong line is rejected */
            break;
        case MC_EVAL_CASCADE_NO_COPY:
            CHECK(r->copy == NULL && r->copy_p <= 0 && r->path != MC_PATH_COPY);
            break;
        default:
            break;
        }
    }
    CHECK(n_prop > 0);
    CHECK(em_copy > 0); /* the tier is right somewhere even on 48 tasks */
    CHECK_MSG(em_slm_copy >= em_copy, "slm+copy %d < copy %d", em_slm_copy, em_copy);
    char *md = slurp(tmp("rep/copy.md"));
    MC_REQUIRE(md);
    CHECK(strstr(md, "## The copy tier") != NULL);
    CHECK(strstr(md, "| τ_copy |") != NULL);
    CHECK(strstr(md, "**Pick rule**") != NULL);
    CHECK_MSG(strstr(md, "FAILED") == NULL, "a consistency check failed:\n%s", strstr(md, "FAILED"));
    free(md);
    (void)n_copy_path;
    mc_eval_recs_fini(&rs);
    mc_eval_bench_fini(&b);
}
