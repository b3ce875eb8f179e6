/* tests/test_remote.c — the remote tier's client against servers in this
 * process and one real one.
 *
 * The fake server (a listening socket on 127.0.0.1, a thread per connection)
 * runs the real engine on stories260K: /v1/verify as `mccom serve` specifies
 * it (server.h), /v1/completions in vLLM's shape (prompt_logprobs with rank
 * and decoded_token, "token_id:N" tokens) or as a text-only OpenAI server, and
 * /v1/models with a chosen owner. On demand it misbehaves: slow, garbage,
 * truncated JSON, HTTP 500, a reset mid-response, no answer at all, or any
 * body the test gives. It counts connections, requests and bytes.
 *
 * The real peer is llama.cpp's llama-server (scripts/build-llama-server.sh);
 * when it is not built its test fails, as the parity tests do. */
#include "mccom/convert.h"
#include "mccom/gen.h"
#include "mccom/llm.h"
#include "mccom/remote.h"
#include "test.h"

#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* The runner ends a test with _exit, so LeakSanitizer's exit-time check never
 * runs: the tests here ask for it themselves, after freeing everything. */
#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
#define LEAK_CHECK()                                                                               \
    CHECK_MSG(__lsan_do_recoverable_leak_check() == 0,                                             \
              "memory leaked (LeakSanitizer's report above)")
#else
#define LEAK_CHECK() ((void)0)
#endif

/* ---- the model ------------------------------------------------------------------- */

static const char *stories_path(void) {
    static char path[512];
    if (path[0])
        return path;
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

typedef struct engine {
    mc_model *m;
    mc_tok *tok;
    mc_ctx *srv; /* the fake server's context */
    mc_ctx *ref; /* the test's reference context */
    int n_vocab;
} engine;

static void engine_open(engine *e) {
    mc_err err;
    MC_REQUIRE(mc_model_load(stories_path(), &e->m, &err) == 0);
    MC_REQUIRE(mc_tok_load_gguf(mc_model_gguf(e->m), &e->tok, &err) == 0);
    mc_ctx_params cp = mc_ctx_params_default();
    cp.n_ctx = 512;
    cp.kv_f32 = 1;
    cp.n_threads = 1;
    MC_REQUIRE(mc_ctx_new(e->m, &cp, &e->srv, &err) == 0);
    MC_REQUIRE(mc_ctx_new(e->m, &cp, &e->ref, &err) == 0);
    e->n_vocab = mc_model_hparams(e->m)->n_vocab;
}

static void engine_close(engine *e) {
    mc_ctx_free(e->srv);
    mc_ctx_free(e->ref);
    mc_tok_free(e->tok);
    mc_model_free(e->m);
}

static int encode(const engine *e, const char *text, int32_t *ids, int cap) {
    int64_t n = 0;
    MC_REQUIRE(mc_tok_encode(e->tok, text, strlen(text), MC_TOK_ADD_BOS, ids, cap, &n) == 0);
    return (int)n;
}

/* ---- the fake server ---------------------------------------------------------------- */

enum act_kind {
    ACT_OK,
    ACT_SLOW,
    ACT_GARBAGE,
    ACT_TRUNCATED,
    ACT_500,
    ACT_RESET,
    ACT_HANG,
    ACT_BODY
};

typedef struct act {
    int kind;
    int ms;           /* ACT_SLOW */
    const char *body; /* ACT_BODY: answered with status 200 */
} act;

enum flavour { FL_MCCOM, FL_VLLM, FL_OPENAI };

typedef struct fake {
    int lfd, port;
    int wake[2];
    pthread_t acceptor;
    pthread_t conns[64];
    int n_conns;
    volatile int stopping;
    pthread_mutex_t mu; /* everything below */
    act queue[32];
    int q_n, q_at;
    int n_requests;
    int64_t bytes_in, bytes_out;
    char last_path[64];
    bool last_prompt_text; /* the last completion's prompt was a string */
    int flavour;
    engine *e;
    pthread_mutex_t engine_mu;
} fake;

typedef struct conn_arg {
    fake *f;
    int fd;
} conn_arg;

static void fake_push(fake *f, act a) {
    pthread_mutex_lock(&f->mu);
    MC_REQUIRE(f->q_n < (int)MC_ARRAY_LEN(f->queue));
    f->queue[f->q_n++] = a;
    pthread_mutex_unlock(&f->mu);
}

static int fake_requests(fake *f) {
    pthread_mutex_lock(&f->mu);
    int n = f->n_requests;
    pthread_mutex_unlock(&f->mu);
    return n;
}

static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static bool send_all(fake *f, int fd, const char *p, size_t n) {
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w <= 0)
            return false;
        pthread_mutex_lock(&f->mu);
        f->bytes_out += w;
        pthread_mutex_unlock(&f->mu);
        p += w;
        n -= (size_t)w;
    }
    return true;
}

static bool respond(fake *f, int fd, int status, const char *body, size_t len, size_t send_len) {
    char head[256];
    int hl = snprintf(head, sizeof head,
                      "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
                      "Connection: keep-alive\r\n\r\n",
                      status, status == 200 ? "OK" : "Error", len);
    return send_all(f, fd, head, (size_t)hl) && send_all(f, fd, body, send_len);
}

/* Read one request; false when the client closed or the server stops. */
static bool read_request(fake *f, int fd, char **buf, size_t *cap, size_t *have, char *method,
                         char *path, char **body, size_t *body_len) {
    size_t head_end = 0;
    for (;;) {
        char *he = *have ? memmem(*buf, *have, "\r\n\r\n", 4) : NULL;
        if (he) {
            head_end = (size_t)(he - *buf) + 4;
            break;
        }
        struct pollfd pf = {fd, POLLIN, 0};
        int pr = poll(&pf, 1, 20);
        if (f->stopping)
            return false;
        if (pr <= 0)
            continue;
        if (*have + 4096 > *cap) {
            *cap = *cap * 2 + 8192;
            *buf = realloc(*buf, *cap);
            MC_REQUIRE(*buf);
        }
        ssize_t r = recv(fd, *buf + *have, *cap - *have - 1, 0);
        if (r <= 0)
            return false;
        *have += (size_t)r;
    }
    (*buf)[head_end - 1] = '\0';
    MC_REQUIRE(sscanf(*buf, "%15s %63s", method, path) == 2);
    size_t clen = 0;
    for (char *l = strstr(*buf, "\r\n"); l; l = strstr(l + 2, "\r\n"))
        if (strncasecmp(l + 2, "Content-Length:", 15) == 0)
            clen = (size_t)strtoul(l + 17, NULL, 10);
    while (*have < head_end + clen) {
        if (*have + clen + 1 > *cap) {
            *cap = *have + clen + 1;
            *buf = realloc(*buf, *cap);
            MC_REQUIRE(*buf);
        }
        struct pollfd pf = {fd, POLLIN, 0};
        int pr = poll(&pf, 1, 20);
        if (f->stopping)
            return false;
        if (pr <= 0)
            continue;
        ssize_t r = recv(fd, *buf + *have, *cap - *have, 0);
        if (r <= 0)
            return false;
        *have += (size_t)r;
    }
    *body = *buf + head_end;
    *body_len = clen;
    pthread_mutex_lock(&f->mu);
    f->bytes_in += (int64_t)(head_end + clen);
    f->n_requests++;
    snprintf(f->last_path, sizeof f->last_path, "%s", path);
    pthread_mutex_unlock(&f->mu);
    return true;
}

/* ids from a JSON array (or a string, encoded with BOS); returns the count. */
static int json_ids(fake *f, json_t *v, int32_t *out, int cap, bool *was_text) {
    *was_text = false;
    if (json_is_string(v)) {
        *was_text = true;
        int64_t n = 0;
        MC_REQUIRE(mc_tok_encode(f->e->tok, json_string_value(v), json_string_length(v),
                                 MC_TOK_ADD_BOS, out, cap, &n) == 0);
        return (int)n;
    }
    int n = (int)json_array_size(v);
    MC_REQUIRE(n <= cap);
    for (int i = 0; i < n; i++)
        out[i] = (int32_t)json_integer_value(json_array_get(v, (size_t)i));
    return n;
}

static json_t *text_json(const char *s, size_t n) {
    json_t *j = json_stringn(s, n);
    return j ? j : json_string("");
}

