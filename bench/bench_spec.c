/* bench/bench_spec.c — what speculative decoding buys, and what each cascade
 * path costs end to end (markdown tables on stdout).
 *
 * 1. Verification vs plain decoding, the large model in process: a real
 *    Python file (default /usr/lib/python3.11/json/decoder.py, $MC_BENCH_FILE)
 *    is the prompt, cached; then one verification call with a draft of k
 *    tokens (4, 8, 16) built from the model's own greedy continuation with
 *    the token at position a replaced, so that exactly a tokens are accepted
 *    (a = 0, k/4, k/2, 3k/4, k) and the call returns a + 1 tokens. Against it,
 *    the same model decoding one token per forward pass from the same cache.
 *    tokens/s = tokens returned / time; the ratio is the speed-up of the
 *    large model's tokens. Medians of MC_BENCH_REPS (7) calls.
 * 2. End to end, both processes on this machine: `mccom serve` (the binary
 *    $MC_BIN or build/release/mccom) runs the large model; the cascade runs
 *    the small model in this process with the remote client and a retrieval
 *    index of the file's directory. At MC_BENCH_TARGETS (16) lines of the file
 *    (cursor at the line's start, the lines above as context), each path is
 *    timed: the small model alone (the suggestion shown), an escalation after
 *    a rejection (with and without speculative decoding), and the large model
 *    alone with one retrieval round (RepoCoder's vanilla, MCCom's baseline).
 *    Median and p95 of milliseconds per request, network round trip on
 *    loopback included.
 *
 * Models: models/mccom-cpu-small-q8_0.gguf and models/mccom-cpu-large-q8_0.gguf
 * ($MC_BENCH_SLM, $MC_BENCH_LLM); without them it says so and exits 0.
 * Threads: MC_BENCH_THREADS (1) for each model.
 */
#include "mccom/cascade.h"
#include "mccom/gen.h"
#include "mccom/remote.h"
#include "bench_util.h"

#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>


static void die(const char *what, const mc_err *e) {
    fprintf(stderr, "bench_spec: %s: %s\n", what, e ? e->msg : "failed");
    exit(1);
}

static int env_int(const char *name, int dflt) {
    const char *v = getenv(name);
    return v && *v ? atoi(v) : dflt;
}

/* ---- 1. verification vs plain decoding ------------------------------------ */

/* tok NULL: a model without a vocabulary (random weights); the prompt is then
 * 1024 pseudo-random ids. */
