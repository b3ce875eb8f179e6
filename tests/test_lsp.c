/* tests/test_lsp.c — `mccom lsp`: framed JSON-RPC sessions piped into the
 * built binary (mc_test_bin), every reply checked; the framer, the position
 * conversions and the document edits in process.
 *
 * Models: models/stories260K.gguf (the repository's converted stories260K) as
 * the small model; as the large one a random model with the same vocabulary
 * from build/tools/mkmodel (it disagrees with the small one, so an escalated
 * line is visibly the large model's). Expected suggestions come from the
 * cascade run in this process on the same files, document and cursor, with
 * the same thread count. */
#include "../src/lsp/lsp_internal.h"
#include "mccom/cascade.h"
#include "mccom/lsp.h"
#include "mccom/convert.h"
#include "test.h"

#include <jansson.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- a client session with the binary -------------------------------------------- */

typedef struct srv {
    mc_lsp_client *c;
    char log[600];
    json_t *notes; /* notifications received while waiting for responses */
    json_int_t next_id;
} srv;

static const char *tmp_path(const char *name) {
    static char buf[8][600];
    static int k;
    k = (k + 1) % 8;
    snprintf(buf[k], sizeof buf[k], "%s/%s", mc_test_tmpdir(), name);
    return buf[k];
}

static void write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    MC_REQUIRE(f);
    fputs(text, f);
    fclose(f);
}

static char *read_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    MC_REQUIRE(b && fread(b, 1, (size_t)n, f) == (size_t)n);
    b[n] = '\0';
    fclose(f);
    return b;
}

/* Start `mccom lsp -v ARGS...` (NULL-terminated). */
static void srv_start(srv *s, ...) {
    memset(s, 0, sizeof *s);
    static int n;
    snprintf(s->log, sizeof s->log, "%s/lsp-%d.log", mc_test_tmpdir(), n++);
    char *argv[32];
    int k = 0;
    argv[k++] = (char *)mc_test_bin();
    argv[k++] = "lsp";
    argv[k++] = "-v";
    va_list ap;
    va_start(ap, s);
    const char *a;
    while ((a = va_arg(ap, const char *)) != NULL && k < 31)
        argv[k++] = (char *)a;
    va_end(ap);
    argv[k] = NULL;
    mc_err err;
    MC_REQUIRE(mc_lsp_client_spawn(argv, s->log, &s->c, &err) == 0);
    s->notes = json_array();
    s->next_id = 1;
}

static void srv_stop(srv *s) {
    mc_lsp_client_free(s->c);
    json_decref(s->notes);
    s->c = NULL;
}

static void dump_log(const srv *s) {
    char *l = read_file(s->log);
    fprintf(stderr, "---- server log ----\n%s--------------------\n", l ? l : "(none)");
    free(l);
}

static void send_msg(srv *s, json_t *m) {
    char *b = json_dumps(m, JSON_COMPACT);
    MC_REQUIRE(b);
    MC_REQUIRE(mc_lsp_client_send(s->c, b) == 0);
    free(b);
    json_decref(m);
}

static void send_raw(srv *s, const char *bytes, size_t n) {
    MC_REQUIRE(mc_lsp_client_send_raw(s->c, bytes, n) == 0);
}

/* The next message from the server, or NULL on timeout. */
static json_t *recv_any(srv *s, int ms) {
    char *b;
    size_t n;
    int rc = mc_lsp_client_recv(s->c, ms, &b, &n);
    if (rc != 1)
        return NULL;
    json_t *j = json_loadb(b, n, 0, NULL);
    CHECK_MSG(j != NULL, "the server wrote bad JSON: %s", b);
    free(b);
    return j;
}

static json_int_t request(srv *s, const char *method, json_t *params) {
    json_int_t id = s->next_id++;
    send_msg(s, json_pack("{s:s, s:I, s:s, s:o}", "jsonrpc", "2.0", "id", id, "method", method,
                          "params", params ? params : json_object()));
    return id;
}

static void notify(srv *s, const char *method, json_t *params) {
    send_msg(s, json_pack("{s:s, s:s, s:o}", "jsonrpc", "2.0", "method", method, "params",
                          params ? params : json_object()));
}

/* Keep a notification; answer a server request (progress tokens) with null. */
static void keep(srv *s, json_t *m) {
    json_t *id = json_object_get(m, "id");
    if (id && json_object_get(m, "method")) {
        send_msg(s, json_pack("{s:s, s:O, s:n}", "jsonrpc", "2.0", "id", id, "result"));
        json_array_append_new(s->notes, m);
        return;
    }
    json_array_append_new(s->notes, m);
}

/* The response to request `id` (borrowed until srv_stop: kept in notes). */
static json_t *wait_response(srv *s, json_int_t id, int ms) {
    double until = mc_time_s() + ms * 1e-3;
    for (;;) {
        int left = (int)((until - mc_time_s()) * 1e3);
        json_t *m = left > 0 ? recv_any(s, left) : NULL;
        if (!m) {
            mc_test_fail_at(__FILE__, __LINE__, "no response to request %lld within %d ms",
                            (long long)id, ms);
            dump_log(s);
            return NULL;
        }
        json_t *mid = json_object_get(m, "id");
        if (!json_object_get(m, "method") && json_is_integer(mid) && json_integer_value(mid) == id) {
            json_array_append_new(s->notes, m); /* owned by notes */
            return m;
        }
        keep(s, m);
    }
}

/* The first notification `method` not yet taken (removed from notes; caller
 * decrefs), waiting up to ms. */
static json_t *wait_note(srv *s, const char *method, int ms) {
    double until = mc_time_s() + ms * 1e-3;
    for (;;) {
        size_t i;
        json_t *m;
        json_array_foreach(s->notes, i, m) {
            const char *meth = mc__json_str(m, "method");
            if (meth && !strcmp(meth, method) && !json_object_get(m, "id")) {
                json_incref(m);
                json_array_remove(s->notes, i);
                return m;
            }
        }
        int left = (int)((until - mc_time_s()) * 1e3);
        json_t *n = left > 0 ? recv_any(s, left) : NULL;
        if (!n)
            return NULL;
        keep(s, n);
    }
}

static int error_code(const json_t *resp) {
    json_t *e = json_object_get(resp, "error");
    return e ? (int)json_integer_value(json_object_get(e, "code")) : 0;
}

static json_t *initialize(srv *s, const char *root, json_t *opts, bool utf8, bool progress) {
    json_t *caps = json_pack("{s:{s:[s]}, s:{s:b}}", "general", "positionEncodings",
                             utf8 ? "utf-8" : "utf-16", "window", "workDoneProgress", progress);
    json_t *p = json_pack("{s:i, s:o}", "processId", (int)getpid(), "capabilities", caps);
    if (root) {
        char uri[700];
        snprintf(uri, sizeof uri, "file://%s", root);
        json_object_set_new(p, "rootUri", json_string(uri));
    }
    if (opts)
        json_object_set_new(p, "initializationOptions", opts);
    json_int_t id = request(s, "initialize", p);
    json_t *r = wait_response(s, id, 10000);
    MC_REQUIRE(r);
    notify(s, "initialized", NULL);
    return r;
}

static void shutdown_exit(srv *s, int want_status) {
    json_int_t id = request(s, "shutdown", NULL);
    json_t *r = wait_response(s, id, 10000);
    CHECK(r && json_is_null(json_object_get(r, "result")));
    notify(s, "exit", NULL);
    int st = -1;
    CHECK(mc_lsp_client_wait(s->c, 10000, &st) == 1);
    CHECK_EQ_INT(st, want_status);
}

static void open_doc(srv *s, const char *uri, const char *text) {
    notify(s, "textDocument/didOpen",
           json_pack("{s:{s:s, s:s, s:i, s:s}}", "textDocument", "uri", uri, "languageId",
                     "python", "version", 1, "text", text));
}

static json_t *position(int line, int ch) {
    return json_pack("{s:i, s:i}", "line", line, "character", ch);
}

static json_int_t complete_req(srv *s, const char *uri, int line, int ch, int trigger) {
    return request(s, "textDocument/inlineCompletion",
                   json_pack("{s:{s:s}, s:o, s:{s:i}}", "textDocument", "uri", uri, "position",
                             position(line, ch), "context", "triggerKind", trigger));
}

/* The first item of an InlineCompletionList response (NULL if none). */
static json_t *first_item(json_t *resp) {
    json_t *items = json_object_get(json_object_get(resp, "result"), "items");
    return json_is_array(items) && json_array_size(items) > 0 ? json_array_get(items, 0) : NULL;
}

static const char *item_text(json_t *resp) {
    return mc__json_str(first_item(resp), "insertText");
}

static json_int_t item_id(json_t *resp) {
    return json_integer_value(json_object_get(json_object_get(first_item(resp), "mccom"), "id"));
}

static json_t *item_mccom(json_t *resp) { return json_object_get(first_item(resp), "mccom"); }

/* ---- models --------------------------------------------------------------------------- */

static const char *slm_path(void) {
    static char p[PATH_MAX];
    MC_REQUIRE(realpath("models/stories260K.gguf", p) != NULL);
    return p;
}

/* A random model sharing stories260K's 512-token vocabulary (the large one). */
static const char *llm_path(void) {
    const char *p = tmp_path("llm.gguf");
    if (access(p, R_OK) == 0)
        return p;
    if (access("build/tools/mkmodel", X_OK) != 0) {
        mc_test_fail_at(__FILE__, __LINE__, "build/tools/mkmodel is missing (make tools)");
        mc_test_abort();
    }
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "build/tools/mkmodel -q --arch llama --vocab 512 --embd 64 --layers 2 --heads 4 "
             "--ff 128 --seed 7 --scale 4 %s",
             p);
    MC_REQUIRE(system(cmd) == 0);
    return p;
}

/* The cascade in this process, configured as the server is. */
typedef struct local {
    mc_model *slm, *llm_m;
    mc_tok *tok;
    mc_llm *llm;
    mc_retr_index *ix;
    mc_copy_index *cx; /* the copy tier, as the server has it with an index */
    mc_cascade *c;
    mc_session *s;
    int last_source;   /* of the last local_suggest */
} local;

static void local_open(local *L, const char *llm, const char *root, float tau, int max_line) {
    memset(L, 0, sizeof *L);
    mc_err err;
    MC_REQUIRE(mc_model_load(slm_path(), &L->slm, &err) == 0);
    MC_REQUIRE(mc_tok_load_gguf(mc_model_gguf(L->slm), &L->tok, &err) == 0);
    mc_ctx_params cp = mc_ctx_params_default();
    cp.n_threads = 1;
    if (llm) {
        MC_REQUIRE(mc_model_load(llm, &L->llm_m, &err) == 0);
        MC_REQUIRE(mc_llm_local_new(L->llm_m, L->tok, &cp, &L->llm, &err) == 0);
    }
    if (root) {
        MC_REQUIRE(mc_retr_new(&L->ix, root, NULL, NULL, &err) == 0);
        MC_REQUIRE(mc_retr_sync(L->ix, NULL, &err) == 0);
    }
    mc_cascade_params p = mc_cascade_params_default();
    p.tau = tau;
    p.retrieval = root != NULL;
    p.llm_budget_ms = 0; /* results, not the machine's load: no wall-clock budget (opts too) */
    if (max_line > 0)
        p.max_line_tokens = max_line;
    MC_REQUIRE(mc_cascade_new(&p, L->slm, L->tok, L->llm, L->ix, &cp, &L->c, &err) == 0);
    if (L->ix) { /* the cascade syncs it with the index before each request */
        MC_REQUIRE(mc_copy_new(&L->cx, L->ix, &err) == 0);
        mc_cascade_set_copy(L->c, L->cx);
    }
    L->s = mc_session_new(L->c);
    MC_REQUIRE(L->s);
}