/* POST /v1/verify, as server.h specifies it. */
static json_t *serve_verify(fake *f, json_t *rq) {
    int32_t prompt[1024], draft[1024];
    bool t1, t2;
    int np = json_ids(f, json_object_get(rq, "prompt"), prompt, 1024, &t1);
    int nd = json_ids(f, json_object_get(rq, "draft"), draft, 1024, &t2);
    mc_gen_params gp = mc_gen_params_default();
    gp.max_new = (int)json_integer_value(json_object_get(rq, "max_tokens"));
    gp.stop_newline = json_is_true(json_object_get(rq, "stop_at_newline"));
    json_t *heal = json_object_get(rq, "heal");
    if (json_is_string(heal)) {
        gp.heal = json_string_value(heal);
        gp.heal_len = json_string_length(heal);
    }
    mc_gen_result r;
    mc_err err;
    MC_REQUIRE(mc_gen_run(f->e->srv, f->e->tok, prompt, np, draft, nd, &gp, &r, &err) == 0);
    json_t *toks = json_array(), *lps = json_array();
    for (int i = 0; i < r.n; i++) {
        json_array_append_new(toks, json_integer(r.toks[i].id));
        json_array_append_new(lps, json_real(r.toks[i].logprob));
    }
    json_t *o = json_pack(
        "{s:s, s:s, s:i, s:i, s:o, s:o, s:o, s:s, s:{s:f, s:f, s:f, s:i, s:i, s:i}}", "object",
        "verify", "model", "stories260K", "accepted", r.n_accepted, "n_draft", r.n_draft, "tokens",
        toks, "token_logprobs", lps, "text", text_json(r.text, r.text_len), "finish_reason",
        mc_gen_stop_name(r.stop), "timings", "queue_ms", 0.0, "prompt_ms", r.ms_prompt, "gen_ms",
        r.ms_gen, "n_reused", r.n_reused, "n_computed", r.n_computed, "n_passes", r.n_passes);
    mc_gen_result_fini(&r);
    return o;
}

static json_t *decoded(fake *f, int32_t id) {
    char piece[300];
    int n = mc_tok_decode_piece(f->e->tok, id, 0, piece, sizeof piece);
    return text_json(piece, n > 0 ? (size_t)n : 0);
}

/* POST /v1/completions: vLLM's shape (FL_VLLM) or text only (FL_OPENAI). */
static json_t *serve_completion(fake *f, json_t *rq) {
    static int32_t prompt[2048];
    bool was_text;
    int np = json_ids(f, json_object_get(rq, "prompt"), prompt, 2048, &was_text);
    pthread_mutex_lock(&f->mu);
    f->last_prompt_text = was_text;
    int flavour = f->flavour;
    pthread_mutex_unlock(&f->mu);
    json_t *choice = json_object();
    int V = f->e->n_vocab;
    mc_err err;
    int n_plp = (int)json_integer_value(json_object_get(rq, "prompt_logprobs"));
    if (flavour == FL_VLLM && n_plp > 0) {
        /* every prompt position: the actual token with its rank, and the best n_plp */
        mc_ctx *c = f->e->srv;
        mc_ctx_truncate(c, 0);
        MC_REQUIRE(mc_ctx_decode(c, prompt, np, 1, &err) == 0);
        json_t *pl = json_array();
        json_array_append_new(pl, json_null());
        for (int p = 1; p < np; p++) {
            const float *row = mc_ctx_logits(c, p - 1);
            int32_t a = prompt[p];
            int rank = 1;
            for (int j = 0; j < V; j++)
                rank += row[j] > row[a] || (row[j] == row[a] && j < a);
            json_t *d = json_object();
            char key[16];
            snprintf(key, sizeof key, "%d", a);
            json_object_set_new(d, key,
                                json_pack("{s:f, s:i, s:o}", "logprob",
                                          (double)mc_gen_logprob(row, V, a), "rank", rank,
                                          "decoded_token", decoded(f, a)));
            int32_t ti[MC_GEN_MAX_TOP];
            float tl[MC_GEN_MAX_TOP];
            int k = mc_gen_top(row, V, n_plp, ti, tl);
            for (int i = 0; i < k; i++) {
                if (ti[i] == a)
                    continue;
                snprintf(key, sizeof key, "%d", ti[i]);
                json_object_set_new(d, key,
                                    json_pack("{s:f, s:i, s:o}", "logprob", (double)tl[i], "rank",
                                              i + 1, "decoded_token", decoded(f, ti[i])));
            }
            json_array_append_new(pl, d);
        }
        json_object_set_new(choice, "prompt_logprobs", pl);
    }
    mc_gen_params gp = mc_gen_params_default();
    gp.max_new = (int)json_integer_value(json_object_get(rq, "max_tokens"));
    const char *stops[8];
    json_t *st = json_object_get(rq, "stop");
    for (size_t i = 0; i < json_array_size(st) && i < 8; i++)
        stops[gp.n_stop++] = json_string_value(json_array_get(st, i));
    gp.stop = stops;
    int n_lp = (int)json_integer_value(json_object_get(rq, "logprobs"));
    gp.n_top = n_lp;
    mc_gen_result r;
    MC_REQUIRE(mc_gen_run(f->e->srv, f->e->tok, prompt, np, NULL, 0, &gp, &r, &err) == 0);
    json_object_set_new(choice, "index", json_integer(0));
    json_object_set_new(choice, "text", text_json(r.text, r.text_len));
    json_object_set_new(
        choice, "finish_reason",
        json_string(r.stop == MC_GEN_LENGTH || r.stop == MC_GEN_CTX_FULL ? "length" : "stop"));
    if (flavour == FL_VLLM && n_lp > 0) {
        bool as_ids = json_is_true(json_object_get(rq, "return_tokens_as_token_ids"));
        json_t *tokens = json_array(), *tlp = json_array(), *top = json_array();
        for (int i = 0; i < r.n; i++) {
            char name[32];
            snprintf(name, sizeof name, "token_id:%d", r.toks[i].id);
            json_array_append_new(tokens, as_ids ? json_string(name) : decoded(f, r.toks[i].id));
            json_array_append_new(tlp, json_real(r.toks[i].logprob));
            json_t *d = json_object();
            for (int j = 0; j < r.toks[i].n_top; j++) {
                snprintf(name, sizeof name, "token_id:%d", r.toks[i].top_id[j]);
                json_object_set_new(d, name, json_real(r.toks[i].top_logprob[j]));
            }
            json_array_append_new(top, d);
        }
        json_object_set_new(choice, "logprobs",
                            json_pack("{s:o, s:o, s:o, s:[]}", "tokens", tokens, "token_logprobs",
                                      tlp, "top_logprobs", top, "text_offset"));
    } else {
        json_object_set_new(choice, "logprobs", json_null());
    }
    json_t *o =
        json_pack("{s:s, s:s, s:i, s:s, s:[o], s:{s:i, s:i, s:i}}", "id", "cmpl-1", "object",
                  "text_completion", "created", 0, "model", "stories260K", "choices", choice,
                  "usage", "prompt_tokens", np, "completion_tokens", r.n, "total_tokens", np + r.n);
    mc_gen_result_fini(&r);
    return o;
}

static json_t *route(fake *f, const char *method, const char *path, const char *body, size_t len,
                     int *status) {
    *status = 200;
    if (strcmp(method, "GET") == 0 && strcmp(path, "/v1/models") == 0) {
        const char *owner = f->flavour == FL_MCCOM  ? "mccom"
                            : f->flavour == FL_VLLM ? "vllm"
                                                    : "someone";
        return json_pack("{s:s, s:[{s:s, s:s, s:s, s:i}]}", "object", "list", "data", "id",
                         "stories260K", "object", "model", "owned_by", owner, "max_model_len", 512);
    }
    if (strcmp(method, "GET") == 0 && strcmp(path, "/health") == 0)
        return json_pack("{s:s, s:s, s:s}", "status", "ok", "server", "mccom", "model",
                         "stories260K");
    json_t *rq = json_loadb(body, len, 0, NULL);
    json_t *o = NULL;
    if (rq && strcmp(method, "POST") == 0 && strcmp(path, "/v1/verify") == 0 &&
        f->flavour == FL_MCCOM) {
        pthread_mutex_lock(&f->engine_mu);
        o = serve_verify(f, rq);
        pthread_mutex_unlock(&f->engine_mu);
    } else if (rq && strcmp(method, "POST") == 0 && strcmp(path, "/v1/completions") == 0) {
        pthread_mutex_lock(&f->engine_mu);
        o = serve_completion(f, rq);
        pthread_mutex_unlock(&f->engine_mu);
    } else {
        *status = rq ? 404 : 400;
        o = json_pack("{s:{s:s, s:s, s:i}}", "error", "message",
                      rq ? "no such endpoint" : "bad JSON", "type", "invalid_request_error", "code",
                      *status);
    }
    json_decref(rq);
    return o;
}

