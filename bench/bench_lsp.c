/* bench/bench_lsp.c — `mccom lsp` latency from a keystroke to its inline
 * completion (markdown tables on stdout).
 *
 * The real binary (build/release/mccom, or $MC_BIN) is driven over pipes as an
 * editor would: a real Python file is opened (default
 * /usr/lib/python3.11/json/decoder.py, $MC_BENCH_FILE; its directory is the
 * workspace root, indexed for retrieval), and at N target lines the line is
 * cut after its indentation and retyped character by character: each
 * keystroke is a didChange (one inserted character, UTF-16 positions)
 * followed by an inlineCompletion request at the new cursor. Latency = time
 * from writing the didChange to reading the reply. The first request on each
 * line (which moves the prompt window) is a warm-up and not counted, so the
 * small model's prefix cache is warm: a keystroke costs the new characters'
 * tokens and the new line.
 *
 * Two typing regimes:
 *   - sequential: the next key is sent after the reply (every request
 *     answered; split into model runs and type-through reuses);
 *   - fast: keys every 15 ms without waiting (stale requests are superseded,
 *     answered ContentModified); latency of the last key of each burst.
 * Reference, measured in the same run: the same sequence of requests on the
 * cascade's sessions in this process (mc_session_request), so the ratio is
 * what the protocol, the pipes and the worker thread add.
 *
 * Models: stories260K (models/stories260K.gguf) and, when build/tools/mkmodel
 * exists, a random llama model of about 15M parameters with the same
 * 512-token vocabulary (Q8_0; speed does not depend on the weights; its lines
 * run to max_line_tokens, the slow case). Knobs: MC_BENCH_TARGETS (8),
 * MC_BENCH_KEYS (12 keystrokes per line), MC_BENCH_THREADS (1).
 */
#include "mccom/cascade.h"
#include "mccom/lsp.h"
#include "bench_util.h"

#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>


/* ---- a little editor ---------------------------------------------------------------------- */

typedef struct ed {
    mc_lsp_client *c;
    int next_id;
    int version;
    const char *uri;
} ed;

static void send_json(ed *e, json_t *m) {
    char *b = json_dumps(m, JSON_COMPACT);
    json_decref(m);
    if (!b || mc_lsp_client_send(e->c, b) != 0) {
        fprintf(stderr, "bench_lsp: the server went away\n");
        exit(1);
    }
    free(b);
}

/* Wait for the reply to `id`; answers server requests; returns it (caller decrefs). */
static json_t *reply(ed *e, int id) {
    for (;;) {
        char *b;
        size_t n;
        int rc = mc_lsp_client_recv(e->c, 120000, &b, &n);
        if (rc != 1) {
            fprintf(stderr, "bench_lsp: no reply from the server\n");
            exit(1);
        }
        json_t *m = json_loadb(b, n, 0, NULL);
        free(b);
        json_t *mid = json_object_get(m, "id");
        if (mid && json_object_get(m, "method")) {
            send_json(e, json_pack("{s:s, s:O, s:n}", "jsonrpc", "2.0", "id", mid, "result"));
        } else if (json_is_integer(mid) && json_integer_value(mid) == id) {
            return m;
        }
        json_decref(m);
    }
}

static int request(ed *e, const char *method, json_t *params) {
    int id = e->next_id++;
    send_json(e, json_pack("{s:s, s:i, s:s, s:o}", "jsonrpc", "2.0", "id", id, "method", method,
                           "params", params));
    return id;
}

static void notify(ed *e, const char *method, json_t *params) {
    send_json(e, json_pack("{s:s, s:s, s:o}", "jsonrpc", "2.0", "method", method, "params", params));
}

/* Replace [(l0,c0), (l1,c1)) by text (UTF-16 positions; the bench's file is ASCII). */
static void edit(ed *e, int l0, int c0, int l1, int c1, const char *text) {
    notify(e, "textDocument/didChange",
           json_pack("{s:{s:s, s:i}, s:[{s:{s:{s:i, s:i}, s:{s:i, s:i}}, s:s}]}", "textDocument",
                     "uri", e->uri, "version", ++e->version, "contentChanges", "range", "start",
                     "line", l0, "character", c0, "end", "line", l1, "character", c1, "text", text));
}

static int complete(ed *e, int line, int ch) {
    return request(e, "textDocument/inlineCompletion",
                   json_pack("{s:{s:s}, s:{s:i, s:i}, s:{s:i}}", "textDocument", "uri", e->uri,
                             "position", "line", line, "character", ch, "context", "triggerKind", 2));
}

/* ---- the document, for the in-process reference ------------------------------------------- */