static void local_close(local *L) {
    mc_session_free(L->s);
    mc_cascade_free(L->c);
    mc_copy_free(L->cx);
    mc_retr_free(L->ix);
    mc_llm_free(L->llm);
    mc_model_free(L->llm_m);
    mc_tok_free(L->tok);
    mc_model_free(L->slm);
}

/* The session's suggestion text (valid UTF-8 prefix, as the server sends it)
 * for text with the cursor at byte `cursor`; malloc'd. */
static char *local_suggest(local *L, const char *path, const char *text, size_t cursor) {
    mc_cascade_doc d = {path, text, strlen(text), cursor, -1, 1, 0};
    const mc_suggestion *sug;
    mc_err err;
    int rc = mc_session_request(L->s, &d, NULL, &sug, &err);
    CHECK_MSG(rc == 0, "in-process cascade: %s", err.msg);
    MC_REQUIRE(rc == 0);
    L->last_source = sug->source;
    size_t n = mc__lsp_utf8_valid_prefix(sug->text, sug->len);
    char *r = malloc(n + 1);
    memcpy(r, sug->text, n);
    r[n] = '\0';
    return r;
}

/* ---- unit: positions ------------------------------------------------------------------ */

MC_TEST(lsp_positions_utf16_utf8) {
    /* "aé😀b\r\nx\n" : a 1 byte/1 unit, é 2 bytes/1 unit, 😀 4 bytes/2 units */
    const char *t = "a\xc3\xa9\xf0\x9f\x98\x80" "b\r\nx\n";
    size_t n = strlen(t);
    CHECK_EQ_INT(mc_lsp_offset(t, n, 0, 0, MC_LSP_UTF16), 0);
    CHECK_EQ_INT(mc_lsp_offset(t, n, 0, 1, MC_LSP_UTF16), 1);
    CHECK_EQ_INT(mc_lsp_offset(t, n, 0, 2, MC_LSP_UTF16), 3);
    CHECK_EQ_INT(mc_lsp_offset(t, n, 0, 3, MC_LSP_UTF16), 3); /* inside the surrogate pair */
    CHECK_EQ_INT(mc_lsp_offset(t, n, 0, 4, MC_LSP_UTF16), 7);
    CHECK_EQ_INT(mc_lsp_offset(t, n, 0, 5, MC_LSP_UTF16), 8);
    CHECK_EQ_INT(mc_lsp_offset(t, n, 0, 6, MC_LSP_UTF16), 8);   /* past the end: before "\r\n" */
    CHECK_EQ_INT(mc_lsp_offset(t, n, 0, 999, MC_LSP_UTF16), 8);
    CHECK_EQ_INT(mc_lsp_offset(t, n, 1, 0, MC_LSP_UTF16), 10);
    CHECK_EQ_INT(mc_lsp_offset(t, n, 1, 1, MC_LSP_UTF16), 11);
    CHECK_EQ_INT(mc_lsp_offset(t, n, 2, 0, MC_LSP_UTF16), 12); /* the empty last line */
    CHECK_EQ_INT(mc_lsp_offset(t, n, 3, 0, MC_LSP_UTF16), n);  /* past the last line */
    CHECK_EQ_INT(mc_lsp_offset(t, n, 0, 2, MC_LSP_UTF8), 1);   /* inside é: its start */
    CHECK_EQ_INT(mc_lsp_offset(t, n, 0, 3, MC_LSP_UTF8), 3);
    CHECK_EQ_INT(mc_lsp_offset(t, n, 0, 7, MC_LSP_UTF8), 7);
    CHECK_EQ_INT(mc_lsp_offset(t, n, 0, 3, MC_LSP_UTF32), 7);
    /* every offset at a code point boundary round-trips, in every encoding */
    const size_t bounds[] = {0, 1, 3, 7, 8, 10, 11, 12};
    for (int e = 0; e < 3; e++) {
        for (size_t i = 0; i < MC_ARRAY_LEN(bounds); i++) {
            uint32_t l, c;
            mc_lsp_position(t, n, bounds[i], (mc_lsp_encoding)e, &l, &c);
            CHECK_EQ_INT(mc_lsp_offset(t, n, l, c, (mc_lsp_encoding)e), bounds[i]);
        }
    }
    uint32_t l, c;
    mc_lsp_position(t, n, 7, MC_LSP_UTF16, &l, &c);
    CHECK(l == 0 && c == 4);
    mc_lsp_position(t, n, 9, MC_LSP_UTF16, &l, &c); /* between "\r" and "\n": the line's end */
    CHECK(l == 0 && c == 5);
    mc_lsp_position(t, n, 5, MC_LSP_UTF16, &l, &c); /* inside 😀: counts up to its start */
    CHECK(l == 0 && c == 2);
    mc_lsp_position(t, n, 11, MC_LSP_UTF8, &l, &c);
    CHECK(l == 1 && c == 1);
    /* invalid UTF-8 counts one unit per byte */
    CHECK_EQ_INT(mc_lsp_offset("\xff\xfe" "a", 3, 0, 2, MC_LSP_UTF16), 2);
    CHECK_EQ_INT(mc_lsp_offset("", 0, 5, 5, MC_LSP_UTF16), 0);
}

MC_TEST(lsp_uri_paths) {
    char *p = mc__lsp_uri_to_path("file:///home/u/My%20Project/a%C3%A9.py");
    CHECK_EQ_STR(p, "/home/u/My Project/a\xc3\xa9.py");
    free(p);
    p = mc__lsp_uri_to_path("file://localhost/x/y");
    CHECK_EQ_STR(p, "/x/y");
    free(p);
    CHECK(mc__lsp_uri_to_path("untitled:Untitled-1") == NULL);
    CHECK(mc__lsp_uri_to_path("file:///a%00b") == NULL);
    char *r = mc__lsp_relpath("/root/repo/", "/root/repo/src/a.py");
    CHECK_EQ_STR(r, "src/a.py");
    free(r);
    CHECK(mc__lsp_relpath("/root/repo", "/root/repository/a.py") == NULL);
    CHECK(mc__lsp_relpath("/root/repo", "/root/repo") == NULL);
}

/* ---- unit: the framer ------------------------------------------------------------------- */

static int next_body(mc_lsp_framer *f, char *out, size_t cap, mc_err *err) {
    const char *b;
    size_t n;
    int rc = mc_lsp_framer_next(f, &b, &n, err);
    if (rc == 1) {
        MC_REQUIRE(n < cap);
        memcpy(out, b, n);
        out[n] = '\0';
    }
    return rc;
}

MC_TEST(lsp_framer) {
    mc_lsp_framer *f = mc_lsp_framer_new(64);
    char body[128];
    mc_err err;
    /* byte by byte */
    const char *m = "Content-Length: 7\r\n\r\n{\"a\":1}";
    for (size_t i = 0; i < strlen(m); i++) {
        CHECK_EQ_INT(next_body(f, body, sizeof body, &err), 0);
        mc_lsp_framer_feed(f, m + i, 1);
    }
    CHECK_EQ_INT(next_body(f, body, sizeof body, &err), 1);
    CHECK_EQ_STR(body, "{\"a\":1}");
    CHECK_EQ_INT(next_body(f, body, sizeof body, &err), 0);
    /* several in one read; LF-only headers, other headers, any case */
    const char *two = "content-length: 2\nContent-Type: application/vscode-jsonrpc; charset=utf-8\n\n{}"
                      "X-Other: 1\r\nCONTENT-LENGTH:3\r\n\r\n[1]";
    mc_lsp_framer_feed(f, two, strlen(two));
    CHECK_EQ_INT(next_body(f, body, sizeof body, &err), 1);
    CHECK_EQ_STR(body, "{}");
    CHECK_EQ_INT(next_body(f, body, sizeof body, &err), 1);
    CHECK_EQ_STR(body, "[1]");
    /* malformed headers are dropped, the framer finds the next message */
    const char *bad[] = {
        "Content-Lenght: 2\r\n\r\n{}",               /* no Content-Length */
        "Content-Length: x2\r\n\r\n{}",              /* not a number */
        "Content-Length: -2\r\n\r\n{}",
        "Content-Length: 99999999999999999999\r\n\r\n{}", /* overflow */
        "Content-Length: 2\r\nContent-Length: 3\r\n\r\n{}", /* conflicting */
        "garbage without a colon\r\n\r\n{}",
    };
    for (size_t i = 0; i < MC_ARRAY_LEN(bad); i++) {
        mc_lsp_framer_feed(f, bad[i], strlen(bad[i]));
        const char *ok = "Content-Length: 4\r\n\r\nnext";
        mc_lsp_framer_feed(f, ok, strlen(ok));
        int rc = next_body(f, body, sizeof body, &err);
        CHECK_MSG(rc == MC_EFORMAT, "bad header %zu: rc %d", i, rc);
        int got = 0;
        while ((rc = next_body(f, body, sizeof body, &err)) != 0)
            if (rc == 1) {
                CHECK_EQ_STR(body, "next");
                got++;
            }
        CHECK_MSG(got == 1, "bad header %zu: recovered %d messages", i, got);
    }
    /* a charset other than utf-8: the body is skipped by its length */
    const char *latin = "Content-Type: text/x; charset=latin1\r\nContent-Length: 3\r\n\r\nabcContent-Length: 1\r\n\r\nZ";
    mc_lsp_framer_feed(f, latin, strlen(latin));
    CHECK_EQ_INT(next_body(f, body, sizeof body, &err), MC_EFORMAT);
    CHECK_EQ_INT(next_body(f, body, sizeof body, &err), 1);
    CHECK_EQ_STR(body, "Z");
    /* an oversized body is skipped as it streams in, even across reads */
    const char *big = "Content-Length: 100\r\n\r\n";
    mc_lsp_framer_feed(f, big, strlen(big));
    CHECK_EQ_INT(next_body(f, body, sizeof body, &err), MC_ERANGE);
    char junk[100];
    memset(junk, 'j', sizeof junk);
    mc_lsp_framer_feed(f, junk, 60);
    CHECK_EQ_INT(next_body(f, body, sizeof body, &err), 0);
    mc_lsp_framer_feed(f, junk, 40);
    mc_lsp_framer_feed(f, "Content-Length: 2\r\n\r\nok", 23);
    CHECK_EQ_INT(next_body(f, body, sizeof body, &err), 1);
    CHECK_EQ_STR(body, "ok");
    /* a header section that never ends */
    char hdr[9000];
    memset(hdr, 'h', sizeof hdr);
    mc_lsp_framer_feed(f, hdr, sizeof hdr);
    CHECK_EQ_INT(next_body(f, body, sizeof body, &err), MC_EFORMAT);
    mc_lsp_framer_feed(f, "\r\nContent-Length: 1\r\n\r\n!", 24);
    int rc, got = 0;
    while ((rc = next_body(f, body, sizeof body, &err)) != 0)
        got += rc == 1 && !strcmp(body, "!");
    CHECK_EQ_INT(got, 1);
    mc_lsp_framer_free(f);
    /* framing */
    char *out;
    size_t n;
    MC_REQUIRE(mc_lsp_frame("{}", 2, &out, &n) == 0);
    CHECK_EQ_STR(out, "Content-Length: 2\r\n\r\n{}");
    CHECK_EQ_INT(n, 23);
    free(out);
}