static void *conn_main(void *arg) {
    conn_arg *ca = arg;
    fake *f = ca->f;
    int fd = ca->fd;
    free(ca);
    char *buf = NULL;
    size_t cap = 0, have = 0;
    for (;;) {
        char method[16], path[64];
        char *body = NULL;
        size_t blen = 0;
        if (!read_request(f, fd, &buf, &cap, &have, method, path, &body, &blen))
            break;
        size_t consumed = (size_t)(body - buf) + blen;
        act a = {ACT_OK, 0, NULL};
        pthread_mutex_lock(&f->mu);
        if (f->q_at < f->q_n)
            a = f->queue[f->q_at++];
        pthread_mutex_unlock(&f->mu);
        bool keep = true;
        if (a.kind == ACT_HANG) {
            /* hold the request until the client gives up or the server stops */
            for (;;) {
                struct pollfd pf = {fd, POLLIN, 0};
                int pr = poll(&pf, 1, 20);
                if (f->stopping)
                    break;
                char tmp[256];
                if (pr > 0 && recv(fd, tmp, sizeof tmp, 0) <= 0)
                    break;
            }
            keep = false;
        } else if (a.kind == ACT_500) {
            const char *b =
                "{\"error\":{\"message\":\"boom\",\"type\":\"server_error\",\"code\":500}}";
            keep = respond(f, fd, 500, b, strlen(b), strlen(b));
        } else if (a.kind == ACT_GARBAGE) {
            const char *b = "<html><body>502 bad gateway, or something</body></html>";
            keep = respond(f, fd, 200, b, strlen(b), strlen(b));
        } else if (a.kind == ACT_BODY) {
            keep = respond(f, fd, 200, a.body, strlen(a.body), strlen(a.body));
        } else {
            if (a.kind == ACT_SLOW)
                for (int t = 0; t < a.ms && !f->stopping; t += 10)
                    sleep_ms(10);
            int status;
            json_t *o = route(f, method, path, body, blen, &status);
            char *txt = json_dumps(o, JSON_COMPACT);
            json_decref(o);
            size_t n = strlen(txt);
            if (a.kind == ACT_TRUNCATED) {
                keep = respond(f, fd, status, txt, n / 2, n / 2);
            } else if (a.kind == ACT_RESET) {
                respond(f, fd, status, txt, n, n / 2);
                struct linger lg = {1, 0}; /* close with RST */
                setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
                keep = false;
            } else {
                keep = respond(f, fd, status, txt, n, n);
            }
            free(txt);
        }
        if (!keep)
            break;
        memmove(buf, buf + consumed, have - consumed);
        have -= consumed;
    }
    free(buf);
    close(fd);
    return NULL;
}

static void *accept_main(void *arg) {
    fake *f = arg;
    for (;;) {
        struct pollfd pf[2] = {{f->lfd, POLLIN, 0}, {f->wake[0], POLLIN, 0}};
        if (poll(pf, 2, -1) < 0)
            continue;
        if (pf[1].revents || f->stopping)
            break;
        int fd = accept(f->lfd, NULL, NULL);
        if (fd < 0)
            continue;
        conn_arg *ca = malloc(sizeof *ca);
        MC_REQUIRE(ca);
        ca->f = f;
        ca->fd = fd;
        pthread_mutex_lock(&f->mu);
        MC_REQUIRE(f->n_conns < (int)MC_ARRAY_LEN(f->conns));
        MC_REQUIRE(pthread_create(&f->conns[f->n_conns++], NULL, conn_main, ca) == 0);
        pthread_mutex_unlock(&f->mu);
    }
    return NULL;
}

static void fake_start(fake *f, engine *e, int flavour) {
    memset(f, 0, sizeof *f);
    f->e = e;
    f->flavour = flavour;
    pthread_mutex_init(&f->mu, NULL);
    pthread_mutex_init(&f->engine_mu, NULL);
    f->lfd = socket(AF_INET, SOCK_STREAM, 0);
    MC_REQUIRE(f->lfd >= 0);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = 0;
    MC_REQUIRE(bind(f->lfd, (struct sockaddr *)&a, sizeof a) == 0);
    MC_REQUIRE(listen(f->lfd, 16) == 0);
    socklen_t al = sizeof a;
    MC_REQUIRE(getsockname(f->lfd, (struct sockaddr *)&a, &al) == 0);
    f->port = ntohs(a.sin_port);
    MC_REQUIRE(pipe(f->wake) == 0);
    MC_REQUIRE(pthread_create(&f->acceptor, NULL, accept_main, f) == 0);
}

static int fake_connections(fake *f) {
    pthread_mutex_lock(&f->mu);
    int n = f->n_conns;
    pthread_mutex_unlock(&f->mu);
    return n;
}

static void fake_stop(fake *f) {
    f->stopping = 1;
    MC_REQUIRE(write(f->wake[1], "x", 1) == 1);
    pthread_join(f->acceptor, NULL);
    for (int i = 0; i < f->n_conns; i++)
        pthread_join(f->conns[i], NULL);
    close(f->lfd);
    close(f->wake[0]);
    close(f->wake[1]);
    pthread_mutex_destroy(&f->mu);
    pthread_mutex_destroy(&f->engine_mu);
}

/* ---- client helpers ------------------------------------------------------------------------ */

static void url_of(int port, char *buf, size_t cap) {
    snprintf(buf, cap, "http://127.0.0.1:%d", port);
}

static mc_remote *client(fake *f, mc_remote_kind kind, mc_remote_params *pp) {
    static char url[64];
    url_of(f->port, url, sizeof url);
    mc_remote_params p = pp ? *pp : mc_remote_params_default();
    p.url = url;
    p.kind = kind;
    mc_remote *r = NULL;
    mc_err err;
    int rc = mc_remote_new(&p, f->e->tok, &r, &err);
    CHECK_MSG(rc == 0, "mc_remote_new: %s", err.msg);
    MC_REQUIRE(rc == 0);
    return r;
}

/* The in-process answer to the same request. */
static void reference(fake *f, const int32_t *p, int np, const int32_t *d, int nd, int max_new,
                      bool stop_newline, const char *heal, size_t heal_len, mc_gen_result *out) {
    mc_gen_params gp = mc_gen_params_default();
    gp.max_new = max_new;
    gp.stop_newline = stop_newline;
    gp.heal = heal;
    gp.heal_len = heal_len;
    mc_err err;
    pthread_mutex_lock(&f->engine_mu);
    int rc = mc_gen_run(f->e->ref, f->e->tok, p, np, d, nd, &gp, out, &err);
    pthread_mutex_unlock(&f->engine_mu);
    MC_REQUIRE(rc == 0);
}

static double scale(void) {
    const char *s = getenv("MC_TEST_TIMEOUT_SCALE");
    double v = s ? atof(s) : 1.0;
    return v >= 1.0 ? v : 1.0;
}

static double now_ms(void) { return mc_time_s() * 1e3; }

static const char *prompts[] = {"Once upon a time",    "Lily and Ben",
                                "The cat sat on the",  "One day, a little boy",
                                "Tom was sad because", "She saw a big"};

static mc_llm_request req(const int32_t *p, int np, const int32_t *d, int nd, int max_new,
                          bool nl) {
    mc_llm_request rq;
    memset(&rq, 0, sizeof rq);
    rq.prompt = p;
    rq.n_prompt = np;
    rq.draft = d;
    rq.n_draft = nd;
    rq.max_new = max_new;
    rq.stop_newline = nl;
    return rq;
}

static void check_same(const mc_llm_result *got, const mc_gen_result *want, bool ids,
                       const char *what) {
    CHECK_MSG(got->gen.text_len == want->text_len &&
                  memcmp(got->gen.text, want->text, want->text_len) == 0,
              "%s: text '%s' != '%s'", what, got->gen.text, want->text);
    CHECK_MSG(got->gen.stop == want->stop, "%s: stop %s != %s", what,
              mc_gen_stop_name(got->gen.stop), mc_gen_stop_name(want->stop));
    if (!ids) {
        CHECK_EQ_INT(got->gen.n, 0);
        return;
    }
    CHECK_MSG(got->gen.n == want->n, "%s: %d tokens != %d", what, got->gen.n, want->n);
    for (int i = 0; i < got->gen.n && i < want->n; i++) {
        CHECK_MSG(got->gen.toks[i].id == want->toks[i].id, "%s: token %d: %d != %d", what, i,
                  got->gen.toks[i].id, want->toks[i].id);
        CHECK_EQ_INT(got->gen.toks[i].from_draft, want->toks[i].from_draft);
        CHECK_NEAR(got->gen.toks[i].logprob, want->toks[i].logprob, 1e-4);
    }
    CHECK_MSG(got->gen.n_accepted == want->n_accepted, "%s: accepted %d != %d", what,
              got->gen.n_accepted, want->n_accepted);
}