typedef struct line_span {
    size_t start, len;
} line_span;

static int split_lines(const char *t, line_span **out) {
    int n = 0, cap = 256;
    line_span *ls = malloc((size_t)cap * sizeof *ls);
    size_t s = 0;
    for (size_t i = 0;; i++) {
        if (t[i] == '\n' || t[i] == '\0') {
            if (n == cap) {
                cap *= 2;
                ls = realloc(ls, (size_t)cap * sizeof *ls);
            }
            ls[n].start = s;
            ls[n].len = i - s;
            n++;
            if (t[i] == '\0')
                break;
            s = i + 1;
        }
    }
    *out = ls;
    return n;
}

typedef struct target {
    int line, indent;
} target;

/* Lines with at least `keys` characters after their indentation, spread over the file. */
static int pick_targets(const char *t, const line_span *ls, int n_lines, int keys, target *tg, int want) {
    int cand[8192], nc = 0;
    for (int i = 20; i < n_lines && nc < 8192; i++) {
        int ind = 0;
        while ((size_t)ind < ls[i].len && t[ls[i].start + ind] == ' ')
            ind++;
        if ((int)ls[i].len - ind >= keys + 2 && t[ls[i].start + ind] != '#' && t[ls[i].start + ind] != '"')
            cand[nc++] = i;
    }
    int n = 0;
    for (int k = 0; k < want && nc > 0; k++) {
        int i = cand[(int)((long long)k * nc / want)];
        int ind = 0;
        while (t[ls[i].start + ind] == ' ')
            ind++;
        tg[n].line = i;
        tg[n].indent = ind;
        n++;
    }
    return n;
}

/* The document with line `l` cut to its first `keep` characters. */
static char *doc_with(const char *t, const line_span *ls, int l, size_t keep, size_t *cursor) {
    size_t n = strlen(t);
    size_t cut_at = ls[l].start + keep, cut_end = ls[l].start + ls[l].len;
    char *d = malloc(n + 1);
    memcpy(d, t, cut_at);
    memcpy(d + cut_at, t + cut_end, n - cut_end + 1);
    *cursor = cut_at;
    return d;
}

typedef struct result {
    mc_bench_samples run, reuse, all, fast, inproc;
    int n_superseded, n_reused, n_run;
} result;