/* ---- in process: documents after edits ----------------------------------------------------- */

typedef struct outbuf {
    mc_lsp_framer *fr;
    json_t *msgs;
} outbuf;

static int out_write(void *ud, const char *d, size_t n) {
    outbuf *o = ud;
    mc_lsp_framer_feed(o->fr, d, n);
    const char *b;
    size_t len;
    mc_err err;
    while (mc_lsp_framer_next(o->fr, &b, &len, &err) == 1)
        json_array_append_new(o->msgs, json_loadb(b, len, 0, NULL));
    return 0;
}

static void feed_json(mc_lsp_server *s, json_t *m) {
    char *b = json_dumps(m, JSON_COMPACT);
    char *f;
    size_t n;
    MC_REQUIRE(mc_lsp_frame(b, strlen(b), &f, &n) == 0);
    mc_lsp_server_feed(s, f, n);
    free(f);
    free(b);
    json_decref(m);
}

static void edits_with(bool utf8) {
    outbuf o = {mc_lsp_framer_new(0), json_array()};
    mc_lsp_params p = mc_lsp_params_default();
    p.load_files = false;
    p.log_level = -1;
    mc_lsp_server *s;
    MC_REQUIRE(mc_lsp_server_new(&p, out_write, &o, &s, NULL) == 0);
    feed_json(s, json_pack("{s:s, s:i, s:s, s:{s:{s:{s:[s]}}, s:s}}", "jsonrpc", "2.0", "id", 1,
                           "method", "initialize", "params", "capabilities", "general",
                           "positionEncodings", utf8 ? "utf-8" : "utf-16", "rootUri",
                           "file:///proj"));
    const char *uri = "file:///proj/m.py";
    /* line 0: "é😀x = 1"   line 1: "y = 2\r"   line 2: "" */
    feed_json(s, json_pack("{s:s, s:s, s:{s:{s:s, s:s, s:i, s:s}}}", "jsonrpc", "2.0", "method",
                           "textDocument/didOpen", "params", "textDocument", "uri", uri,
                           "languageId", "python", "version", 1, "text",
                           "\xc3\xa9\xf0\x9f\x98\x80x = 1\ny = 2\r\n"));
    /* replace "x" (after é😀: 3 UTF-16 units, 6 bytes) by "zé", insert "ü" at the end of
     * line 1 (character past its end: clamped before "\r"), then delete "é" */
    int x0 = utf8 ? 6 : 3, x1 = utf8 ? 7 : 4;
    json_t *changes = json_pack(
        "[{s:{s:{s:i, s:i}, s:{s:i, s:i}}, s:s}, {s:{s:{s:i, s:i}, s:{s:i, s:i}}, s:s},"
        " {s:{s:{s:i, s:i}, s:{s:i, s:i}}, s:s}]",
        "range", "start", "line", 0, "character", x0, "end", "line", 0, "character", x1, "text",
        "z\xc3\xa9", "range", "start", "line", 1, "character", 40, "end", "line", 1, "character",
        50, "text", "\xc3\xbc", "range", "start", "line", 0, "character", 0, "end", "line", 0,
        "character", utf8 ? 2 : 1, "text", "");
    feed_json(s, json_pack("{s:s, s:s, s:{s:{s:s, s:i}, s:o}}", "jsonrpc", "2.0", "method",
                           "textDocument/didChange", "params", "textDocument", "uri", uri,
                           "version", 2, "contentChanges", changes));
    MC_REQUIRE(s->n_docs == 1);
    CHECK_EQ_STR(s->docs[0].text->data, "\xf0\x9f\x98\x80z\xc3\xa9 = 1\ny = 2\xc3\xbc\r\n");
    CHECK_EQ_INT(s->docs[0].version, 2);
    /* full sync replaces everything; a later incremental change applies to it */
    feed_json(s, json_pack("{s:s, s:s, s:{s:{s:s, s:i}, s:[{s:s}, {s:{s:{s:i, s:i}, s:{s:i, s:i}}, s:s}]}}",
                           "jsonrpc", "2.0", "method", "textDocument/didChange", "params",
                           "textDocument", "uri", uri, "version", 3, "contentChanges", "text",
                           "ab\ncd", "range", "start", "line", 1, "character", 1, "end", "line",
                           1, "character", 1, "text", "\xe2\x82\xac"));
    CHECK_EQ_STR(s->docs[0].text->data, "ab\nc\xe2\x82\xac" "d");
    /* a bad change is skipped, the good ones apply */
    feed_json(s, json_pack("{s:s, s:s, s:{s:{s:s, s:i}, s:[{s:{s:s}, s:s}, {s:s}]}}", "jsonrpc",
                           "2.0", "method", "textDocument/didChange", "params", "textDocument",
                           "uri", uri, "version", 4, "contentChanges", "range", "start", "bad",
                           "text", "X", "text", "new"));
    CHECK_EQ_STR(s->docs[0].text->data, "new");
    /* the initialize reply advertises the encoding */
    json_t *r = json_array_get(o.msgs, 0);
    CHECK_EQ_STR(mc__json_str(json_object_get(json_object_get(r, "result"), "capabilities"),
                              "positionEncoding"),
                 utf8 ? "utf-8" : "utf-16");
    mc_lsp_server_free(s);
    mc_lsp_framer_free(o.fr);
    json_decref(o.msgs);
}

MC_TEST(lsp_document_edits_utf16) { edits_with(false); }
MC_TEST(lsp_document_edits_utf8) { edits_with(true); }

/* ---- the binary: life cycle -------------------------------------------------------------- */

MC_TEST(lsp_lifecycle_and_exit_codes) {
    srv s;
    srv_start(&s, NULL);
    /* requests before initialize: ServerNotInitialized; notifications: dropped */
    notify(&s, "textDocument/didOpen", json_pack("{s:{s:s, s:s}}", "textDocument", "uri", "file:///a", "text", "x"));
    json_int_t id = complete_req(&s, "file:///a", 0, 0, 2);
    json_t *r = wait_response(&s, id, 5000);
    CHECK_EQ_INT(error_code(r), LSP_SERVER_NOT_INITIALIZED);
    r = initialize(&s, NULL, NULL, false, false);
    json_t *caps = json_object_get(json_object_get(r, "result"), "capabilities");
    CHECK(json_is_object(json_object_get(caps, "inlineCompletionProvider")));
    CHECK_EQ_STR(mc__json_str(caps, "positionEncoding"), "utf-16");
    json_t *sync = json_object_get(caps, "textDocumentSync");
    CHECK_EQ_INT(json_integer_value(json_object_get(sync, "change")), 2);
    CHECK(json_is_true(json_object_get(sync, "openClose")));
    CHECK_EQ_STR(mc__json_str(json_object_get(json_object_get(r, "result"), "serverInfo"), "name"), "mccom");
    CHECK_EQ_STR(json_string_value(json_array_get(
                     json_object_get(json_object_get(caps, "executeCommandProvider"), "commands"), 0)),
                 "mccom.accept");
    /* the document opened before initialize does not exist */
    id = complete_req(&s, "file:///a", 0, 0, 2);
    CHECK_EQ_INT(error_code(wait_response(&s, id, 5000)), RPC_INVALID_PARAMS);
    /* a second initialize is refused */
    id = request(&s, "initialize", json_pack("{s:{}}", "capabilities"));
    CHECK_EQ_INT(error_code(wait_response(&s, id, 5000)), RPC_INVALID_REQUEST);
    /* without a model, a completion fails with a reason */
    open_doc(&s, "file:///a", "hello");
    id = complete_req(&s, "file:///a", 0, 5, 2);
    r = wait_response(&s, id, 5000);
    CHECK_EQ_INT(error_code(r), LSP_REQUEST_FAILED);
    CHECK(strstr(mc__json_str(json_object_get(r, "error"), "message"), "no small model") != NULL);
    /* after shutdown: requests are invalid, exit gives 0 */
    id = request(&s, "shutdown", NULL);
    r = wait_response(&s, id, 5000); /* (json_is_null evaluates its argument twice) */
    CHECK(r && json_is_null(json_object_get(r, "result")));
    id = complete_req(&s, "file:///a", 0, 5, 2);
    CHECK_EQ_INT(error_code(wait_response(&s, id, 5000)), RPC_INVALID_REQUEST);
    notify(&s, "exit", NULL);
    int st = -1;
    CHECK(mc_lsp_client_wait(s.c, 10000, &st) == 1);
    CHECK_EQ_INT(st, 0);
    srv_stop(&s);

    /* exit without shutdown: 1; end of input after shutdown: 0; without: 1 */
    srv_start(&s, NULL);
    initialize(&s, NULL, NULL, true, false);
    notify(&s, "exit", NULL);
    CHECK(mc_lsp_client_wait(s.c, 10000, &st) == 1);
    CHECK_EQ_INT(st, 1);
    srv_stop(&s);
    srv_start(&s, NULL);
    r = initialize(&s, NULL, NULL, true, false);
    CHECK_EQ_STR(mc__json_str(json_object_get(json_object_get(r, "result"), "capabilities"), "positionEncoding"),
                 "utf-8");
    id = request(&s, "shutdown", NULL);
    wait_response(&s, id, 5000);
    mc_lsp_client_close_input(s.c);
    CHECK(mc_lsp_client_wait(s.c, 10000, &st) == 1);
    CHECK_EQ_INT(st, 0);
    srv_stop(&s);
    srv_start(&s, NULL);
    mc_lsp_client_close_input(s.c);
    CHECK(mc_lsp_client_wait(s.c, 10000, &st) == 1);
    CHECK_EQ_INT(st, 1);
    srv_stop(&s);
}

/* ---- the binary: malformed input ------------------------------------------------------------ */

/* Send a probe (an unknown request) and return the messages that came before
 * its reply (a new array), checking the probe's MethodNotFound. */
static json_t *until_probe(srv *s) {
    json_int_t id = request(s, "mccom/probe", NULL);
    json_t *before = json_array();
    for (;;) {
        json_t *m = recv_any(s, 10000);
        if (!m) {
            mc_test_fail_at(__FILE__, __LINE__, "the server stopped answering");
            dump_log(s);
            mc_test_abort();
        }
        json_t *mid = json_object_get(m, "id");
        if (json_is_integer(mid) && json_integer_value(mid) == id && !json_object_get(m, "method")) {
            CHECK_EQ_INT(error_code(m), RPC_METHOD_NOT_FOUND);
            json_decref(m);
            return before;
        }
        json_array_append_new(before, m);
    }
}