/* Speculative equivalence through HTTP: every draft kind, with and without
 * line stops, gives exactly mc_gen_run's tokens and text. */
static void equivalence(int flavour, mc_remote_kind kind) {
    engine e;
    engine_open(&e);
    fake f;
    fake_start(&f, &e, flavour);
    mc_remote *r = client(&f, kind, NULL);
    uint64_t rng = 99;
    int n_cases = 0;
    for (size_t k = 0; k < MC_ARRAY_LEN(prompts); k++) {
        int32_t p[64];
        int np = encode(&e, prompts[k], p, 64);
        mc_gen_result g;
        reference(&f, p, np, NULL, 0, 24, false, NULL, 0, &g); /* the greedy continuation */
        for (int dk = 0; dk < 5; dk++) {
            int32_t d[40];
            int nd = 0;
            if (dk == 1) { /* right, then wrong at j */
                nd = 10;
                for (int i = 0; i < nd; i++)
                    d[i] = g.toks[i].id;
                int j = (int)(rng++ % 8);
                d[j] = (d[j] + 5) % e.n_vocab;
            } else if (dk == 2) { /* the exact greedy line */
                nd = 10;
                for (int i = 0; i < nd; i++)
                    d[i] = g.toks[i].id;
            } else if (dk == 3) { /* random */
                nd = 6;
                for (int i = 0; i < nd; i++) {
                    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
                    d[i] = (int32_t)((rng >> 33) % (uint64_t)e.n_vocab);
                }
            } else if (dk == 4) { /* longer than what is generated */
                nd = 24;
                for (int i = 0; i < nd; i++)
                    d[i] = g.toks[i].id;
            }
            for (int nl = 0; nl <= 1; nl++) {
                for (int mn = 0; mn < 3; mn++) {
                    int max_new = mn == 0 ? 16 : mn == 1 ? 1 : 0;
                    mc_gen_result want;
                    reference(&f, p, np, d, nd, max_new, nl, NULL, 0, &want);
                    mc_llm_request rq = req(p, np, d, nd, max_new, nl);
                    mc_llm_result got;
                    mc_err err;
                    int rc = mc_remote_generate(r, &rq, &got, &err);
                    char what[96];
                    snprintf(what, sizeof what, "prompt %zu draft %d nl %d max_new %d", k, dk, nl,
                             max_new);
                    CHECK_MSG(rc == 0, "%s: %s", what, err.msg);
                    if (rc == 0) {
                        check_same(&got, &want, true, what);
                        CHECK(got.verified);
                        /* vLLM: nothing to verify or generate needs no request */
                        bool none = flavour == FL_VLLM && nd == 0 && max_new == 0;
                        CHECK(none || (got.attempts >= 1 && got.http_status == 200));
                        CHECK(none || (got.bytes_sent > 0 && got.bytes_received > 0));
                    }
                    mc_llm_result_fini(&got);
                    mc_gen_result_fini(&want);
                    n_cases++;
                }
            }
        }
        mc_gen_result_fini(&g);
    }
    CHECK_EQ_INT(n_cases, (int)MC_ARRAY_LEN(prompts) * 30);
    mc_remote_stats st;
    mc_remote_get_stats(r, &st);
    CHECK_EQ_INT(st.calls, n_cases);
    CHECK_EQ_INT(st.failures, 0);
    CHECK_EQ_INT(st.unverified, 0);
    /* one connection, kept alive for every request */
    CHECK_EQ_INT(fake_connections(&f), 1);
    /* the client's byte counts are what the server read and wrote */
    pthread_mutex_lock(&f.mu);
    CHECK_EQ_INT(st.bytes_sent, f.bytes_in);
    CHECK_EQ_INT(st.bytes_received, f.bytes_out);
    pthread_mutex_unlock(&f.mu);
    mc_remote_free(r);
    fake_stop(&f);
    engine_close(&e);
    LEAK_CHECK();
}

MC_TEST(remote_mccom_verify_equals_greedy) { equivalence(FL_MCCOM, MC_REMOTE_MCCOM); }
MC_TEST(remote_vllm_prompt_logprobs_equals_greedy) { equivalence(FL_VLLM, MC_REMOTE_VLLM); }

/* AUTO probes /v1/models and picks the kind from owned_by; the model id too. */
MC_TEST(remote_auto_probe_picks_kind) {
    engine e;
    engine_open(&e);
    const int flavours[3] = {FL_MCCOM, FL_VLLM, FL_OPENAI};
    const mc_remote_kind kinds[3] = {MC_REMOTE_MCCOM, MC_REMOTE_VLLM, MC_REMOTE_OPENAI};
    for (int i = 0; i < 3; i++) {
        fake f;
        fake_start(&f, &e, flavours[i]);
        mc_remote *r = client(&f, MC_REMOTE_AUTO, NULL);
        CHECK_EQ_INT(mc_remote_kind_of(r), MC_REMOTE_AUTO);
        CHECK_EQ_INT(fake_requests(&f), 0); /* no I/O before the first use */
        int32_t p[64];
        int np = encode(&e, "Once upon a time", p, 64);
        mc_llm_request rq = req(p, np, p + 1, 2, 8, false);
        mc_llm_result got;
        mc_err err;
        int rc = mc_remote_generate(r, &rq, &got, &err);
        CHECK_MSG(rc == 0, "%s", err.msg);
        CHECK_EQ_INT(mc_remote_kind_of(r), kinds[i]);
        mc_gen_result want;
        reference(&f, p, np, NULL, 0, 8, false, NULL, 0, &want);
        check_same(&got, &want, flavours[i] != FL_OPENAI, "auto");
        CHECK_EQ_INT(got.verified, flavours[i] != FL_OPENAI);
        mc_llm_result_fini(&got);
        mc_gen_result_fini(&want);
        int before = fake_requests(&f);
        CHECK_EQ_INT(mc_remote_probe(r, &err), 0); /* cheap after the first success */
        CHECK_EQ_INT(fake_requests(&f), before);
        mc_remote_stats st;
        mc_remote_get_stats(r, &st);
        CHECK_EQ_INT(st.unverified, flavours[i] == FL_OPENAI ? 1 : 0);
        mc_remote_free(r);
        fake_stop(&f);
    }
    engine_close(&e);
    LEAK_CHECK();
}

/* OPENAI kind: a plain completion; the draft is ignored; text only. */
MC_TEST(remote_openai_plain_completion) {
    engine e;
    engine_open(&e);
    fake f;
    fake_start(&f, &e, FL_OPENAI);
    mc_remote_params pp = mc_remote_params_default();
    pp.model = "stories260K";
    mc_remote *r = client(&f, MC_REMOTE_OPENAI, &pp);
    for (size_t k = 0; k < MC_ARRAY_LEN(prompts); k++) {
        int32_t p[64];
        int np = encode(&e, prompts[k], p, 64);
        for (int nl = 0; nl <= 1; nl++) {
            mc_gen_result want;
            reference(&f, p, np, NULL, 0, 40, nl, NULL, 0, &want);
            int32_t junk[3] = {5, 6, 7};
            mc_llm_request rq = req(p, np, junk, 3, 40, nl);
            mc_llm_result got;
            mc_err err;
            int rc = mc_remote_generate(r, &rq, &got, &err);
            CHECK_MSG(rc == 0, "%s", err.msg);
            if (want.stop == MC_GEN_EOG)
                want.stop = nl ? MC_GEN_NEWLINE : MC_GEN_EOG; /* "stop" says no more */
            check_same(&got, &want, false, prompts[k]);
            CHECK(!got.verified);
            CHECK_EQ_INT(got.gen.n_accepted, 0);
            mc_llm_result_fini(&got);
            mc_gen_result_fini(&want);
        }
    }
    mc_remote_stats st;
    mc_remote_get_stats(r, &st);
    CHECK_EQ_INT(st.unverified, (int64_t)MC_ARRAY_LEN(prompts) * 2);
    CHECK_EQ_INT(fake_requests(&f),
                 (int)MC_ARRAY_LEN(prompts) * 2); /* a model was given: no probe */
    mc_remote_free(r);
    fake_stop(&f);
    engine_close(&e);
    LEAK_CHECK();
}

/* Healing: /v1/verify heals exactly as in process; vLLM and OpenAI servers get
 * the prompt as text (decoded prompt + healed bytes) and heal by re-tokenizing. */