static void bench_model(const char *bin, const char *model, const char *tokenizer,
                        const char *file, const char *root, const char *text, int n_targets,
                        int keys, int threads, result *R) {
    memset(R, 0, sizeof *R);
    char uri[PATH_MAX + 8];
    snprintf(uri, sizeof uri, "file://%s", file);
    char th[16];
    snprintf(th, sizeof th, "%d", threads);
    char *argv[] = {(char *)bin, "lsp", "-q", "--threads", th, NULL};
    ed e = {NULL, 1, 1, uri};
    mc_err err;
    if (mc_lsp_client_spawn(argv, NULL, &e.c, &err) != 0) {
        fprintf(stderr, "bench_lsp: %s\n", err.msg);
        exit(1);
    }
    char root_uri[PATH_MAX + 8];
    snprintf(root_uri, sizeof root_uri, "file://%s", root);
    json_t *opts = json_pack("{s:s, s:f, s:b}", "slmModel", model, "tau", 0.0, "retrieval", 1);
    if (tokenizer)
        json_object_set_new(opts, "tokenizer", json_string(tokenizer));
    int id = request(&e, "initialize",
                     json_pack("{s:s, s:{s:{s:b}}, s:o}", "rootUri", root_uri, "capabilities",
                               "window", "workDoneProgress", 1, "initializationOptions", opts));
    json_decref(reply(&e, id));
    /* wait until the index is built ($/progress end) */
    for (;;) {
        char *b;
        size_t n;
        if (mc_lsp_client_recv(e.c, 60000, &b, &n) != 1)
            break;
        json_t *m = json_loadb(b, n, 0, NULL);
        free(b);
        json_t *mid = json_object_get(m, "id");
        if (mid && json_object_get(m, "method"))
            send_json(&e, json_pack("{s:s, s:O, s:n}", "jsonrpc", "2.0", "id", mid, "result"));
        const char *kind = json_string_value(
            json_object_get(json_object_get(json_object_get(m, "params"), "value"), "kind"));
        bool end = kind && !strcmp(kind, "end");
        json_decref(m);
        if (end)
            break;
    }
    notify(&e, "textDocument/didOpen",
           json_pack("{s:{s:s, s:s, s:i, s:s}}", "textDocument", "uri", uri, "languageId", "python",
                     "version", 1, "text", text));

    /* the in-process reference: the same models and index */
    mc_model *m = NULL;
    mc_tok *tok = NULL;
    mc_retr_index *ix = NULL;
    mc_cascade *c = NULL;
    mc_ctx_params cp = mc_ctx_params_default();
    cp.n_threads = threads;
    mc_cascade_params p = mc_cascade_params_default();
    p.tau = 0.0f;
    if (mc_model_load(model, &m, &err) != 0 ||
        (tokenizer ? mc_tok_load_gguf_file(tokenizer, &tok, &err)
                   : mc_tok_load_gguf(mc_model_gguf(m), &tok, &err)) != 0 ||
        mc_retr_new(&ix, root, NULL, NULL, &err) != 0 || mc_retr_sync(ix, NULL, &err) != 0 ||
        mc_cascade_new(&p, m, tok, NULL, ix, &cp, &c, &err) != 0) {
        fprintf(stderr, "bench_lsp: in-process cascade: %s\n", err.msg);
        exit(1);
    }
    mc_session *sess = mc_session_new(c);
    const char *rel = strrchr(file, '/') + 1;

    line_span *ls;
    int n_lines = split_lines(text, &ls);
    target tg[256];
    int nt = pick_targets(text, ls, n_lines, keys, tg, MC_MIN(n_targets, 256));
    for (int k = 0; k < nt; k++) {
        const int L = tg[k].line, ind = tg[k].indent;
        const char *orig = text + ls[L].start;
        int full = (int)ls[L].len;
        /* cut the line after its indentation; warm-up request */
        edit(&e, L, ind, L, full, "");
        id = complete(&e, L, ind);
        json_decref(reply(&e, id));
        size_t cur;
        char *d = doc_with(text, ls, L, (size_t)ind, &cur);
        mc_cascade_doc cd = {rel, d, strlen(d), cur, L, 1, 0};
        const mc_suggestion *sg;
        mc_session_request(sess, &cd, NULL, &sg, &err);
        free(d);
        /* sequential typing */
        for (int i = 0; i < keys; i++) {
            char ch[2] = {orig[ind + i], 0};
            double t0 = mc_time_s();
            edit(&e, L, ind + i, L, ind + i, ch);
            id = complete(&e, L, ind + i + 1);
            json_t *r = reply(&e, id);
            double ms = (mc_time_s() - t0) * 1e3;
            json_t *it = json_array_get(json_object_get(json_object_get(r, "result"), "items"), 0);
            bool reused = json_is_true(json_object_get(json_object_get(it, "mccom"), "reused"));
            mc_bench_push(reused ? &R->reuse : &R->run, ms);
            mc_bench_push(&R->all, ms);
            if (reused)
                R->n_reused++;
            else
                R->n_run++;
            json_decref(r);
            d = doc_with(text, ls, L, (size_t)(ind + i + 1), &cur);
            mc_cascade_doc dd = {rel, d, strlen(d), cur, L, 1, 0};
            mc_session_stats before, after;
            mc_session_get_stats(sess, &before);
            double t1 = mc_time_s();
            mc_session_request(sess, &dd, NULL, &sg, &err);
            double in_ms = (mc_time_s() - t1) * 1e3;
            mc_session_get_stats(sess, &after);
            if (after.reused == before.reused)
                mc_bench_push(&R->inproc, in_ms);
            free(d);
        }
        /* fast typing: the rest of the keys again, 15 ms apart, without waiting */
        edit(&e, L, ind, L, ind + keys, "");
        int last = 0;
        double t_last = 0;
        for (int i = 0; i < keys; i++) {
            char ch[2] = {orig[ind + i], 0};
            t_last = mc_time_s();
            edit(&e, L, ind + i, L, ind + i, ch);
            last = complete(&e, L, ind + i + 1);
            usleep(15000);
        }
        int first = last - keys + 1;
        for (int i = first; i <= last; i++) {
            json_t *r = reply(&e, i);
            if (i == last)
                mc_bench_push(&R->fast, (mc_time_s() - t_last) * 1e3);
            else if (json_object_get(r, "error"))
                R->n_superseded++;
            json_decref(r);
        }
        /* put the line back */
        char *rest = strndup(orig + ind + keys, (size_t)(full - ind - keys));
        edit(&e, L, ind + keys, L, ind + keys, rest);
        free(rest);
    }
    id = request(&e, "shutdown", json_object());
    json_decref(reply(&e, id));
    notify(&e, "exit", json_object());
    mc_lsp_client_free(e.c);
    free(ls);
    mc_session_free(sess);
    mc_cascade_free(c);
    mc_retr_free(ix);
    mc_tok_free(tok);
    mc_model_free(m);
}