/* Send bytes; expect exactly one error reply with this code and id (-1: null), or
 * none (code 0). */
static void expect_after(srv *s, const char *bytes, size_t n, int code, json_int_t id, const char *what) {
    send_raw(s, bytes, n);
    json_t *got = until_probe(s);
    if (code == 0) {
        CHECK_MSG(json_array_size(got) == 0, "%s: expected no reply, got %zu messages", what,
                  json_array_size(got));
    } else {
        CHECK_MSG(json_array_size(got) == 1, "%s: expected one reply, got %zu", what,
                  json_array_size(got));
        json_t *m = json_array_get(got, 0);
        CHECK_MSG(error_code(m) == code, "%s: code %d, expected %d", what, error_code(m), code);
        json_t *mid = json_object_get(m, "id");
        if (id == -2)
            CHECK_MSG(json_is_string(mid), "%s: the id should be the request's string", what);
        else if (id < 0)
            CHECK_MSG(json_is_null(mid), "%s: the id should be null", what);
        else
            CHECK_MSG(json_is_integer(mid) && json_integer_value(mid) == id, "%s: wrong id", what);
    }
    json_decref(got);
}

static void expect_framed(srv *s, const char *body, int code, json_int_t id, const char *what) {
    char *f;
    size_t n;
    MC_REQUIRE(mc_lsp_frame(body, strlen(body), &f, &n) == 0);
    expect_after(s, f, n, code, id, what);
    free(f);
}

MC_TEST(lsp_malformed_input) {
    srv s;
    srv_start(&s, "--max-message-bytes", "4096", NULL);
    initialize(&s, NULL, NULL, false, false);
    expect_framed(&s, "{\"jsonrpc\":\"2.0\",", RPC_PARSE_ERROR, -1, "truncated JSON");
    expect_framed(&s, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"x\"} trailing", RPC_PARSE_ERROR, -1, "trailing bytes");
    expect_framed(&s, "\xff\xfe", RPC_PARSE_ERROR, -1, "not UTF-8");
    expect_framed(&s, "[]", RPC_INVALID_REQUEST, -1, "a batch");
    expect_framed(&s, "42", RPC_INVALID_REQUEST, -1, "a number");
    expect_framed(&s, "{\"jsonrpc\":\"1.0\",\"id\":77,\"method\":\"x\"}", RPC_INVALID_REQUEST, 77, "jsonrpc 1.0");
    expect_framed(&s, "{\"id\":76,\"method\":\"x\"}", RPC_INVALID_REQUEST, 76, "no jsonrpc");
    expect_framed(&s, "{\"jsonrpc\":\"2.0\",\"id\":78,\"method\":5}", RPC_INVALID_REQUEST, 78, "method not a string");
    expect_framed(&s, "{\"jsonrpc\":\"2.0\",\"id\":1.5,\"method\":\"x\"}", RPC_INVALID_REQUEST, -1, "a real id");
    expect_framed(&s, "{\"jsonrpc\":\"2.0\",\"id\":[1],\"method\":\"x\"}", RPC_INVALID_REQUEST, -1, "an array id");
    expect_framed(&s, "{\"jsonrpc\":\"2.0\",\"id\":79,\"method\":\"x\",\"params\":\"s\"}", RPC_INVALID_REQUEST, 79, "string params");
    expect_framed(&s, "{\"jsonrpc\":\"2.0\",\"id\":80,\"method\":\"no/such\"}", RPC_METHOD_NOT_FOUND, 80, "unknown request");
    expect_framed(&s, "{\"jsonrpc\":\"2.0\",\"id\":\"str-id\",\"method\":\"no/such\"}", RPC_METHOD_NOT_FOUND, -2, "string id");
    expect_framed(&s, "{\"jsonrpc\":\"2.0\",\"method\":\"no/such\",\"params\":{}}", 0, 0, "unknown notification");
    expect_framed(&s, "{\"jsonrpc\":\"2.0\",\"method\":\"$/setTrace\",\"params\":{\"value\":\"off\"}}", 0, 0, "$/ notification");
    expect_framed(&s, "{\"jsonrpc\":\"2.0\",\"id\":81}", RPC_INVALID_REQUEST, 81, "neither request nor response");
    expect_framed(&s, "{\"jsonrpc\":\"2.0\",\"id\":5,\"result\":1}", 0, 0, "a response to nothing");
    /* wrong types in params */
    expect_framed(&s, "{\"jsonrpc\":\"2.0\",\"id\":82,\"method\":\"textDocument/inlineCompletion\",\"params\":"
                      "{\"textDocument\":{\"uri\":\"file:///a\"},\"position\":{\"line\":\"0\",\"character\":0}}}",
                  RPC_INVALID_PARAMS, 82, "position of strings");
    expect_framed(&s, "{\"jsonrpc\":\"2.0\",\"id\":83,\"method\":\"textDocument/inlineCompletion\",\"params\":"
                      "{\"textDocument\":{\"uri\":\"file:///a\"},\"position\":{\"line\":-1,\"character\":0}}}",
                  RPC_INVALID_PARAMS, 83, "a negative line");
    expect_framed(&s, "{\"jsonrpc\":\"2.0\",\"id\":84,\"method\":\"textDocument/inlineCompletion\",\"params\":[1]}",
                  RPC_INVALID_PARAMS, 84, "array params");
    expect_framed(&s, "{\"jsonrpc\":\"2.0\",\"method\":\"textDocument/didOpen\",\"params\":{\"textDocument\":{\"uri\":5,\"text\":[]}}}",
                  0, 0, "didOpen of wrong types");
    expect_framed(&s, "{\"jsonrpc\":\"2.0\",\"method\":\"textDocument/didChange\",\"params\":{\"textDocument\":{\"uri\":\"file:///none\"},\"contentChanges\":[]}}",
                  0, 0, "didChange of a closed document");
    expect_framed(&s, "{\"jsonrpc\":\"2.0\",\"method\":\"mccom/didReject\",\"params\":{\"id\":\"x\"}}", 0, 0, "didReject without a document");
    expect_framed(&s, "{\"jsonrpc\":\"2.0\",\"method\":\"$/cancelRequest\",\"params\":{\"id\":12345}}", 0, 0, "cancel of nothing");
    /* framing: dropped with a log line, never answered */
    const char *nolen = "Content-Type: application/vscode-jsonrpc\r\n\r\n{\"jsonrpc\":\"2.0\",\"id\":90,\"method\":\"x\"}";
    expect_after(&s, nolen, strlen(nolen), 0, 0, "no Content-Length");
    const char *badlen = "Content-Length: 1x\r\n\r\n{}";
    expect_after(&s, badlen, strlen(badlen), 0, 0, "bad Content-Length");
    const char *huge = "Content-Length: 18446744073709551616000\r\n\r\n";
    expect_after(&s, huge, strlen(huge), 0, 0, "overflowing Content-Length");
    char big[5200];
    int h = snprintf(big, sizeof big, "Content-Length: 5000\r\n\r\n");
    memset(big + h, ' ', 5000);
    expect_after(&s, big, (size_t)h + 5000, 0, 0, "a body over --max-message-bytes");
    const char junk[] = "\x00\x01\xff garbage\r\n\r\n\x00";
    expect_after(&s, junk, sizeof junk - 1, 0, 0, "binary junk");
    /* partial reads and several messages in one read */
    const char *req = "Content-Length: 51\r\n\r\n{\"jsonrpc\":\"2.0\",\"id\":91,\"method\":\"no/such/method\"}";
    size_t rl = strlen(req);
    send_raw(&s, req, 10);
    usleep(50000);
    send_raw(&s, req + 10, 20);
    usleep(50000);
    send_raw(&s, req + 30, rl - 30);
    json_t *m = recv_any(&s, 5000);
    CHECK(m && json_integer_value(json_object_get(m, "id")) == 91 && error_code(m) == RPC_METHOD_NOT_FOUND);
    json_decref(m);
    char three[512];
    snprintf(three, sizeof three, "%s%s%s", req, req, "Content-Length: 40\n\n{\"jsonrpc\":\"2.0\",\"id\":92,\"method\":\"a/b\"}");
    send_raw(&s, three, strlen(three));
    json_int_t want[] = {91, 91, 92};
    for (int i = 0; i < 3; i++) {
        m = recv_any(&s, 5000);
        CHECK(m && json_integer_value(json_object_get(m, "id")) == want[i]);
        json_decref(m);
    }
    /* still alive, and leaves cleanly */
    shutdown_exit(&s, 0);
    char *log = read_file(s.log);
    CHECK(log && strstr(log, "input dropped") && strstr(log, "exceeds the 4096-byte limit") &&
          strstr(log, "bad message"));
    free(log);
    srv_stop(&s);
}

/* ---- the binary with models ------------------------------------------------------------------ */

/* A copy of a real Python file, or a skip when the system has none. */
static char *python_file(const char *name) {
    char p[256];
    snprintf(p, sizeof p, "/usr/lib/python3.11/json/%s", name);
    char *t = read_file(p);
    if (!t)
        MC_SKIP("no /usr/lib/python3.11/json (Debian 12's python3.11)");
    return t;
}

/* Byte offset of (line, col-in-bytes). */
static size_t offset_of(const char *text, int line, int col) {
    size_t o = 0;
    for (int l = 0; l < line; l++) {
        const char *nl = strchr(text + o, '\n');
        MC_REQUIRE(nl);
        o = (size_t)(nl - text) + 1;
    }
    return o + (size_t)col;
}

static json_t *opts(float tau, bool retrieval, const char *llm) {
    /* no wall-clock LLM budget: the answers are compared with local_open's (budget 0 too),
     * and a loaded machine or a sanitizer build must not change them */
    json_t *o = json_pack("{s:s, s:f, s:b, s:i}", "slmModel", slm_path(), "tau", (double)tau,
                          "retrieval", retrieval, "llmBudgetMs", 0);
    if (llm)
        json_object_set_new(o, "llmModel", json_string(llm));
    return o;
}