MC_TEST(remote_healing) {
    engine e;
    engine_open(&e);
    const char *texts[] = {"Once upon a ti", "Lily and B", "The cat sat on the ma"};
    const int flavours[3] = {FL_MCCOM, FL_VLLM, FL_OPENAI};
    const mc_remote_kind kinds[3] = {MC_REMOTE_MCCOM, MC_REMOTE_VLLM, MC_REMOTE_OPENAI};
    for (int fl = 0; fl < 3; fl++) {
        fake f;
        fake_start(&f, &e, flavours[fl]);
        mc_remote *r = client(&f, kinds[fl], NULL);
        for (size_t k = 0; k < MC_ARRAY_LEN(texts); k++) {
            const char *text = texts[k];
            int32_t ids[64];
            mc_tok_heal_result h;
            MC_REQUIRE(mc_tok_heal(e.tok, text, strlen(text), MC_TOK_ADD_BOS, 0, ids, 64, &h) == 0);
            MC_REQUIRE(h.removed_len > 0);
            mc_gen_result want;
            if (flavours[fl] == FL_MCCOM) {
                reference(&f, ids, (int)h.n_ids, NULL, 0, 12, true, text + h.keep_len,
                          h.removed_len, &want);
            } else {
                /* what a server that re-tokenizes the whole text computes */
                int32_t full[64];
                int nf = encode(&e, text, full, 64);
                reference(&f, full, nf, NULL, 0, 12, true, NULL, 0, &want);
            }
            mc_llm_request rq = req(ids, (int)h.n_ids, ids, 0, 12, true);
            rq.heal = text + h.keep_len;
            rq.heal_len = h.removed_len;
            mc_llm_result got;
            mc_err err;
            int rc = mc_remote_generate(r, &rq, &got, &err);
            CHECK_MSG(rc == 0, "%s: %s", text, err.msg);
            if (flavours[fl] == FL_OPENAI && want.stop == MC_GEN_EOG)
                want.stop = MC_GEN_NEWLINE;
            check_same(&got, &want, flavours[fl] != FL_OPENAI, text);
            CHECK_EQ_INT(got.verified, flavours[fl] == FL_MCCOM);
            if (flavours[fl] != FL_MCCOM) {
                pthread_mutex_lock(&f.mu);
                CHECK(f.last_prompt_text);
                pthread_mutex_unlock(&f.mu);
            }
            mc_llm_result_fini(&got);
            mc_gen_result_fini(&want);
        }
        mc_remote_free(r);
        fake_stop(&f);
    }
    engine_close(&e);
    LEAK_CHECK();
}

/* ---- failures ----------------------------------------------------------------------------- */

typedef struct simple {
    engine e;
    fake f;
    int32_t p[64];
    int np;
} simple;

static void simple_open(simple *s, int flavour) {
    engine_open(&s->e);
    fake_start(&s->f, &s->e, flavour);
    s->np = encode(&s->e, "Once upon a time", s->p, 64);
}

static void simple_close(simple *s) {
    fake_stop(&s->f);
    engine_close(&s->e);
}

MC_TEST(remote_retries_then_success) {
    simple s;
    simple_open(&s, FL_MCCOM);
    mc_remote_params pp = mc_remote_params_default();
    pp.retries = 3;
    pp.backoff_ms = 20;
    mc_remote *r = client(&s.f, MC_REMOTE_MCCOM, &pp);
    fake_push(&s.f, (act){ACT_500, 0, NULL});
    fake_push(&s.f, (act){ACT_RESET, 0, NULL});
    fake_push(&s.f, (act){ACT_500, 0, NULL});
    mc_llm_request rq = req(s.p, s.np, NULL, 0, 12, false);
    mc_llm_result got;
    mc_err err;
    double t0 = now_ms();
    int rc = mc_remote_generate(r, &rq, &got, &err);
    double ms = now_ms() - t0;
    CHECK_MSG(rc == 0, "%s", err.msg);
    CHECK_EQ_INT(got.attempts, 4);
    CHECK(ms >= 20 + 40 + 80 - 5); /* the back-off doubled each time */
    mc_gen_result want;
    reference(&s.f, s.p, s.np, NULL, 0, 12, false, NULL, 0, &want);
    check_same(&got, &want, true, "after retries");
    mc_gen_result_fini(&want);
    mc_llm_result_fini(&got);
    mc_remote_stats st;
    mc_remote_get_stats(r, &st);
    CHECK_EQ_INT(st.retries, 3);
    CHECK_EQ_INT(st.failures, 0);
    CHECK_EQ_INT(fake_requests(&s.f), 4);

    /* retries run out: the error stands, the generation is empty, and the
     * call's cost stays on the record (its four requests) */
    for (int i = 0; i < 4; i++)
        fake_push(&s.f, (act){ACT_500, 0, NULL});
    rc = mc_remote_generate(r, &rq, &got, &err);
    CHECK_EQ_INT(rc, MC_ENET);
    CHECK(strstr(err.msg, "500") != NULL);
    CHECK(got.gen.text == NULL && got.gen.n == 0);
    CHECK_EQ_INT(got.attempts, 4);
    CHECK(got.bytes_sent > 0);
    mc_remote_get_stats(r, &st);
    CHECK_EQ_INT(st.failures, 1);
    CHECK_EQ_INT(fake_requests(&s.f), 8);
    mc_remote_free(r);
    simple_close(&s);
    LEAK_CHECK();
}

MC_TEST(remote_deadline_times_out) {
    simple s;
    simple_open(&s, FL_MCCOM);
    mc_remote_params pp = mc_remote_params_default();
    pp.timeout_ms = 300;
    mc_remote *r = client(&s.f, MC_REMOTE_MCCOM, &pp);
    const act acts[2] = {{ACT_SLOW, 3000, NULL}, {ACT_HANG, 0, NULL}};
    for (int i = 0; i < 2; i++) {
        fake_push(&s.f, acts[i]);
        mc_llm_request rq = req(s.p, s.np, NULL, 0, 12, false);
        mc_llm_result got;
        mc_err err;
        double t0 = now_ms();
        int rc = mc_remote_generate(r, &rq, &got, &err);
        double ms = now_ms() - t0;
        CHECK_EQ_INT(rc, MC_ETIMEOUT);
        CHECK_MSG(ms >= 295 && ms <= 300 + 60 * scale(), "deadline 300 ms, returned after %.1f ms",
                  ms);
        CHECK(got.gen.text == NULL);
    }
    /* the slow answer of the first call is not taken for the next one */
    mc_llm_request rq = req(s.p, s.np, NULL, 0, 12, false);
    mc_llm_result got;
    mc_err err;
    CHECK_EQ_INT(mc_remote_generate(r, &rq, &got, &err), 0);
    mc_gen_result want;
    reference(&s.f, s.p, s.np, NULL, 0, 12, false, NULL, 0, &want);
    check_same(&got, &want, true, "after timeouts");
    mc_gen_result_fini(&want);
    mc_llm_result_fini(&got);
    mc_remote_free(r);
    simple_close(&s);
    LEAK_CHECK();
}

typedef struct canceler {
    volatile int flag;
    int after_ms;
    double set_at;
} canceler;

static void *cancel_main(void *arg) {
    canceler *c = arg;
    sleep_ms(c->after_ms);
    c->set_at = now_ms();
    c->flag = 1;
    return NULL;
}

MC_TEST(remote_cancel_is_prompt) {
    simple s;
    simple_open(&s, FL_MCCOM);
    mc_remote_params pp = mc_remote_params_default();
    pp.breaker_failures = 1;
    pp.retries = 3;
    pp.backoff_ms = 400;
    mc_remote *r = client(&s.f, MC_REMOTE_MCCOM, &pp);
    /* in a transfer (no answer), and in a back-off after a 500 */
    const act acts[2] = {{ACT_HANG, 0, NULL}, {ACT_500, 0, NULL}};
    for (int i = 0; i < 2; i++) {
        fake_push(&s.f, acts[i]);
        canceler c = {0, 150, 0};
        pthread_t th;
        MC_REQUIRE(pthread_create(&th, NULL, cancel_main, &c) == 0);
        mc_llm_request rq = req(s.p, s.np, NULL, 0, 12, false);
        rq.cancel = &c.flag;
        mc_llm_result got;
        mc_err err;
        int rc = mc_remote_generate(r, &rq, &got, &err);
        double back = now_ms();
        pthread_join(th, NULL);
        CHECK_EQ_INT(rc, MC_ECANCELED);
        CHECK_MSG(back - c.set_at <= 50 * scale(), "returned %.1f ms after the cancel",
                  back - c.set_at);
        CHECK(got.gen.text == NULL);
    }
    mc_remote_stats st;
    mc_remote_get_stats(r, &st);
    CHECK_EQ_INT(st.canceled, 2);
    CHECK_EQ_INT(st.failures, 0);
    CHECK(mc_remote_available(r)); /* cancellations say nothing about the server */
    /* an already set flag: nothing is sent */
    int before = fake_requests(&s.f);
    volatile int set = 1;
    mc_llm_request rq = req(s.p, s.np, NULL, 0, 12, false);
    rq.cancel = &set;
    mc_llm_result got;
    mc_err err;
    CHECK_EQ_INT(mc_remote_generate(r, &rq, &got, &err), MC_ECANCELED);
    sleep_ms(30);
    CHECK_EQ_INT(fake_requests(&s.f), before);
    mc_remote_free(r);
    simple_close(&s);
    LEAK_CHECK();
}