static void verify_table(mc_model *m, const char *name, const mc_tok *tok, const char *text,
                         int threads, int reps) {
    mc_err err;
    mc_ctx_params cp = mc_ctx_params_default();
    cp.n_threads = threads;
    cp.n_ctx = 2048;
    mc_ctx *c;
    if (mc_ctx_new(m, &cp, &c, &err) != 0)
        die("context", &err);
    int64_t n = 0;
    static int32_t prompt[4096];
    const int n_vocab = mc_model_hparams(m)->n_vocab;
    if (tok) {
        int rc = mc_tok_encode(tok, text, strlen(text), MC_TOK_ADD_BOS, prompt, 4096, &n);
        if (rc != 0 && rc != MC_EFULL)
            die("tokenize", NULL);
    } else {
        uint64_t x = 88172645463325252ull;
        for (n = 0; n < 1024; n++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            prompt[n] = (int32_t)(x % (uint64_t)n_vocab);
        }
    }
    int np = (int)MC_MIN(n, 1024);
    /* the greedy continuation, for drafts */
    mc_gen_params gp = mc_gen_params_default();
    gp.max_new = 40;
    mc_gen_result g;
    if (mc_gen_run(c, tok, prompt, np, NULL, 0, &gp, &g, &err) != 0)
        die("generate", &err);
    int32_t ref[40];
    int nref = g.n;
    for (int i = 0; i < g.n; i++)
        ref[i] = g.toks[i].id;
    mc_gen_result_fini(&g);
    if (nref < 17) {
        printf("(the model ended its continuation after %d tokens; no verification table)\n\n", nref);
        mc_ctx_free(c);
        return;
    }
    /* plain decoding from the cached prompt: per-token time */
    mc_bench_samples plain = {0};
    for (int r = 0; r < reps; r++) {
        gp.max_new = 16;
        double t0 = mc_time_s();
        if (mc_gen_run(c, tok, prompt, np, NULL, 0, &gp, &g, &err) != 0)
            die("generate", &err);
        double ms = (mc_time_s() - t0) * 1e3;
        mc_bench_push(&plain, (double)g.n / (ms / 1e3));
        mc_gen_result_fini(&g);
    }
    double plain_tps = mc_bench_pct(&plain, 0.5);
    mc_bench_free(&plain);
    const mc_hparams *hp = mc_model_hparams(m);
    printf("## Speculative verification vs plain decoding: %s (%s %dL %dd, %.1f MB, in process, "
           "%d thread%s)\n\n",
           name, hp->arch, hp->n_layer, hp->n_embd, (double)mc_model_weight_bytes(m) / 1e6, threads,
           threads == 1 ? "" : "s");
    printf("Prompt: %d tokens, cached. A call verifies a draft of k tokens of which a are right "
           "(the model's own greedy tokens, the next one replaced) and returns a + 1 tokens in one "
           "forward pass; plain decoding returns one token per pass. Median of %d.\n\n",
           np, reps);
    printf("| draft k | accepted a | tokens per call | ms per call | tokens/s | vs plain (%.1f tok/s) |\n",
           plain_tps);
    printf("|---:|---:|---:|---:|---:|---:|\n");
    const int ks[] = {4, 8, 16};
    for (size_t ki = 0; ki < MC_ARRAY_LEN(ks); ki++) {
        int k = ks[ki];
        for (int q = 0; q <= 4; q++) {
            int a = k * q / 4;
            int32_t draft[16];
            memcpy(draft, ref, sizeof(int32_t) * (size_t)k);
            if (a < k)
                draft[a] = (ref[a] + 1) % n_vocab;
            mc_bench_samples ms = {0};
            int acc = -1;
            for (int r = 0; r < reps; r++) {
                gp.max_new = 1;
                double t0 = mc_time_s();
                if (mc_gen_run(c, tok, prompt, np, draft, k, &gp, &g, &err) != 0)
                    die("verify", &err);
                mc_bench_push(&ms, (mc_time_s() - t0) * 1e3);
                acc = g.n_accepted;
                mc_gen_result_fini(&g);
            }
            double t = mc_bench_pct(&ms, 0.5);
            mc_bench_free(&ms);
            double tps = (double)(acc + 1) / (t / 1e3);
            printf("| %d | %d | %d | %.2f | %.1f | %.2fx |\n", k, acc, acc + 1, t, tps,
                   tps / plain_tps);
        }
    }
    printf("\n");
    mc_ctx_free(c);
}

/* ---- 2. end to end, both processes ---------------------------------------- */

static pid_t serve_start(const char *bin, const char *model, int threads, int *port) {
    char log[] = "/tmp/mccom-bench-serve.XXXXXX";
    int fd = mkstemp(log);
    if (fd < 0)
        return -1;
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fd, 2);
        char th[16];
        snprintf(th, sizeof th, "%d", threads);
        execl(bin, bin, "serve", "-m", model, "--port", "0", "-t", th, "--slots", "2", (char *)NULL);
        _exit(127);
    }
    close(fd);
    *port = 0;
    for (int i = 0; i < 400 && *port == 0; i++) {
        size_t len = 0;
        char *s = mc_bench_slurp(log, &len);
        const char *at = s ? strstr(s, "listening on http://127.0.0.1:") : NULL;
        if (at)
            *port = atoi(at + strlen("listening on http://127.0.0.1:"));
        free(s);
        if (*port == 0)
            usleep(50000);
    }
    unlink(log);
    if (*port == 0) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        return -1;
    }
    return pid;
}

/* Each path talks to its own `mccom serve`, so that every escalation meets a
 * server that has not seen its prompt, as in use (the round-2 prompt is new):
 * one shared server would hand the second path measured on a line the first
 * one's prefix cache. */
enum { E2E_SPEC, E2E_PLAIN, E2E_LLM, E2E_N };