MC_TEST(lsp_completion_equals_cascade_with_index_progress) {
    char *dec = python_file("decoder.py");
    char *scan = python_file("scanner.py");
    const char *root = tmp_path("repo");
    MC_REQUIRE(mkdir(root, 0755) == 0);
    char p[700];
    snprintf(p, sizeof p, "%s/decoder.py", root);
    write_file(p, dec);
    snprintf(p, sizeof p, "%s/scanner.py", root);
    write_file(p, scan);
    srv s;
    srv_start(&s, "--threads", "1", NULL);
    initialize(&s, root, opts(0.0f, true, NULL), false, true);
    /* the index is built in the background, with $/progress begin, report(s), end */
    json_t *b = wait_note(&s, "$/progress", 20000);
    MC_REQUIRE(b);
    CHECK_EQ_STR(mc__json_str(json_object_get(json_object_get(b, "params"), "value"), "kind"), "begin");
    CHECK_EQ_STR(mc__json_str(json_object_get(b, "params"), "token"), "mccom/index");
    json_decref(b);
    int n_reports = 0;
    bool ended = false;
    for (int i = 0; i < 100 && !ended; i++) {
        json_t *e = wait_note(&s, "$/progress", 20000);
        MC_REQUIRE(e);
        json_t *ev = json_object_get(json_object_get(e, "params"), "value");
        const char *kind = mc__json_str(ev, "kind");
        if (kind && !strcmp(kind, "report")) {
            n_reports++;
        } else {
            CHECK_EQ_STR(kind, "end");
            CHECK(mc__json_str(ev, "message") && strstr(mc__json_str(ev, "message"), "2 files"));
            ended = true;
        }
        json_decref(e);
    }
    CHECK(ended && n_reports >= 1);

    char uri[800];
    snprintf(uri, sizeof uri, "file://%s/decoder.py", root);
    open_doc(&s, uri, dec);
    local L;
    local_open(&L, NULL, root, 0.0f, 0);
    const int at[][2] = {{30, 8}, {60, 8}, {200, 8}, {200, 10}};
    int n_copy = 0;
    for (size_t i = 0; i < MC_ARRAY_LEN(at); i++) {
        json_int_t id = complete_req(&s, uri, at[i][0], at[i][1], 2);
        json_t *r = wait_response(&s, id, 30000);
        MC_REQUIRE(r);
        char *want = local_suggest(&L, "decoder.py", dec, offset_of(dec, at[i][0], at[i][1]));
        CHECK_MSG(item_text(r) && !strcmp(item_text(r), want), "at %d:%d server \"%s\" in process \"%s\"",
                  at[i][0], at[i][1], item_text(r) ? item_text(r) : "(none)", want);
        json_t *range = json_object_get(first_item(r), "range");
        CHECK_EQ_INT(json_integer_value(json_object_get(json_object_get(range, "start"), "line")), at[i][0]);
        CHECK_EQ_INT(json_integer_value(json_object_get(json_object_get(range, "end"), "character")), at[i][1]);
        CHECK_EQ_STR(mc__json_str(item_mccom(r), "source"),
                     L.last_source == MC_SRC_COPY ? "copy" : "slm");
        if (L.last_source == MC_SRC_COPY) { /* a copy line says where it came from */
            json_t *from = json_object_get(item_mccom(r), "copiedFrom");
            CHECK(json_is_object(from) && mc__json_str(from, "file"));
            CHECK(json_is_number(json_object_get(item_mccom(r), "precision")));
            n_copy++;
        }
        free(want);
    }
    CHECK(n_copy > 0); /* decoder.py repeats itself: the copy tier answers somewhere */
    local_close(&L);
    shutdown_exit(&s, 0);
    srv_stop(&s);
    free(dec);
    free(scan);
}

/* UTF-16 positions with non-ASCII text through the binary: the server's
 * document is checked through what it answers — the clamped cursor of a
 * request past a line's end is that line's length in UTF-16 units, and the
 * suggestion is the cascade's for the expected text. */
MC_TEST(lsp_edits_utf16_through_binary) {
    srv s;
    srv_start(&s, "--threads", "1", NULL);
    initialize(&s, NULL, opts(0.0f, false, NULL), false, false);
    const char *uri = "file:///tmp/mccom-test/story.py";
    open_doc(&s, uri, "# caf\xc3\xa9 \xf0\x9f\x98\x80 na\xc3\xafve\nOnce upon a time, there was a girl.\nShe loved to\n");
    /* line 0 "# café 😀 naïve": replace "😀" (UTF-16 7..9) by "☕x"; line 2: append " play
     * with 🐱" at character 12; line 1: delete "a " before girl (31..33) */
    json_t *changes = json_pack(
        "[{s:{s:{s:i, s:i}, s:{s:i, s:i}}, s:s}, {s:{s:{s:i, s:i}, s:{s:i, s:i}}, s:s},"
        " {s:{s:{s:i, s:i}, s:{s:i, s:i}}, s:s}]",
        "range", "start", "line", 0, "character", 7, "end", "line", 0, "character", 9, "text",
        "\xe2\x98\x95x", "range", "start", "line", 2, "character", 12, "end", "line", 2,
        "character", 12, "text", " play with \xf0\x9f\x90\xb1", "range", "start", "line", 1,
        "character", 27, "end", "line", 1, "character", 29, "text", "");
    notify(&s, "textDocument/didChange",
           json_pack("{s:{s:s, s:i}, s:o}", "textDocument", "uri", uri, "version", 2,
                     "contentChanges", changes));
    const char *want_text = "# caf\xc3\xa9 \xe2\x98\x95x na\xc3\xafve\nOnce upon a time, there was girl.\n"
                            "She loved to play with \xf0\x9f\x90\xb1\n";
    /* UTF-16 lengths: line 0 "# café ☕x naïve" = 15, line 2 = 12 + 11 + 2 = 25 */
    const int lens[] = {15, 33, 25};
    local L;
    local_open(&L, NULL, NULL, 0.0f, 0);
    int n_checked = 0;
    for (int line = 0; line < 3; line++) {
        json_int_t id = complete_req(&s, uri, line, 999, 2);
        json_t *r = wait_response(&s, id, 30000);
        MC_REQUIRE(r);
        size_t cur = offset_of(want_text, line + 1, 0) - 1;
        char *want = local_suggest(&L, "/tmp/mccom-test/story.py", want_text, cur);
        json_t *it = first_item(r);
        if (want[0]) {
            MC_REQUIRE(it);
            json_t *st = json_object_get(json_object_get(it, "range"), "start");
            CHECK_EQ_INT(json_integer_value(json_object_get(st, "line")), line);
            CHECK_EQ_INT(json_integer_value(json_object_get(st, "character")), lens[line]);
            CHECK_MSG(!strcmp(item_text(r), want), "line %d: server \"%s\" in process \"%s\"", line,
                      item_text(r), want);
            n_checked++;
        } else {
            CHECK(it == NULL);
        }
        free(want);
    }
    CHECK_MSG(n_checked >= 2, "only %d lines had a suggestion to compare", n_checked);
    /* full sync, then an incremental change after a surrogate pair */
    notify(&s, "textDocument/didChange",
           json_pack("{s:{s:s, s:i}, s:[{s:s}, {s:{s:{s:i, s:i}, s:{s:i, s:i}}, s:s}]}",
                     "textDocument", "uri", uri, "version", 3, "contentChanges", "text",
                     "\xf0\x9f\x90\xb1 Lily saw a big\n", "range", "start", "line", 0,
                     "character", 3, "end", "line", 0, "character", 7, "text", "Tom"));
    json_int_t id = complete_req(&s, uri, 0, 100, 2);
    json_t *r = wait_response(&s, id, 30000);
    const char *t2 = "\xf0\x9f\x90\xb1 Tom saw a big\n";
    char *want = local_suggest(&L, "/tmp/mccom-test/story.py", t2, strlen(t2) - 1);
    CHECK(want[0] != '\0');
    if (want[0]) {
        CHECK_EQ_INT(json_integer_value(json_object_get(json_object_get(json_object_get(first_item(r), "range"), "start"), "character")), 16);
        CHECK_EQ_STR(item_text(r), want);
    }
    free(want);
    local_close(&L);
    shutdown_exit(&s, 0);
    srv_stop(&s);
}

MC_TEST(lsp_type_through_reuses_the_suggestion) {
    char *dec = python_file("decoder.py");
    srv s;
    srv_start(&s, "--threads", "1", NULL);
    initialize(&s, NULL, opts(0.0f, false, NULL), false, false);
    const char *uri = "file:///tmp/mccom-test/decoder.py";
    open_doc(&s, uri, dec);
    json_int_t id = complete_req(&s, uri, 30, 8, 2);
    json_t *r = wait_response(&s, id, 30000);
    const char *t = item_text(r);
    MC_REQUIRE(t && strlen(t) >= 4 && (unsigned char)t[0] < 0x80 && (unsigned char)t[1] < 0x80);
    char *sug = strdup(t);
    json_int_t sid = item_id(r);
    CHECK(json_is_false(json_object_get(item_mccom(r), "reused")));
    notify(&s, "mccom/didShow", json_pack("{s:{s:s}, s:I}", "textDocument", "uri", uri, "id", sid));
    /* type its first two characters */
    char two[3] = {sug[0], sug[1], 0};
    notify(&s, "textDocument/didChange",
           json_pack("{s:{s:s, s:i}, s:[{s:{s:o, s:o}, s:s}]}", "textDocument", "uri", uri,
                     "version", 2, "contentChanges", "range", "start", position(30, 8), "end",
                     position(30, 8), "text", two));
    id = complete_req(&s, uri, 30, 10, 2);
    r = wait_response(&s, id, 30000);
    CHECK_EQ_STR(item_text(r), sug + 2);
    CHECK_EQ_INT(item_id(r), sid);
    CHECK(json_is_true(json_object_get(item_mccom(r), "reused")));
    CHECK_EQ_INT(json_integer_value(json_object_get(json_object_get(json_object_get(first_item(r), "range"), "start"), "character")), 10);
    /* a diverging character: a new suggestion from the cascade */
    char bad[2] = {sug[2] == '#' ? '@' : '#', 0};
    notify(&s, "textDocument/didChange",
           json_pack("{s:{s:s, s:i}, s:[{s:{s:o, s:o}, s:s}]}", "textDocument", "uri", uri,
                     "version", 3, "contentChanges", "range", "start", position(30, 10), "end",
                     position(30, 10), "text", bad));
    id = complete_req(&s, uri, 30, 11, 2);
    r = wait_response(&s, id, 30000);
    CHECK(item_id(r) != sid || first_item(r) == NULL);
    if (first_item(r))
        CHECK(json_is_false(json_object_get(item_mccom(r), "reused")));
    /* the same sequence in process gives the same texts */
    local L;
    local_open(&L, NULL, NULL, 0.0f, 0);
    char *w1 = local_suggest(&L, "/tmp/mccom-test/decoder.py", dec, offset_of(dec, 30, 8));
    CHECK_EQ_STR(w1, sug);
    size_t at = offset_of(dec, 30, 8), n = strlen(dec);
    char *d2 = malloc(n + 4);
    memcpy(d2, dec, at);
    memcpy(d2 + at, two, 2);
    memcpy(d2 + at + 2, bad, 1);
    memcpy(d2 + at + 3, dec + at, n - at + 1);
    char *w3 = local_suggest(&L, "/tmp/mccom-test/decoder.py", d2, at + 3);
    CHECK_EQ_STR(item_text(r) ? item_text(r) : "", w3);
    free(w1);
    free(w3);
    free(d2);
    local_close(&L);
    free(sug);
    shutdown_exit(&s, 0);
    srv_stop(&s);
    free(dec);
}