MC_TEST(remote_breaker_opens_and_recovers) {
    simple s;
    simple_open(&s, FL_MCCOM);
    mc_remote_params pp = mc_remote_params_default();
    pp.retries = 0;
    pp.breaker_failures = 3;
    pp.breaker_cooldown_ms = 300;
    mc_remote *r = client(&s.f, MC_REMOTE_MCCOM, &pp);
    mc_llm_request rq = req(s.p, s.np, NULL, 0, 12, false);
    mc_llm_result got;
    mc_err err;
    for (int i = 0; i < 3; i++) {
        CHECK(mc_remote_available(r));
        fake_push(&s.f, (act){ACT_500, 0, NULL});
        CHECK_EQ_INT(mc_remote_generate(r, &rq, &got, &err), MC_ENET);
    }
    CHECK(!mc_remote_available(r));
    mc_remote_stats st;
    mc_remote_get_stats(r, &st);
    CHECK_EQ_INT(st.breaker_opens, 1);
    /* open: fails at once, without the network */
    int seen = fake_requests(&s.f);
    CHECK_EQ_INT(seen, 3);
    for (int i = 0; i < 5; i++) {
        int64_t t0 = mc_time_ns();
        int rc = mc_remote_generate(r, &rq, &got, &err);
        double us = (double)(mc_time_ns() - t0) / 1e3;
        CHECK_EQ_INT(rc, MC_ENET);
        CHECK(strstr(err.msg, "breaker") != NULL);
        CHECK_MSG(us < 1000.0 * scale(), "an open breaker took %.0f us", us);
    }
    sleep_ms(30);
    CHECK_EQ_INT(fake_requests(&s.f), seen);
    CHECK_EQ_INT(fake_connections(&s.f), 1);
    /* half-open after the cooldown: a failed trial opens it again at once */
    sleep_ms(320);
    CHECK(mc_remote_available(r));
    fake_push(&s.f, (act){ACT_500, 0, NULL});
    CHECK_EQ_INT(mc_remote_generate(r, &rq, &got, &err), MC_ENET);
    CHECK(!mc_remote_available(r));
    CHECK_EQ_INT(fake_requests(&s.f), seen + 1);
    mc_remote_get_stats(r, &st);
    CHECK_EQ_INT(st.breaker_opens, 2);
    /* a successful trial closes it */
    sleep_ms(320);
    CHECK(mc_remote_available(r));
    CHECK_EQ_INT(mc_remote_generate(r, &rq, &got, &err), 0);
    mc_llm_result_fini(&got);
    CHECK(mc_remote_available(r));
    /* closed: one failure does not open it again */
    fake_push(&s.f, (act){ACT_500, 0, NULL});
    CHECK_EQ_INT(mc_remote_generate(r, &rq, &got, &err), MC_ENET);
    CHECK(mc_remote_available(r));
    CHECK_EQ_INT(mc_remote_generate(r, &rq, &got, &err), 0);
    mc_llm_result_fini(&got);
    mc_remote_get_stats(r, &st);
    CHECK_EQ_INT(st.breaker_opens, 2);
    CHECK_EQ_INT(st.calls, 3 + 5 + 1 + 1 + 2);
    /* a request refused before any I/O says nothing about the server: it
     * neither resets nor adds to the count of consecutive failures */
    fake_push(&s.f, (act){ACT_500, 0, NULL});
    CHECK_EQ_INT(mc_remote_generate(r, &rq, &got, &err), MC_ENET);
    mc_llm_request bad = rq;
    bad.heal = "\xff"; /* not UTF-8: /v1/verify cannot carry it */
    bad.heal_len = 1;
    seen = fake_requests(&s.f);
    CHECK_EQ_INT(mc_remote_generate(r, &bad, &got, &err), MC_EINVAL);
    CHECK_EQ_INT(fake_requests(&s.f), seen);
    fake_push(&s.f, (act){ACT_500, 0, NULL});
    CHECK_EQ_INT(mc_remote_generate(r, &rq, &got, &err), MC_ENET);
    CHECK(mc_remote_available(r));
    fake_push(&s.f, (act){ACT_500, 0, NULL});
    CHECK_EQ_INT(mc_remote_generate(r, &rq, &got, &err), MC_ENET);
    CHECK(!mc_remote_available(r)); /* the third server failure in a row */
    mc_remote_free(r);
    simple_close(&s);
    LEAK_CHECK();
}

/* Garbled answers: MC_EFORMAT, never a crash, never a half-filled result. */
MC_TEST(remote_garbled_answers) {
    simple s;
    simple_open(&s, FL_MCCOM);
    mc_remote_params pp = mc_remote_params_default();
    pp.breaker_failures = 0; /* never opens: every answer below is looked at */
    mc_remote *r = client(&s.f, MC_REMOTE_MCCOM, &pp);
    int32_t d[2] = {s.p[1], s.p[2]};
    const act acts[] = {
        {ACT_GARBAGE, 0, NULL},
        {ACT_TRUNCATED, 0, NULL},
        {ACT_BODY, 0, ""},
        {ACT_BODY, 0, "[]"},
        {ACT_BODY, 0,
         "{\"tokens\": [1, 2], \"accepted\": 5, \"text\": \"\", \"finish_reason\": \"length\"}"},
        {ACT_BODY, 0,
         "{\"tokens\": [1, 99999], \"accepted\": 0, \"text\": \"\", \"finish_reason\": "
         "\"length\"}"},
        {ACT_BODY, 0,
         "{\"tokens\": [1, \"x\"], \"accepted\": 0, \"text\": \"\", \"finish_reason\": "
         "\"length\"}"},
        {ACT_BODY, 0,
         "{\"tokens\": [7, 8], \"accepted\": 1, \"text\": \"\", \"finish_reason\": \"length\"}"},
        {ACT_BODY, 0, "{\"tokens\": [1, 2], \"accepted\": 0, \"text\": \"\"}"},
        {ACT_BODY, 0,
         "{\"tokens\": [1, 2], \"accepted\": 0, \"text\": \"\", \"finish_reason\": \"why\"}"},
        {ACT_BODY, 0,
         "{\"tokens\": [1, -2], \"accepted\": 0, \"text\": \"\", \"finish_reason\": \"length\"}"},
        {ACT_BODY, 0,
         "{\"tokens\": {}, \"accepted\": 0, \"text\": \"\", \"finish_reason\": \"length\"}"},
    };
    for (size_t i = 0; i < MC_ARRAY_LEN(acts); i++) {
        fake_push(&s.f, acts[i]);
        mc_llm_request rq = req(s.p, s.np, d, 2, 4, false);
        mc_llm_result got;
        mc_err err;
        int rc = mc_remote_generate(r, &rq, &got, &err);
        CHECK_MSG(rc == MC_EFORMAT, "answer %zu: %s (%s)", i, mc_code_name(rc), err.msg);
        CHECK(got.gen.text == NULL && got.gen.toks == NULL);
    }
    /* the vLLM answers too */
    mc_remote_free(r);
    s.f.flavour = FL_VLLM;
    r = client(&s.f, MC_REMOTE_VLLM, &pp);
    const char *vbad[] = {
        "{\"choices\": []}",
        "{\"choices\": [{\"text\": \"\", \"finish_reason\": \"length\"}]}",
        "{\"choices\": [{\"text\": \"\", \"finish_reason\": \"length\", \"prompt_logprobs\": "
        "[null]}]}",
        "{\"choices\": [{\"text\": \"\", \"finish_reason\": \"length\", \"logprobs\": {\"tokens\": "
        "[\"token_id:zz\"]}}]}",
    };
    for (size_t i = 0; i < MC_ARRAY_LEN(vbad); i++) {
        fake_push(&s.f, (act){ACT_BODY, 0, vbad[i]});
        mc_llm_request rq = req(s.p, s.np, d, 2, 4, false);
        mc_llm_result got;
        mc_err err;
        int rc = mc_remote_generate(r, &rq, &got, &err);
        CHECK_MSG(rc == MC_EFORMAT, "vLLM answer %zu: %s (%s)", i, mc_code_name(rc), err.msg);
    }
    /* and the client still works afterwards */
    mc_llm_request rq = req(s.p, s.np, d, 2, 4, false);
    mc_llm_result got;
    mc_err err;
    CHECK_EQ_INT(mc_remote_generate(r, &rq, &got, &err), 0);
    mc_llm_result_fini(&got);
    mc_remote_free(r);
    simple_close(&s);
    LEAK_CHECK();
}