static void e2e_table(mc_model *slm, const mc_tok *tok, const char *llm_path, const char *file,
                      const char *text, size_t len, int threads) {
    const char *bin = getenv("MC_BIN") ? getenv("MC_BIN") : "build/release/mccom";
    pid_t pid[E2E_N];
    mc_llm *llm[E2E_N];
    mc_cascade *c[E2E_N];
    mc_err err;
    char root[PATH_MAX];
    snprintf(root, sizeof root, "%s", file);
    char *slash = strrchr(root, '/');
    if (slash)
        *slash = '\0';
    const char *rel = slash ? file + (slash - root) + 1 : file;
    mc_retr_index *ix;
    if (mc_retr_new(&ix, root, NULL, NULL, &err) != 0 || mc_retr_sync(ix, NULL, &err) != 0)
        die("index", &err);
    mc_ctx_params cp = mc_ctx_params_default();
    cp.n_threads = threads;
    mc_cascade_params p = mc_cascade_params_default();
    p.routing = false;
    for (int i = 0; i < E2E_N; i++) {
        int port;
        pid[i] = serve_start(bin, llm_path, threads, &port);
        if (pid[i] < 0) {
            printf("(mccom serve did not start: %s serve -m %s)\n\n", bin, llm_path);
            for (int k = 0; k < i; k++) {
                mc_cascade_free(c[k]);
                mc_llm_free(llm[k]);
                kill(pid[k], SIGTERM);
                waitpid(pid[k], NULL, 0);
            }
            mc_retr_free(ix);
            return;
        }
        char url[64];
        snprintf(url, sizeof url, "http://127.0.0.1:%d", port);
        mc_remote_params rp = mc_remote_params_default();
        rp.url = url;
        if (mc_llm_remote_new(&rp, tok, &llm[i], &err) != 0)
            die("remote", &err);
        p.speculative = i == E2E_SPEC;
        if (mc_cascade_new(&p, slm, tok, llm[i], ix, &cp, &c[i], &err) != 0)
            die("cascade", &err);
    }
    /* target lines: non-blank lines spread over the file */
    int n_lines = 0;
    for (size_t i = 0; i < len; i++)
        n_lines += text[i] == '\n';
    int targets = env_int("MC_BENCH_TARGETS", 16);
    mc_bench_samples s_slm = {0}, s_esc = {0}, s_plain = {0}, s_llm = {0};
    long acc = 0, drafted = 0, calls = 0, n_esc = 0;
    for (int t = 0; t < targets; t++) {
        int line = 10 + (int)((long)(n_lines - 20) * t / MC_MAX(1, targets));
        size_t at = 0;
        for (int l = 0; l < line && at < len; at++)
            l += text[at] == '\n';
        size_t eol = at;
        while (eol < len && text[eol] != '\n')
            eol++;
        size_t k = at;
        while (k < eol && (text[k] == ' ' || text[k] == '\t'))
            k++;
        if (k == eol)
            continue; /* blank */
        mc_cascade_doc d = {rel, text, len, at, line, 1, 0};
        mc_suggestion sg, sg2, up, pl, lo;
        if (mc_cascade_suggest(c[E2E_SPEC], &d, NULL, &sg, &err) != 0 ||
            mc_cascade_suggest(c[E2E_PLAIN], &d, NULL, &sg2, &err) != 0)
            die("suggest", &err);
        mc_bench_push(&s_slm, sg.st.ms_total);
        if (mc_cascade_escalate(c[E2E_SPEC], &d, &sg, MC_PATH_REJECTION, NULL, &up, &err) != 0)
            die("escalate", &err);
        mc_bench_push(&s_esc, sg.st.ms_total + up.st.ms_total);
        acc += up.st.draft_accepted;
        drafted += up.st.draft_tokens;
        calls += up.st.llm_calls;
        n_esc++;
        if (mc_cascade_escalate(c[E2E_PLAIN], &d, &sg2, MC_PATH_REJECTION, NULL, &pl, &err) != 0)
            die("escalate", &err);
        mc_bench_push(&s_plain, sg2.st.ms_total + pl.st.ms_total);
        if (strcmp(pl.text, up.text) != 0)
            fprintf(stderr, "bench_spec: line %d: speculative and plain lines differ\n", line);
        if (mc_cascade_llm_only(c[E2E_LLM], &d, 1, NULL, &lo, &err) != 0)
            die("llm only", &err);
        mc_bench_push(&s_llm, lo.st.ms_total);
        mc_suggestion_fini(&sg);
        mc_suggestion_fini(&sg2);
        mc_suggestion_fini(&up);
        mc_suggestion_fini(&pl);
        mc_suggestion_fini(&lo);
    }
    printf("## End to end: cascade paths with the large model behind `mccom serve` (loopback)\n\n");
    printf("%d lines of %s, cursor at the line's start; %d thread%s per model; ms per request, "
           "model and network time (no user reaction). Each path has its own server, so no "
           "path finds its prompt cached by another.\n\n",
           s_slm.n, file, threads, threads == 1 ? "" : "s");
    printf("| path | p50 ms | p95 ms | vs large model alone (p50) |\n|---|---:|---:|---:|\n");
    double base = mc_bench_pct(&s_llm, 0.5);
    struct {
        const char *name;
        mc_bench_samples *s;
    } rows[] = {{"small model only (suggestion shown)", &s_slm},
                {"escalated after rejection, speculative", &s_esc},
                {"escalated after rejection, plain decoding", &s_plain},
                {"large model alone, one retrieval round", &s_llm}};
    for (size_t i = 0; i < MC_ARRAY_LEN(rows); i++) {
        double p50 = mc_bench_pct(rows[i].s, 0.5);
        printf("| %s | %.1f | %.1f | %.2f |\n", rows[i].name, p50, mc_bench_pct(rows[i].s, 0.95),
               p50 / base);
        mc_bench_free(rows[i].s);
    }
    printf("\nSpeculative escalations: %ld of %ld draft tokens accepted (%.0f%%), %.1f large-model "
           "calls per escalation.\n\n",
           acc, drafted, drafted ? 100.0 * (double)acc / (double)drafted : 0.0,
           n_esc ? (double)calls / (double)n_esc : 0.0);
    for (int i = 0; i < E2E_N; i++) {
        mc_cascade_free(c[i]);
        mc_llm_free(llm[i]);
        kill(pid[i], SIGTERM);
        waitpid(pid[i], NULL, 0);
    }
    mc_retr_free(ix);
}