MC_TEST(lsp_reject_pushes_the_large_models_line) {
    char *dec = python_file("decoder.py");
    const char *llm = llm_path();
    srv s;
    srv_start(&s, "--threads", "1", NULL);
    initialize(&s, NULL, opts(0.0f, false, llm), false, false);
    const char *uri = "file:///tmp/mccom-test/decoder.py";
    open_doc(&s, uri, dec);
    local L;
    local_open(&L, llm, NULL, 0.0f, 0);
    const char *path = "/tmp/mccom-test/decoder.py";

    json_int_t id = complete_req(&s, uri, 30, 8, 2);
    json_t *r = wait_response(&s, id, 30000);
    MC_REQUIRE(first_item(r));
    json_int_t sid = item_id(r);
    CHECK_EQ_STR(mc__json_str(item_mccom(r), "source"), "slm");
    char *w_slm = local_suggest(&L, path, dec, offset_of(dec, 30, 8));
    CHECK_EQ_STR(item_text(r), w_slm);
    /* Esc: the server escalates at the last request's cursor and pushes the line */
    notify(&s, "mccom/didShow", json_pack("{s:{s:s}, s:I}", "textDocument", "uri", uri, "id", sid));
    notify(&s, "mccom/didReject", json_pack("{s:{s:s}, s:I}", "textDocument", "uri", uri, "id", sid));
    json_t *push = wait_note(&s, "mccom/suggestion", 30000);
    MC_REQUIRE(push);
    json_t *pp = json_object_get(push, "params");
    json_t *it = json_array_get(json_object_get(pp, "items"), 0);
    mc_session_rejected(L.s);
    char *w_llm = local_suggest(&L, path, dec, offset_of(dec, 30, 8));
    CHECK_EQ_STR(mc__json_str(it, "insertText"), w_llm);
    CHECK_MSG(strcmp(w_llm, w_slm) != 0, "the large model said what the small one said");
    json_t *mc = json_object_get(it, "mccom");
    CHECK_EQ_STR(mc__json_str(mc, "source"), "llm");
    CHECK_EQ_STR(mc__json_str(mc, "path"), "rejection");
    CHECK_EQ_INT(json_integer_value(json_object_get(json_object_get(pp, "position"), "line")), 30);
    CHECK_EQ_INT(json_integer_value(json_object_get(json_object_get(pp, "textDocument"), "version")), 1);
    json_int_t lid = json_integer_value(json_object_get(mc, "id"));
    CHECK(lid != sid);
    /* ... and the next request at that cursor returns it at once */
    id = complete_req(&s, uri, 30, 8, 2);
    r = wait_response(&s, id, 30000);
    CHECK_EQ_STR(item_text(r), w_llm);
    CHECK_EQ_INT(item_id(r), lid);
    CHECK(json_is_true(json_object_get(item_mccom(r), "reused")));
    json_decref(push);

    /* an explicit request (triggerKind Invoked) re-asks the large model */
    id = complete_req(&s, uri, 60, 8, 2);
    r = wait_response(&s, id, 30000);
    char *w2 = local_suggest(&L, path, dec, offset_of(dec, 60, 8));
    CHECK_EQ_STR(item_text(r), w2);
    id = complete_req(&s, uri, 60, 8, 1);
    r = wait_response(&s, id, 30000);
    mc_cascade_doc d = {path, dec, strlen(dec), offset_of(dec, 60, 8), -1, 1, 0};
    const mc_suggestion *esc;
    mc_err err;
    MC_REQUIRE(mc_session_escalate(L.s, &d, NULL, &esc, &err) == 0);
    char *w_esc = strndup(esc->text, mc__lsp_utf8_valid_prefix(esc->text, esc->len));
    CHECK_EQ_STR(item_text(r) ? item_text(r) : "", w_esc);
    free(w_esc);
    CHECK_EQ_STR(mc__json_str(item_mccom(r), "source"), "llm");
    /* didAccept of the whole suggestion ends it: the next request runs the cascade */
    notify(&s, "mccom/didAccept", json_pack("{s:{s:s}, s:I}", "textDocument", "uri", uri, "id", item_id(r)));
    id = complete_req(&s, uri, 60, 8, 2);
    r = wait_response(&s, id, 30000);
    CHECK(json_is_false(json_object_get(item_mccom(r), "reused")));
    free(w_slm);
    free(w_llm);
    free(w2);
    local_close(&L);
    shutdown_exit(&s, 0);
    srv_stop(&s);
    free(dec);
}

/* A small random model that never ends its line by itself (its greedy tokens
 * avoid newline and end-of-text): with maxLineTokens 1024 a request runs for
 * about a second — slow enough to cancel. It uses stories260K's vocabulary. */
static const char *slow_model(void) {
    const char *p = tmp_path("slow.gguf");
    if (access(p, R_OK) == 0)
        return p;
    if (access("build/tools/mkmodel", X_OK) != 0) {
        mc_test_fail_at(__FILE__, __LINE__, "build/tools/mkmodel is missing (make tools)");
        mc_test_abort();
    }
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "build/tools/mkmodel -q --arch llama --vocab 512 --embd 256 --layers 4 --heads 4 "
             "--ff 768 --ctx 2048 --seed 1 %s",
             p);
    MC_REQUIRE(system(cmd) == 0);
    return p;
}

MC_TEST_T(lsp_cancel_stops_the_work, 120) {
    srv s;
    srv_start(&s, "--threads", "1", NULL);
    json_t *o = json_pack("{s:s, s:s, s:f, s:b, s:i, s:i}", "slmModel", slow_model(), "tokenizer",
                          slm_path(), "tau", 0.0, "retrieval", 0, "maxLineTokens", 1024,
                          "debounceMs", 5000);
    initialize(&s, NULL, o, false, false);
    const char *uri = "file:///tmp/mccom-test/a.py";
    open_doc(&s, uri, "def f(x):\n    return ");
    /* 1. cancelled while it waits out the debounce */
    double t0 = mc_time_s();
    json_int_t id = complete_req(&s, uri, 1, 11, 2);
    usleep(100000);
    notify(&s, "$/cancelRequest", json_pack("{s:I}", "id", id));
    json_t *r = wait_response(&s, id, 10000);
    CHECK_EQ_INT(error_code(r), LSP_REQUEST_CANCELLED);
    CHECK_MSG(mc_time_s() - t0 < 3.0, "the debounce wait was not interrupted (%.2f s)", mc_time_s() - t0);
    notify(&s, "workspace/didChangeConfiguration",
           json_pack("{s:{s:{s:i}}}", "settings", "mccom", "debounceMs", 0));
    /* 2. how long a whole request takes */
    t0 = mc_time_s();
    id = complete_req(&s, uri, 1, 11, 2);
    r = wait_response(&s, id, 300000);
    double full = mc_time_s() - t0;
    CHECK(r && json_object_get(r, "result"));
    /* 3. cancelled while the model runs: the answer comes at once */
    open_doc(&s, "file:///tmp/mccom-test/b.py", "class A:\n    def g(self):\n        return ");
    id = complete_req(&s, "file:///tmp/mccom-test/b.py", 2, 15, 2);
    usleep((useconds_t)(MC_MIN(0.25 * full, 0.5) * 1e6));
    t0 = mc_time_s();
    notify(&s, "$/cancelRequest", json_pack("{s:I}", "id", id));
    r = wait_response(&s, id, 300000);
    double took = mc_time_s() - t0;
    CHECK_EQ_INT(error_code(r), LSP_REQUEST_CANCELLED);
    CHECK_MSG(took < 0.25 * full, "cancel answered after %.3f s; a whole request takes %.3f s", took, full);
    CHECK_MSG(full > 0.3, "a whole request took only %.3f s: the test model got fast", full);
    /* 4. an edit makes a running request stale: ContentModified, and the next one runs */
    id = complete_req(&s, "file:///tmp/mccom-test/b.py", 2, 15, 2);
    usleep(100000);
    notify(&s, "workspace/didChangeConfiguration",
           json_pack("{s:{s:{s:i}}}", "settings", "mccom", "maxLineTokens", 4));
    notify(&s, "textDocument/didChange",
           json_pack("{s:{s:s, s:i}, s:[{s:{s:o, s:o}, s:s}]}", "textDocument", "uri",
                     "file:///tmp/mccom-test/b.py", "version", 2, "contentChanges", "range",
                     "start", position(2, 15), "end", position(2, 15), "text", "x"));
    json_int_t id2 = complete_req(&s, "file:///tmp/mccom-test/b.py", 2, 16, 2);
    r = wait_response(&s, id, 300000);
    CHECK_EQ_INT(error_code(r), LSP_CONTENT_MODIFIED);
    r = wait_response(&s, id2, 300000);
    CHECK(r && json_is_object(json_object_get(r, "result")));
    /* 5. a newer request for the same document supersedes a queued one (at cursors
     * away from the live suggestion, which would be answered at once) */
    notify(&s, "workspace/didChangeConfiguration",
           json_pack("{s:{s:{s:i}}}", "settings", "mccom", "debounceMs", 3000));
    id = complete_req(&s, uri, 0, 3, 2);
    id2 = complete_req(&s, uri, 0, 5, 2);
    r = wait_response(&s, id, 10000);
    CHECK_EQ_INT(error_code(r), LSP_CONTENT_MODIFIED);
    notify(&s, "$/cancelRequest", json_pack("{s:I}", "id", id2));
    CHECK_EQ_INT(error_code(wait_response(&s, id2, 10000)), LSP_REQUEST_CANCELLED);
    shutdown_exit(&s, 0);
    srv_stop(&s);
}