/* The escalation log: one JSON object per line, sizes and file names, no code. */
MC_TEST(remote_log_has_counts_not_code) {
    simple s;
    simple_open(&s, FL_MCCOM);
    char path[512];
    snprintf(path, sizeof path, "%s/escalations.jsonl", mc_test_tmpdir());
    mc_remote_params pp = mc_remote_params_default();
    pp.log_path = path;
    pp.retries = 0;
    pp.breaker_failures = 1;
    pp.api_key = "sk-secret-key-123";
    mc_remote *r = client(&s.f, MC_REMOTE_AUTO, &pp);
    const char *files[2] = {"src/app/models.py", "src/app/views.py"};
    mc_llm_request rq = req(s.p, s.np, s.p + 1, 3, 20, false);
    rq.files = files;
    rq.n_files = 2;
    mc_llm_result got;
    mc_err err;
    CHECK_EQ_INT(mc_remote_generate(r, &rq, &got, &err), 0);
    char generated[512];
    snprintf(generated, sizeof generated, "%s", got.gen.text);
    int64_t sent = got.bytes_sent;
    mc_llm_result_fini(&got);
    fake_push(&s.f, (act){ACT_500, 0, NULL});
    CHECK_EQ_INT(mc_remote_generate(r, &rq, &got, &err), MC_ENET);
    CHECK_EQ_INT(mc_remote_generate(r, &rq, &got, &err), MC_ENET); /* breaker */
    mc_remote_free(r);

    FILE *fp = fopen(path, "r");
    MC_REQUIRE(fp);
    char line[4096];
    int n = 0;
    const char *want_status[3] = {"ok", "MC_ENET", "MC_ENET"};
    while (fgets(line, sizeof line, fp)) {
        json_error_t je;
        json_t *o = json_loads(line, 0, &je);
        CHECK_MSG(o != NULL, "log line %d is not JSON: %s", n, je.text);
        if (!o)
            continue;
        MC_REQUIRE(n < 3);
        CHECK_EQ_STR(json_string_value(json_object_get(o, "status")), want_status[n]);
        CHECK_EQ_STR(json_string_value(json_object_get(o, "kind")), "mccom");
        CHECK(json_is_string(json_object_get(o, "time")));
        CHECK(json_is_number(json_object_get(o, "latency_ms")));
        CHECK_EQ_INT(json_integer_value(json_object_get(o, "n_prompt")), s.np);
        CHECK_EQ_INT(json_integer_value(json_object_get(o, "n_draft")), 3);
        json_t *fl = json_object_get(o, "files");
        CHECK_EQ_INT(json_array_size(fl), 2);
        CHECK_EQ_STR(json_string_value(json_array_get(fl, 1)), "src/app/views.py");
        if (n == 0) {
            /* the probe and the verify request, both counted */
            CHECK_EQ_INT(json_integer_value(json_object_get(o, "bytes_sent")), sent);
            CHECK(json_integer_value(json_object_get(o, "bytes_received")) > 0);
            CHECK_EQ_INT(json_integer_value(json_object_get(o, "http_status")), 200);
            CHECK(json_integer_value(json_object_get(o, "n_tokens")) > 0);
        }
        if (n == 2) {
            CHECK_EQ_INT(json_integer_value(json_object_get(o, "bytes_sent")), 0);
            CHECK_EQ_STR(json_string_value(json_object_get(o, "breaker")), "open");
        }
        /* never the code: neither the prompt, the draft nor the answer */
        CHECK(strstr(line, "Once upon") == NULL);
        CHECK(strlen(generated) < 4 || strstr(line, generated) == NULL);
        CHECK(strstr(line, "sk-secret") == NULL);
        CHECK(strstr(line, "\"prompt\"") == NULL && strstr(line, "\"text\"") == NULL);
        json_decref(o);
        n++;
    }
    fclose(fp);
    CHECK_EQ_INT(n, 3);
    simple_close(&s);
    LEAK_CHECK();
}

MC_TEST(remote_rejects_bad_setup) {
    mc_remote_params p = mc_remote_params_default();
    mc_remote *r = NULL;
    mc_err err;
    CHECK_EQ_INT(mc_remote_new(&p, NULL, &r, &err), MC_EINVAL); /* no URL: nothing is sent */
    CHECK(r == NULL);
    p.url = "ftp://example.org";
    CHECK_EQ_INT(mc_remote_new(&p, NULL, &r, &err), MC_EINVAL);
    p.url = "http://127.0.0.1:1/v1/";
    p.timeout_ms = 0;
    CHECK_EQ_INT(mc_remote_new(&p, NULL, &r, &err), MC_EINVAL);
    p.timeout_ms = 1000;
    p.log_path = "/nonexistent-dir/x.jsonl";
    CHECK_EQ_INT(mc_remote_new(&p, NULL, &r, &err), MC_EIO);
    p.log_path = NULL;
    mc_remote_kind k;
    for (int i = 0; i < 4; i++) {
        CHECK_EQ_INT(mc_remote_kind_parse(mc_remote_kind_name((mc_remote_kind)i), &k), 0);
        CHECK_EQ_INT(k, i);
    }
    CHECK_EQ_INT(mc_remote_kind_parse("tgi", &k), MC_EINVAL);
    /* nobody listens on port 1: a network error after the retries, quickly */
    p.retries = 1;
    p.backoff_ms = 10;
    MC_REQUIRE(mc_remote_new(&p, NULL, &r, &err) == 0);
    int32_t prompt[2] = {1, 2};
    mc_llm_request rq = req(prompt, 2, NULL, 0, 4, false);
    mc_llm_result got;
    double t0 = now_ms();
    CHECK_EQ_INT(mc_remote_generate(r, &rq, &got, &err), MC_ENET);
    CHECK(now_ms() - t0 < 500 * scale());
    CHECK_EQ_INT(mc_remote_probe(r, &err), MC_ENET);
    rq.n_prompt = 0;
    CHECK_EQ_INT(mc_remote_generate(r, &rq, &got, &err), MC_EINVAL);
    mc_remote_stats st;
    mc_remote_get_stats(r, &st);
    CHECK_EQ_INT(st.retries, 2); /* one per call that reached the network */
    mc_remote_free(r);
    mc_remote_free(NULL);
    LEAK_CHECK();
}

/* The client as the cascade's large-model tier. */
MC_TEST(remote_as_llm_tier) {
    simple s;
    simple_open(&s, FL_MCCOM);
    char url[64];
    url_of(s.f.port, url, sizeof url);
    strcat(url, "/v1/");
    mc_remote_params p = mc_remote_params_default();
    p.url = url;
    p.breaker_failures = 1;
    p.retries = 0;
    p.breaker_cooldown_ms = 60000;
    mc_llm *l = NULL;
    mc_err err;
    MC_REQUIRE(mc_llm_remote_new(&p, s.e.tok, &l, &err) == 0);
    CHECK(strstr(mc_llm_describe(l), "http://127.0.0.1") != NULL);
    mc_llm_request rq = req(s.p, s.np, s.p + 1, 2, 10, true);
    mc_llm_result got;
    CHECK_EQ_INT(mc_llm_generate(l, &rq, &got, &err), 0);
    CHECK(strncmp(mc_llm_describe(l), "mccom ", 6) == 0);
    mc_gen_result want;
    reference(&s.f, s.p, s.np, s.p + 1, 2, 10, true, NULL, 0, &want);
    check_same(&got, &want, true, "llm tier");
    CHECK(got.ms_total > 0 && got.ms_server > 0);
    mc_gen_result_fini(&want);
    mc_llm_result_fini(&got);
    CHECK(mc_llm_available(l));
    fake_push(&s.f, (act){ACT_500, 0, NULL});
    CHECK_EQ_INT(mc_llm_generate(l, &rq, &got, &err), MC_ENET);
    CHECK(!mc_llm_available(l)); /* the cascade now answers locally */
    mc_llm_free(l);
    simple_close(&s);
    LEAK_CHECK();
}

/* ---- the real peer: llama.cpp's llama-server ------------------------------------------------ */

static const char *llama_server_path(void) {
    const char *p = getenv("MC_LLAMA_SERVER");
    return p && *p ? p : "build/llama-server/llama-server";
}

static int free_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    MC_REQUIRE(fd >= 0);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    MC_REQUIRE(bind(fd, (struct sockaddr *)&a, sizeof a) == 0);
    socklen_t al = sizeof a;
    MC_REQUIRE(getsockname(fd, (struct sockaddr *)&a, &al) == 0);
    close(fd);
    return ntohs(a.sin_port);
}