int main(int argc, char **argv) {
    (void)argc;
    (void)argv;
    const char *bin = getenv("MC_BIN") ? getenv("MC_BIN") : "build/release/mccom";
    const char *file_env = getenv("MC_BENCH_FILE");
    char file[PATH_MAX], bin_abs[PATH_MAX], slm[PATH_MAX];
    if (!realpath(file_env ? file_env : "/usr/lib/python3.11/json/decoder.py", file)) {
        printf("(bench_lsp skipped: no %s; set MC_BENCH_FILE)\n", file_env ? file_env : "/usr/lib/python3.11/json/decoder.py");
        return 0;
    }
    if (!realpath(bin, bin_abs) || !realpath("models/stories260K.gguf", slm)) {
        fprintf(stderr, "bench_lsp: %s or models/stories260K.gguf is missing (run from the repository root after make)\n", bin);
        return 1;
    }
    char root[PATH_MAX];
    snprintf(root, sizeof root, "%s", file);
    *strrchr(root, '/') = '\0';
    char *text = mc_bench_slurp(file, NULL);
    int targets = getenv("MC_BENCH_TARGETS") ? atoi(getenv("MC_BENCH_TARGETS")) : 8;
    int keys = getenv("MC_BENCH_KEYS") ? atoi(getenv("MC_BENCH_KEYS")) : 12;
    int threads = getenv("MC_BENCH_THREADS") ? atoi(getenv("MC_BENCH_THREADS")) : 1;
    if (!text || targets < 1 || keys < 1 || threads < 0)
        return 1;

    /* a random ~15M-parameter model with stories260K's vocabulary */
    char big[PATH_MAX] = "";
    if (access("build/tools/mkmodel", X_OK) == 0) {
        mkdir("build/bench-models", 0755);
        snprintf(big, sizeof big, "build/bench-models/lsp-slm-4l512d-v512-q8_0.gguf");
        if (access(big, R_OK) != 0 &&
            system("build/tools/mkmodel -q --arch llama --vocab 512 --embd 512 --layers 4 --heads 8 "
                   "--ff 1408 --ctx 2048 --type q8_0 --seed 3 build/bench-models/lsp-slm-4l512d-v512-q8_0.gguf") != 0)
            big[0] = '\0';
    }

    printf("## LSP: keystroke (didChange) → inlineCompletion reply\n\n");
    printf("File %s (%zu bytes), workspace %s indexed; %d lines retyped, %d keystrokes each; "
           "%d model thread(s); debounce 0; warm prefix cache (the first request of each line is not counted). "
           "Milliseconds.\n\n",
           file, strlen(text), root, targets, keys, threads);
    printf("| small model | keystrokes | model runs | run p50 | run p95 | type-through | reuse p50 | reuse p95 | all p50 | all p95 | in-process run p50 | LSP / in-process | fast typing: last key p50 | p95 | superseded |\n");
    printf("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    struct {
        const char *name, *model, *tok;
    } rows[2] = {{"stories260K F32 (0.26M params)", slm, NULL},
                 {"random llama 4L 512d Q8_0 (~15M params, vocab 512)", big, slm}};
    for (int i = 0; i < 2; i++) {
        if (!rows[i].model[0])
            continue;
        char mabs[PATH_MAX];
        if (!realpath(rows[i].model, mabs))
            continue;
        result R;
        bench_model(bin_abs, mabs, rows[i].tok, file, root, text, targets, keys, threads, &R);
        double run50 = mc_bench_pct(&R.run, 0.5), in50 = mc_bench_pct(&R.inproc, 0.5);
        printf("| %s | %d | %d | %.2f | %.2f | %d | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f | "
               "%.2f | %d |\n",
               rows[i].name, R.all.n, R.n_run, run50, mc_bench_pct(&R.run, 0.95), R.n_reused,
               mc_bench_pct(&R.reuse, 0.5), mc_bench_pct(&R.reuse, 0.95), mc_bench_pct(&R.all, 0.5),
               mc_bench_pct(&R.all, 0.95), in50, run50 / in50, mc_bench_pct(&R.fast, 0.5),
               mc_bench_pct(&R.fast, 0.95), R.n_superseded);
        mc_bench_free(&R.run);
        mc_bench_free(&R.reuse);
        mc_bench_free(&R.all);
        mc_bench_free(&R.fast);
        mc_bench_free(&R.inproc);
    }
    printf("\nmodel runs: requests the cascade answered with the small model; type-through: "
           "requests answered from the live suggestion (the typed key matched it). In-process: "
           "the same requests on mc_session_request in this process. Fast typing: keys 15 ms apart "
           "without waiting; superseded = stale requests answered ContentModified.\n");
    free(text);
    return 0;
}