MC_TEST(lsp_index_follows_edits) {
    const char *root = tmp_path("repo");
    MC_REQUIRE(mkdir(root, 0755) == 0);
    char p[700];
    const char *main_text = "Once upon a time, there was a little girl named Lily.\n"
                            "She loved to play outside in the park with her dog.\n"
                            "One day, Lily saw a big red ball under a tree.\n"
                            "Lily ran to the ball and";
    snprintf(p, sizeof p, "%s/main.py", root);
    write_file(p, main_text);
    snprintf(p, sizeof p, "%s/notes.py", root);
    write_file(p, "xyzzy plugh 1\nxyzzy plugh 2\n");
    /* the buffer of notes.py, never saved: main.py's lines and a continuation */
    const char *notes_buf = "Once upon a time, there was a little girl named Lily.\n"
                            "She loved to play outside in the park with her dog.\n"
                            "One day, Lily saw a big red ball under a tree.\n"
                            "Lily ran to the ball and kicked it over the fence into the sea.\n";
    srv s;
    srv_start(&s, "--threads", "1", NULL);
    initialize(&s, root, opts(0.0f, true, NULL), false, true);
    json_t *e = NULL;
    for (int i = 0; i < 100 && (e = wait_note(&s, "$/progress", 20000)) != NULL; i++) {
        const char *kind = mc__json_str(json_object_get(json_object_get(e, "params"), "value"), "kind");
        bool end = kind && !strcmp(kind, "end");
        json_decref(e);
        if (end)
            break;
    }
    char nuri[800], muri[800];
    snprintf(nuri, sizeof nuri, "file://%s/notes.py", root);
    snprintf(muri, sizeof muri, "file://%s/main.py", root);
    open_doc(&s, nuri, "xyzzy plugh 1\nxyzzy plugh 2\n");
    notify(&s, "textDocument/didChange",
           json_pack("{s:{s:s, s:i}, s:[{s:s}]}", "textDocument", "uri", nuri, "version", 2,
                     "contentChanges", "text", notes_buf));
    usleep(500000); /* the worker applies index updates when idle */
    open_doc(&s, muri, main_text);
    json_int_t id = complete_req(&s, muri, 3, 24, 2);
    json_t *r = wait_response(&s, id, 30000);
    MC_REQUIRE(r);
    /* in process: the same index, with and without the buffer */
    local A, B;
    local_open(&A, NULL, root, 0.0f, 0);
    mc_err err;
    MC_REQUIRE(mc_retr_set_file(A.ix, "notes.py", notes_buf, strlen(notes_buf), &err) == 0);
    char *with = local_suggest(&A, "main.py", main_text, strlen(main_text));
    local_open(&B, NULL, root, 0.0f, 0);
    char *without = local_suggest(&B, "main.py", main_text, strlen(main_text));
    CHECK_MSG(strcmp(with, without) != 0, "the edited buffer does not change the suggestion (\"%s\")", with);
    CHECK_EQ_STR(item_text(r) ? item_text(r) : "", with);
    /* closing the unsaved buffer puts the file on disk back into the index (main.py is
     * reopened too, so that its session starts afresh) */
    notify(&s, "textDocument/didClose", json_pack("{s:{s:s}}", "textDocument", "uri", nuri));
    notify(&s, "textDocument/didClose", json_pack("{s:{s:s}}", "textDocument", "uri", muri));
    usleep(500000);
    open_doc(&s, muri, main_text);
    id = complete_req(&s, muri, 3, 24, 2);
    r = wait_response(&s, id, 30000);
    CHECK_EQ_STR(item_text(r) ? item_text(r) : "", without);
    free(with);
    free(without);
    local_close(&A);
    local_close(&B);
    shutdown_exit(&s, 0);
    srv_stop(&s);
}

MC_TEST(lsp_configuration) {
    char *dec = python_file("decoder.py");
    srv s;
    srv_start(&s, "--threads", "1", NULL);
    /* bad values are reported and skipped; good ones apply */
    json_t *o = opts(0.0f, false, NULL);
    json_object_set_new(o, "maxLineTokens", json_string("many"));
    json_object_set_new(o, "noSuchKey", json_true());
    json_object_set_new(o, "llmBudgetMs", json_integer(-5));
    initialize(&s, NULL, o, false, false);
    json_t *m = wait_note(&s, "window/showMessage", 10000);
    MC_REQUIRE(m);
    const char *msg = mc__json_str(json_object_get(m, "params"), "message");
    CHECK(msg && strstr(msg, "maxLineTokens") && strstr(msg, "noSuchKey") && strstr(msg, "llmBudgetMs"));
    json_decref(m);
    const char *uri = "file:///tmp/mccom-test/decoder.py";
    open_doc(&s, uri, dec);
    local L;
    local_open(&L, NULL, NULL, 0.0f, 0);
    json_int_t id = complete_req(&s, uri, 30, 8, 2);
    char *w = local_suggest(&L, "/tmp/mccom-test/decoder.py", dec, offset_of(dec, 30, 8));
    CHECK_EQ_STR(item_text(wait_response(&s, id, 30000)), w);
    free(w);
    local_close(&L);
    /* workspace/didChangeConfiguration: a shorter line */
    notify(&s, "workspace/didChangeConfiguration",
           json_pack("{s:{s:{s:i, s:f}}}", "settings", "mccom", "maxLineTokens", 3, "tau", 2.0));
    m = wait_note(&s, "window/showMessage", 10000);
    CHECK(m && strstr(mc__json_str(json_object_get(m, "params"), "message"), "tau"));
    json_decref(m);
    local_open(&L, NULL, NULL, 0.0f, 3);
    id = complete_req(&s, uri, 60, 8, 2);
    w = local_suggest(&L, "/tmp/mccom-test/decoder.py", dec, offset_of(dec, 60, 8));
    json_t *r = wait_response(&s, id, 30000);
    CHECK_EQ_STR(item_text(r), w);
    CHECK(strlen(w) < 20);
    free(w);
    local_close(&L);
    /* a model that cannot be loaded: an error message, and requests say why */
    notify(&s, "workspace/didChangeConfiguration",
           json_pack("{s:{s:s}}", "settings", "slmModel", "/nonexistent/model.gguf"));
    m = wait_note(&s, "window/showMessage", 10000);
    CHECK(m && json_integer_value(json_object_get(json_object_get(m, "params"), "type")) == 1);
    json_decref(m);
    id = complete_req(&s, uri, 60, 8, 2);
    r = wait_response(&s, id, 30000);
    CHECK_EQ_INT(error_code(r), LSP_REQUEST_FAILED);
    CHECK(strstr(mc__json_str(json_object_get(r, "error"), "message"), "/nonexistent/model.gguf") != NULL);
    /* llmUrl of a server that is down (tau 1: every line escalates at once):
     * the small model's line still comes, marked as a failed escalation */
    notify(&s, "workspace/didChangeConfiguration",
           json_pack("{s:{s:s, s:s, s:f}}", "settings", "slmModel", slm_path(), "llmUrl",
                     "http://127.0.0.1:9", "tau", 1.0));
    id = complete_req(&s, uri, 60, 8, 2);
    r = wait_response(&s, id, 30000);
    CHECK(r && first_item(r));
    CHECK_EQ_STR(mc__json_str(item_mccom(r), "source"), "slm");
    shutdown_exit(&s, 0);
    srv_stop(&s);
    free(dec);
}

/* ---- a real editor: Neovim under tmux with editors/nvim ------------------------------------ */

typedef struct tmx {
    char sock[64];
    char dir[600];
} tmx;

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...) {
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    return system(cmd);
}

static char *tmux_screen(const tmx *t) {
    char cmd[256];
    snprintf(cmd, sizeof cmd, "tmux -L %s capture-pane -p -t t 2>/dev/null", t->sock);
    FILE *p = popen(cmd, "r");
    if (!p)
        return NULL;
    size_t cap = 1 << 16, n = 0;
    char *b = malloc(cap);
    size_t r;
    while (b && (r = fread(b + n, 1, cap - n - 1, p)) > 0)
        n += r;
    pclose(p);
    if (b)
        b[n] = '\0';
    return b;
}

/* Wait until a screen row starts with `want` (compared up to max bytes;
 * trailing spaces are not on the screen). */
static bool tmux_wait_row(const tmx *t, const char *want, size_t max, double secs) {
    size_t n = MC_MIN(strlen(want), max);
    while (n > 0 && want[n - 1] == ' ')
        n--;
    double until = mc_time_s() + secs;
    char *scr = NULL;
    while (mc_time_s() < until) {
        free(scr);
        scr = tmux_screen(t);
        for (char *row = scr; row && *row;) {
            char *nl = strchr(row, '\n');
            if (strncmp(row, want, n) == 0) {
                free(scr);
                return true;
            }
            row = nl ? nl + 1 : row + strlen(row);
        }
        usleep(100000);
    }
    fprintf(stderr, "---- screen (waiting for \"%.*s\") ----\n%s----\n", (int)n, want, scr ? scr : "");
    free(scr);
    return false;
}

static void tmux_keys(const tmx *t, const char *keys) {
    CHECK(sh("tmux -L %s send-keys -t t %s", t->sock, keys) == 0);
}

/* Type literal text. */
static void tmux_type(const tmx *t, const char *text) {
    char q[512];
    size_t k = 0;
    q[k++] = '\'';
    for (const char *c = text; *c && k < sizeof q - 8; c++) {
        if (*c == '\'') {
            memcpy(q + k, "'\\''", 4);
            k += 4;
        } else {
            q[k++] = *c;
        }
    }
    q[k++] = '\'';
    q[k] = '\0';
    CHECK(sh("tmux -L %s send-keys -t t -l %s", t->sock, q) == 0);
}

static bool printable(const char *s) {
    if (!s || !*s)
        return false;
    for (const unsigned char *c = (const unsigned char *)s; *c; c++)
        if (*c < 0x20 || *c == 0x7f)
            return false;
    return true;
}

/* text with `line` inserted as line `at` (0-based) */
static char *insert_line(const char *text, int at, const char *line) {
    size_t o = offset_of(text, at, 0), n = strlen(text), m = strlen(line);
    char *r = malloc(n + m + 2);
    memcpy(r, text, o);
    memcpy(r + o, line, m);
    r[o + m] = '\n';
    memcpy(r + o + m + 1, text + o, n - o + 1);
    return r;
}

static bool wait_file_has(const char *path, const char *want, double secs) {
    double until = mc_time_s() + secs;
    while (mc_time_s() < until) {
        char *f = read_file(path);
        bool ok = f && !strcmp(f, want);
        free(f);
        if (ok)
            return true;
        usleep(100000);
    }
    return false;
}