int main(void) {
    const char *slm_path = getenv("MC_BENCH_SLM") ? getenv("MC_BENCH_SLM") : "models/mccom-cpu-small-q8_0.gguf";
    const char *llm_path = getenv("MC_BENCH_LLM") ? getenv("MC_BENCH_LLM") : "models/mccom-cpu-large-q8_0.gguf";
    const char *file = getenv("MC_BENCH_FILE") ? getenv("MC_BENCH_FILE") : "/usr/lib/python3.11/json/decoder.py";
    if (access(slm_path, R_OK) != 0 || access(llm_path, R_OK) != 0) {
        printf("(bench_spec skipped: %s or %s is missing)\n", slm_path, llm_path);
        return 0;
    }
    size_t len = 0;
    char *text = mc_bench_slurp(file, &len);
    if (!text) {
        printf("(bench_spec skipped: cannot read %s; set MC_BENCH_FILE)\n", file);
        return 0;
    }
    int threads = env_int("MC_BENCH_THREADS", 1), reps = env_int("MC_BENCH_REPS", 7);
    mc_err err;
    mc_model *slm, *llm;
    mc_tok *tok;
    if (mc_model_load(slm_path, &slm, &err) != 0)
        die(slm_path, &err);
    if (mc_model_load(llm_path, &llm, &err) != 0)
        die(llm_path, &err);
    if (mc_tok_load_gguf(mc_model_gguf(slm), &tok, &err) != 0)
        die("tokenizer", &err);
    verify_table(llm, llm_path, tok, text, threads, reps);
    /* a model of the size where decoding is bound by memory bandwidth (the
     * engine benchmark's, when `make bench` has made it) */
    const char *big = getenv("MC_BENCH_BIG") ? getenv("MC_BENCH_BIG") : "build/bench-models/150m-q8_0.gguf";
    mc_model *bm;
    if (access(big, R_OK) == 0 && mc_model_load(big, &bm, &err) == 0) {
        verify_table(bm, big, NULL, NULL, threads, reps);
        mc_model_free(bm);
    }
    e2e_table(slm, tok, llm_path, file, text, len, threads);
    mc_tok_free(tok);
    mc_model_free(llm);
    mc_model_free(slm);
    free(text);
    return 0;
}