static pid_t llama_start(const char *model, int port) {
    char port_s[16], log[512];
    snprintf(port_s, sizeof port_s, "%d", port);
    snprintf(log, sizeof log, "%s/llama-server.log", mc_test_tmpdir());
    fflush(NULL); /* the child must not write this process's buffered output */
    pid_t pid = fork();
    MC_REQUIRE(pid >= 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlives the test */
        FILE *lf = freopen(log, "a", stdout);
        (void)lf;
        dup2(STDOUT_FILENO, STDERR_FILENO);
        execl(llama_server_path(), "llama-server", "-m", model, "--host", "127.0.0.1", "--port",
              port_s, "-c", "4096", "-np", "1", "-t", "1", "--no-warmup", (char *)NULL);
        _exit(127);
    }
    return pid;
}

/* GET /health until it says 200 (the model is loaded). */
static bool llama_wait(int port, pid_t pid, int max_ms) {
    for (int t = 0; t < max_ms; t += 50) {
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid)
            return false;
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = {0};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        a.sin_port = htons((uint16_t)port);
        if (connect(fd, (struct sockaddr *)&a, sizeof a) == 0) {
            const char *q = "GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
            char buf[256] = {0};
            if (send(fd, q, strlen(q), MSG_NOSIGNAL) > 0 && recv(fd, buf, sizeof buf - 1, 0) > 0 &&
                strncmp(buf, "HTTP/1.1 200", 12) == 0) {
                close(fd);
                return true;
            }
        }
        close(fd);
        sleep_ms(50);
    }
    return false;
}

static void llama_kill(pid_t pid) {
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
}

typedef struct killer {
    pid_t pid;
    int after_ms;
} killer;

static void *kill_main(void *arg) {
    killer *k = arg;
    sleep_ms(k->after_ms);
    kill(k->pid, SIGKILL);
    return NULL;
}

MC_TEST_T(remote_llama_server_end_to_end, 300) {
    const char *bin = llama_server_path();
    if (access(bin, X_OK) != 0) {
        mc_test_fail_at(__FILE__, __LINE__,
                        "llama.cpp's llama-server %s is missing: `make test` builds it "
                        "(scripts/build-llama-server.sh)",
                        bin);
        return;
    }
    engine e;
    engine_open(&e);
    int port = free_port();
    pid_t pid = llama_start(stories_path(), port);
    if (!llama_wait(port, pid, 60000)) {
        mc_test_fail_at(__FILE__, __LINE__,
                        "llama-server did not come up (log: %s/llama-server.log)",
                        mc_test_tmpdir());
        llama_kill(pid);
        engine_close(&e);
        return;
    }
    char url[64];
    url_of(port, url, sizeof url);
    mc_remote_params p = mc_remote_params_default();
    p.url = url;
    p.retries = 1;
    p.backoff_ms = 20;
    p.breaker_failures = 2;
    p.breaker_cooldown_ms = 500;
    p.timeout_ms = 30000;
    mc_remote *r = NULL;
    mc_err err;
    MC_REQUIRE(mc_remote_new(&p, e.tok, &r, &err) == 0);
    CHECK_EQ_INT(mc_remote_probe(r, &err), 0);
    CHECK_EQ_INT(mc_remote_kind_of(r), MC_REMOTE_OPENAI);

    /* the same greedy text as in process, with and without the line stop */
    fake none; /* the reference helper's lock only */
    memset(&none, 0, sizeof none);
    none.e = &e;
    pthread_mutex_init(&none.engine_mu, NULL);
    int n_newline = 0;
    for (size_t k = 0; k < MC_ARRAY_LEN(prompts); k++) {
        int32_t pr[64];
        int np = encode(&e, prompts[k], pr, 64);
        for (int nl = 0; nl <= 1; nl++) {
            int max_new = nl ? 120 : 48;
            mc_gen_result want;
            reference(&none, pr, np, NULL, 0, max_new, nl, NULL, 0, &want);
            mc_llm_request rq = req(pr, np, pr + 1, 2, max_new, nl);
            mc_llm_result got;
            int rc = mc_remote_generate(r, &rq, &got, &err);
            CHECK_MSG(rc == 0, "%s: %s", prompts[k], err.msg);
            if (want.stop == MC_GEN_EOG && nl)
                want.stop = MC_GEN_NEWLINE; /* OpenAI's "stop" */
            if (rc == 0) {
                check_same(&got, &want, false, prompts[k]);
                CHECK(!got.verified);
            }
            n_newline += nl && want.stop == MC_GEN_NEWLINE;
            mc_llm_result_fini(&got);
            mc_gen_result_fini(&want);
        }
    }
    CHECK_MSG(n_newline >= 2, "only %d prompts ended a line: the stop was not exercised",
              n_newline);
    /* healing: llama-server gets text and tokenizes it exactly as mccom does */
    {
        const char *text = "Once upon a ti";
        int32_t ids[64], full[64];
        mc_tok_heal_result h;
        MC_REQUIRE(mc_tok_heal(e.tok, text, strlen(text), MC_TOK_ADD_BOS, 0, ids, 64, &h) == 0);
        int nf = encode(&e, text, full, 64);
        mc_gen_result want;
        reference(&none, full, nf, NULL, 0, 16, false, NULL, 0, &want);
        mc_llm_request rq = req(ids, (int)h.n_ids, NULL, 0, 16, false);
        rq.heal = text + h.keep_len;
        rq.heal_len = h.removed_len;
        mc_llm_result got;
        CHECK_EQ_INT(mc_remote_generate(r, &rq, &got, &err), 0);
        CHECK_MSG(strcmp(got.gen.text, want.text) == 0, "healed: '%s' != '%s'", got.gen.text,
                  want.text);
        mc_llm_result_fini(&got);
        mc_gen_result_fini(&want);
    }
    mc_remote_stats st;
    mc_remote_get_stats(r, &st);
    CHECK_EQ_INT(st.failures, 0);
    CHECK_EQ_INT(st.unverified, (int64_t)MC_ARRAY_LEN(prompts) * 2);

    /* the server dies during a long request: MC_ENET (a reset, then a refused retry) */
    int32_t pr[64];
    int np = encode(&e, "Once upon a time", pr, 64);
    mc_llm_request longrq = req(pr, np, NULL, 0, 4000, false);
    killer kl = {pid, 150};
    pthread_t th;
    MC_REQUIRE(pthread_create(&th, NULL, kill_main, &kl) == 0);
    int rc = 0, calls = 0;
    double t_long = mc_time_s() * 1e3;
    mc_llm_result got;
    while (rc == 0 && calls < 50) {
        rc = mc_remote_generate(r, &longrq, &got, &err);
        mc_llm_result_fini(&got);
        calls++;
    }
    pthread_join(th, NULL);
    waitpid(pid, NULL, 0);
    printf("killed during long request %d (each ~%.0f ms): %s\n", calls,
           calls > 1 ? (mc_time_s() * 1e3 - t_long) / calls : 0.0, err.msg);
    CHECK_MSG(rc == MC_ENET, "after the kill: %s (%s)", mc_code_name(rc), err.msg);
    /* the breaker opens after the second failure, then fails in microseconds */
    mc_llm_request rq = req(pr, np, NULL, 0, 8, false);
    CHECK_EQ_INT(mc_remote_generate(r, &rq, &got, &err), MC_ENET);
    CHECK(!mc_remote_available(r));
    int64_t t0 = mc_time_ns();
    CHECK_EQ_INT(mc_remote_generate(r, &rq, &got, &err), MC_ENET);
    CHECK((mc_time_ns() - t0) / 1000 < (int64_t)(1000 * scale()));
    /* the server comes back on the same port: the trial call closes the breaker */
    pid = llama_start(stories_path(), port);
    bool up = llama_wait(port, pid, 60000);
    CHECK_MSG(up, "llama-server did not come back");
    while (up && !mc_remote_available(r))
        sleep_ms(20);
    mc_gen_result want;
    reference(&none, pr, np, NULL, 0, 8, false, NULL, 0, &want);
    rc = mc_remote_generate(r, &rq, &got, &err);
    CHECK_MSG(rc == 0, "after the restart: %s", err.msg);
    if (rc == 0)
        check_same(&got, &want, false, "after the restart");
    CHECK(mc_remote_available(r));
    mc_llm_result_fini(&got);
    mc_gen_result_fini(&want);
    mc_remote_get_stats(r, &st);
    CHECK_EQ_INT(st.breaker_opens, 1);
    mc_remote_free(r);
    llama_kill(pid);
    pthread_mutex_destroy(&none.engine_mu);
    engine_close(&e);
    LEAK_CHECK();
}