MC_TEST_T(lsp_neovim_end_to_end, 120) {
    if (sh("command -v nvim >/dev/null && command -v tmux >/dev/null") != 0)
        MC_SKIP("nvim or tmux is not installed (scripts/setup.sh installs them)");
    char *orig = python_file("decoder.py");
    const char *llm = llm_path();
    char bin[PATH_MAX], plugin[PATH_MAX];
    MC_REQUIRE(realpath(mc_test_bin(), bin) != NULL);
    MC_REQUIRE(realpath("editors/nvim", plugin) != NULL);
    tmx t;
    snprintf(t.sock, sizeof t.sock, "mccom-test-%d", (int)getpid());
    snprintf(t.dir, sizeof t.dir, "%s", mc_test_tmpdir());
    const char *repo = tmp_path("repo");
    MC_REQUIRE(mkdir(repo, 0755) == 0);
    char file[700];
    snprintf(file, sizeof file, "%s/decoder.py", repo);
    write_file(file, orig);

    /* What the cascade says, in process, at the two places the test types at:
     * A, a new line after line 300 with "    if " (the small model's line is
     * accepted with Tab); B, a new line after line 250 with "    return " (Esc
     * rejects the small model's line; the large model's appears). */
    const int at_a = 300, at_b = 250;
    const char *typed_a = "    if ", *typed_b = "    return ";
    local L;
    local_open(&L, llm, NULL, 0.0f, 0);
    char *doc_a = insert_line(orig, at_a, typed_a);
    char *slm_a = local_suggest(&L, file, doc_a, offset_of(doc_a, at_a, (int)strlen(typed_a)));
    MC_REQUIRE(printable(slm_a));
    char line_a[512];
    snprintf(line_a, sizeof line_a, "%s%s", typed_a, slm_a);
    char *after_a = insert_line(orig, at_a, line_a);
    char *doc_b = insert_line(after_a, at_b, typed_b);
    size_t cur_b = offset_of(doc_b, at_b, (int)strlen(typed_b));
    char *slm_b = local_suggest(&L, file, doc_b, cur_b);
    mc_session_rejected(L.s);
    char *llm_b = local_suggest(&L, file, doc_b, cur_b);
    local_close(&L);
    CHECK_MSG(printable(slm_b) && printable(llm_b) && strcmp(slm_b, llm_b) != 0,
              "the models' lines at B are not usable for a screen test: \"%s\" / \"%s\"", slm_b, llm_b);

    char init[700];
    snprintf(init, sizeof init, "%s/init.lua", t.dir);
    FILE *f = fopen(init, "w");
    MC_REQUIRE(f);
    fprintf(f,
            "vim.opt.rtp:prepend('%s')\n"
            "vim.opt.swapfile = false\n"
            "vim.opt.autoindent = false\n"
            "vim.cmd('filetype indent off')\n"
            "vim.opt.shortmess:append('I')\n"
            "require('mccom').setup({\n"
            "  cmd = { '%s', 'lsp', '--threads', '1', '-v', '-v' },\n"
            "  init_options = { slmModel = '%s', llmModel = '%s', tau = 0, retrieval = false },\n"
            "  debounce_ms = 150,\n"
            "  show_source = true,\n"
            "})\n",
            plugin, bin, slm_path(), llm);
    fclose(f);
    MC_REQUIRE(sh("cd %s && XDG_CONFIG_HOME=%s XDG_DATA_HOME=%s XDG_STATE_HOME=%s XDG_CACHE_HOME=%s "
                  "tmux -L %s -f /dev/null new-session -d -s t -x 220 -y 50 "
                  "'nvim --clean -u %s %s'",
                  repo, t.dir, t.dir, t.dir, t.dir, t.sock, init, file) == 0);
    CHECK(tmux_wait_row(&t, "\"\"\"Implementation of JSONDecoder", 100, 20.0));

    /* A: type, see the small model's line as ghost text, accept it with Tab, save */
    char keys[64];
    snprintf(keys, sizeof keys, "':%d' Enter o", at_a);
    tmux_keys(&t, keys);
    tmux_type(&t, typed_a);
    CHECK_MSG(tmux_wait_row(&t, line_a, 200, 30.0), "no ghost text \"%s\"", slm_a);
    /* one word first (the screen does not change: the word moves from ghost to text),
     * then the rest */
    size_t word = 0;
    while (slm_a[word] == ' ')
        word++;
    while (slm_a[word] == '_' || (slm_a[word] >= '0' && slm_a[word] <= '9') ||
           ((slm_a[word] | 0x20) >= 'a' && (slm_a[word] | 0x20) <= 'z'))
        word++;
    tmux_keys(&t, "C-Right");
    usleep(300000);
    CHECK(tmux_wait_row(&t, line_a, 200, 5.0));
    tmux_keys(&t, "Tab");
    tmux_keys(&t, "'C-\\' C-n ':w' Enter");
    CHECK_MSG(wait_file_has(file, after_a, 10.0), "after Tab and :w the file is not as expected");

    /* B: the small model's line, Esc, then the large model's line (labelled) */
    snprintf(keys, sizeof keys, "':%d' Enter o", at_b);
    tmux_keys(&t, keys);
    tmux_type(&t, typed_b);
    char want[512];
    snprintf(want, sizeof want, "%s%s", typed_b, slm_b);
    CHECK_MSG(tmux_wait_row(&t, want, 200, 30.0), "no ghost text \"%s\"", slm_b);
    tmux_keys(&t, "Escape");
    snprintf(want, sizeof want, "%s%s [mccom: large model]", typed_b, llm_b);
    CHECK_MSG(tmux_wait_row(&t, want, 200, 30.0), "no large-model ghost text \"%s\"", llm_b);
    tmux_keys(&t, "Tab");
    tmux_keys(&t, "'C-\\' C-n ':w' Enter");
    char line_b[512];
    snprintf(line_b, sizeof line_b, "%s%s", typed_b, llm_b);
    char *after_b = insert_line(after_a, at_b, line_b);
    CHECK_MSG(wait_file_has(file, after_b, 10.0), "after Esc, Tab and :w the file is not as expected");
    tmux_keys(&t, "':qa!' Enter");
    sh("tmux -L %s kill-server 2>/dev/null", t.sock);
    /* the server's log (Neovim keeps its stderr in lsp.log): the notifications arrived */
    char logp[700], acc[64];
    snprintf(logp, sizeof logp, "%s/nvim/lsp.log", t.dir);
    char *log = read_file(logp);
    snprintf(acc, sizeof acc, "accepted %zu bytes", word);
    CHECK_MSG(log && strstr(log, acc), "no partial accept (\"%s\") in %s", acc, logp);
    CHECK(log && strstr(log, "rejected") && strstr(log, "pushed suggestion"));
    free(log);
    free(orig);
    free(doc_a);
    free(slm_a);
    free(after_a);
    free(doc_b);
    free(slm_b);
    free(llm_b);
    free(after_b);
}

/* Editors without inline completion (Helix) get the line as a completion item
 * that replaces the word before the cursor with the word and the line. */
MC_TEST(lsp_completion_item_for_other_editors) {
    srv s;
    srv_start(&s, "--threads", "1", NULL);
    json_t *r = initialize(&s, NULL, opts(0.0f, false, NULL), false, false);
    CHECK(json_object_get(json_object_get(json_object_get(r, "result"), "capabilities"), "completionProvider") == NULL);
    json_int_t id = request(&s, "textDocument/completion", json_pack("{s:{s:s}, s:o}", "textDocument", "uri", "file:///x", "position", position(0, 0)));
    CHECK_EQ_INT(error_code(wait_response(&s, id, 5000)), RPC_METHOD_NOT_FOUND);
    shutdown_exit(&s, 0);
    srv_stop(&s);

    srv_start(&s, "--threads", "1", "--completion", NULL);
    r = initialize(&s, NULL, opts(0.0f, false, NULL), false, false);
    CHECK(json_is_object(json_object_get(json_object_get(json_object_get(r, "result"), "capabilities"), "completionProvider")));
    const char *text = "Once upon a time, there was a little girl named Lily.\nSh\xc3\xa9 loved to pla";
    const char *uri = "file:///tmp/mccom-test/t.py";
    open_doc(&s, uri, text);
    id = request(&s, "textDocument/completion",
                 json_pack("{s:{s:s}, s:o, s:{s:i}}", "textDocument", "uri", uri, "position",
                           position(1, 16), "context", "triggerKind", 1));
    r = wait_response(&s, id, 30000);
    json_t *res = json_object_get(r, "result");
    CHECK(json_is_true(json_object_get(res, "isIncomplete")));
    json_t *it = json_array_get(json_object_get(res, "items"), 0);
    MC_REQUIRE(it);
    local L;
    local_open(&L, NULL, NULL, 0.0f, 0);
    char *w = local_suggest(&L, "/tmp/mccom-test/t.py", text, strlen(text));
    char want[512];
    snprintf(want, sizeof want, "pla%s", w);
    CHECK_EQ_STR(mc__json_str(it, "label"), want);
    json_t *te = json_object_get(it, "textEdit");
    CHECK_EQ_STR(mc__json_str(te, "newText"), want);
    json_t *rg = json_object_get(te, "range");
    CHECK_EQ_INT(json_integer_value(json_object_get(json_object_get(rg, "start"), "character")), 13);
    CHECK_EQ_INT(json_integer_value(json_object_get(json_object_get(rg, "end"), "character")), 16);
    CHECK_EQ_STR(mc__json_str(json_object_get(it, "command"), "command"), "mccom.accept");
    free(w);
    local_close(&L);
    /* the item's command reports the acceptance */
    id = request(&s, "workspace/executeCommand",
                 json_pack("{s:s, s:O}", "command", "mccom.accept", "arguments",
                           json_object_get(json_object_get(it, "command"), "arguments")));
    r = wait_response(&s, id, 5000);
    CHECK(r && json_object_get(r, "result") && !json_object_get(r, "error"));
    shutdown_exit(&s, 0);
    srv_stop(&s);
}

/* The large model behind HTTP: `mccom serve` runs it and the language server
 * reaches it through llmUrl. The pushed line after a rejection equals the
 * in-process cascade's, model for model. */
MC_TEST(lsp_remote_large_model_through_serve) {
    char *dec = python_file("decoder.py");
    /* the served model needs its own vocabulary: stories260K in Q8_0 */
    const char *llm = tmp_path("llm-q8.gguf");
    mc_err qerr;
    MC_REQUIRE(mc_quantize_file(slm_path(), llm, MC_TYPE_Q8_0, NULL, NULL, &qerr) == 0);
    const char *log = tmp_path("serve.log");
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "%s serve -m %s --port 0 -t 1 2> %s & echo $! > %s.pid", mc_test_bin(),
             llm, log, log);
    MC_REQUIRE(system(cmd) == 0);
    int port = 0;
    for (int i = 0; i < 600 && port == 0; i++) {
        FILE *f = fopen(log, "r");
        char line[512];
        while (f && fgets(line, sizeof line, f)) {
            const char *at = strstr(line, "listening on http://127.0.0.1:");
            if (at)
                port = atoi(at + strlen("listening on http://127.0.0.1:"));
        }
        if (f)
            fclose(f);
        if (port == 0)
            usleep(50000);
    }
    MC_REQUIRE(port > 0);
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d", port);
    srv s;
    srv_start(&s, "--threads", "1", NULL);
    json_t *o = opts(0.0f, false, NULL);
    json_object_set_new(o, "llmUrl", json_string(url));
    initialize(&s, NULL, o, false, false);
    const char *uri = "file:///tmp/mccom-test/decoder.py";
    const char *path = "/tmp/mccom-test/decoder.py";
    open_doc(&s, uri, dec);
    local L;
    local_open(&L, llm, NULL, 0.0f, 0);
    json_int_t id = complete_req(&s, uri, 30, 8, 2);
    json_t *r = wait_response(&s, id, 30000);
    MC_REQUIRE(first_item(r));
    json_int_t sid = item_id(r);
    char *w_slm = local_suggest(&L, path, dec, offset_of(dec, 30, 8));
    CHECK_EQ_STR(item_text(r), w_slm);
    notify(&s, "mccom/didShow", json_pack("{s:{s:s}, s:I}", "textDocument", "uri", uri, "id", sid));
    notify(&s, "mccom/didReject", json_pack("{s:{s:s}, s:I}", "textDocument", "uri", uri, "id", sid));
    json_t *push = wait_note(&s, "mccom/suggestion", 30000);
    MC_REQUIRE(push);
    json_t *it = json_array_get(json_object_get(json_object_get(push, "params"), "items"), 0);
    mc_session_rejected(L.s);
    char *w_llm = local_suggest(&L, path, dec, offset_of(dec, 30, 8));
    CHECK_EQ_STR(mc__json_str(it, "insertText"), w_llm);
    CHECK_EQ_STR(mc__json_str(json_object_get(it, "mccom"), "source"), "llm");
    json_decref(push);
    free(w_slm);
    free(w_llm);
    local_close(&L);
    shutdown_exit(&s, 0);
    srv_stop(&s);
    snprintf(cmd, sizeof cmd, "kill $(cat %s.pid) 2>/dev/null; true", log);
    CHECK(system(cmd) == 0);
    free(dec);
}
