/* src/remote/remote.c — the HTTP client of the large-model tier: the three
 * server kinds of include/mccom/remote.h (mccom's /v1/verify, vLLM's
 * prompt_logprobs, any OpenAI-compatible /v1/completions), the probe, retries
 * with back-off under one deadline per call, the circuit breaker, the
 * escalation log, and the mc_llm adapter.
 *
 * Shape of one call (mc_remote_generate):
 *   breaker gate → probe if needed → one or two requests of the server's kind
 *   (each request: attempts with back-off, http.c) → answer checked and turned
 *   into an mc_gen_result whose text is rebuilt from the ids by gen.h's rules
 *   (text.c) → stats, breaker, one log line.
 *
 * What counts against the breaker: no connection, a reset, a 5xx/408/429, a
 * deadline passed, a garbled answer. A 4xx other than those is the request's
 * fault (the server is up) and a cancellation is the caller's: neither does.
 *
 * Deliberately not here: prompt construction, drafting, stop strings other
 * than the line end, streaming. The log holds counts, sizes, file names and
 * outcomes, never code, and never the API key. */
#include "mccom/remote.h"

#include "remote_internal.h"

#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum { BR_CLOSED, BR_OPEN, BR_HALF_OPEN };
static const char *const breaker_names[] = {"closed", "open", "half_open"};

struct mc_remote {
    char *url;     /* base URL without a trailing "/" or "/v1" */
    char *api_key; /* owned copies of the parameters' strings */
    char *model;   /* NULL until given or probed */
    char *log_path;
    mc_remote_params p;  /* numbers; its string fields point at the copies above */
    const mc_tok *tok;   /* borrowed, may be NULL */
    mc_remote_kind kind; /* AUTO until probed */
    bool probed;
    mc__http http;
    FILE *log;
    /* circuit breaker */
    int br_state;
    int br_fails;        /* consecutive failed calls */
    int64_t br_retry_ns; /* while open: when a trial call may go */
    mc_remote_stats st;
    char desc[400];
};

/* One call as the caller sees it: a deadline shared by every request in it. */
typedef struct call {
    mc_remote *r;
    const volatile int *cancel;
    int64_t deadline;
    int max_retries;
    int attempts;
    int http_status;
    int64_t sent, received;
    const char *endpoint; /* the last one used (for the log) */
} call;

/* ---- names and parameters ---------------------------------------------------- */

static const char *const kind_names[] = {"auto", "mccom", "vllm", "openai"};

const char *mc_remote_kind_name(mc_remote_kind k) {
    if ((int)k < 0 || (int)k >= (int)MC_ARRAY_LEN(kind_names))
        return "unknown";
    return kind_names[k];
}

int mc_remote_kind_parse(const char *s, mc_remote_kind *out) {
    for (int i = 0; s && i < (int)MC_ARRAY_LEN(kind_names); i++) {
        if (strcmp(s, kind_names[i]) == 0) {
            *out = (mc_remote_kind)i;
            return 0;
        }
    }
    return MC_EINVAL;
}

mc_remote_params mc_remote_params_default(void) {
    mc_remote_params p;
    memset(&p, 0, sizeof p);
    p.kind = MC_REMOTE_AUTO;
    p.connect_timeout_ms = 1000;
    p.timeout_ms = 10000;
    p.retries = 2;
    p.backoff_ms = 50;
    p.breaker_failures = 3;
    p.breaker_cooldown_ms = 5000;
    return p;
}

static char *dup_str(const char *s) {
    if (!s)
        return NULL;
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d)
        memcpy(d, s, n);
    return d;
}

static void update_desc(mc_remote *r) {
    snprintf(r->desc, sizeof r->desc, "%s %s%s%s", mc_remote_kind_name(r->kind), r->url,
             r->model ? " model " : "", r->model ? r->model : "");
}

int mc_remote_new(const mc_remote_params *p, const mc_tok *tok, mc_remote **out, mc_err *err) {
    if (!out)
        return mc_err_set(err, MC_EINVAL, -1, "no output pointer");
    *out = NULL;
    if (!p || !p->url || !*p->url)
        return mc_err_set(err, MC_EINVAL, -1,
                          "no server URL configured (nothing is sent without one)");
    if (strncmp(p->url, "http://", 7) != 0 && strncmp(p->url, "https://", 8) != 0)
        return mc_err_set(err, MC_EINVAL, -1, "server URL '%s' must start with http:// or https://",
                          p->url);
    if ((int)p->kind < MC_REMOTE_AUTO || p->kind > MC_REMOTE_OPENAI)
        return mc_err_set(err, MC_EINVAL, -1, "unknown server kind %d", (int)p->kind);
    if (p->connect_timeout_ms <= 0 || p->timeout_ms <= 0 || p->retries < 0 || p->backoff_ms < 0 ||
        p->breaker_cooldown_ms < 0)
        return mc_err_set(err, MC_EINVAL, -1,
                          "bad remote parameters (connect %d ms, timeout %d ms, %d retries, "
                          "back-off %d ms, cooldown %d ms)",
                          p->connect_timeout_ms, p->timeout_ms, p->retries, p->backoff_ms,
                          p->breaker_cooldown_ms);
    mc_remote *r = calloc(1, sizeof *r);
    if (!r)
        return mc_err_set(err, MC_ENOMEM, -1, "out of memory");
    r->url = dup_str(p->url);
    r->api_key = dup_str(p->api_key);
    r->model = dup_str(p->model);
    r->log_path = dup_str(p->log_path);
    if (!r->url || (p->api_key && !r->api_key) || (p->model && !r->model) ||
        (p->log_path && !r->log_path)) {
        mc_remote_free(r);
        return mc_err_set(err, MC_ENOMEM, -1, "out of memory");
    }
    /* "http://h:p", "http://h:p/", "http://h:p/v1" and "http://h:p/v1/" are one server */
    size_t n = strlen(r->url);
    while (n > 0 && r->url[n - 1] == '/')
        r->url[--n] = '\0';
    if (n >= 3 && strcmp(r->url + n - 3, "/v1") == 0) {
        n -= 3;
        r->url[n] = '\0';
        while (n > 0 && r->url[n - 1] == '/')
            r->url[--n] = '\0';
    }
    r->p = *p;
    r->p.url = r->url;
    r->p.api_key = r->api_key;
    r->p.model = r->model;
    r->p.log_path = r->log_path;
    r->tok = tok;
    r->kind = p->kind;
    int rc = mc__http_init(&r->http, r->api_key, err);
    if (rc != 0) {
        mc_remote_free(r);
        return rc;
    }
    if (r->log_path) {
        /* it names the user's files: this user only, never through a planted link */
        int fd = open(r->log_path, O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
        r->log = fd >= 0 ? fdopen(fd, "a") : NULL;
        if (fd >= 0 && !r->log)
            close(fd);
        if (!r->log) {
            rc = mc_err_set(err, MC_EIO, -1, "cannot open the escalation log %s for appending",
                            r->log_path);
            mc_remote_free(r);
            return rc;
        }
    }
    update_desc(r);
    *out = r;
    return 0;
}

void mc_remote_free(mc_remote *r) {
    if (!r)
        return;
    mc__http_fini(&r->http);
    if (r->log)
        fclose(r->log);
    free(r->url);
    free(r->api_key);
    free(r->model);
    free(r->log_path);
    free(r);
}

mc_remote_kind mc_remote_kind_of(const mc_remote *r) { return r ? r->kind : MC_REMOTE_AUTO; }

void mc_remote_get_stats(const mc_remote *r, mc_remote_stats *st) {
    if (!st)
        return;
    if (!r) {
        memset(st, 0, sizeof *st);
        return;
    }
    *st = r->st;
}

/* ---- circuit breaker --------------------------------------------------------- */

bool mc_remote_available(mc_remote *r) {
    if (!r)
        return false;
    return r->br_state != BR_OPEN || mc_time_ns() >= r->br_retry_ns;
}

/* May a call go now? Sets *trial for the half-open trial call. */
static bool breaker_enter(mc_remote *r, bool *trial) {
    *trial = false;
    if (r->br_state == BR_OPEN) {
        if (mc_time_ns() < r->br_retry_ns)
            return false;
        r->br_state = BR_HALF_OPEN;
    }
    *trial = r->br_state == BR_HALF_OPEN;
    return true;
}

static bool is_server_failure(int rc) {
    return rc == MC_ENET || rc == MC_ETIMEOUT || rc == MC_EFORMAT;
}

/* answered: an HTTP answer arrived during the call (the server is up). */
static void breaker_leave(mc_remote *r, int rc, bool answered) {
    if (rc == MC_ECANCELED)
        return; /* the caller's decision says nothing about the server */
    if (!is_server_failure(rc)) {
        if (answered) {
            r->br_state = BR_CLOSED;
            r->br_fails = 0;
        }
        return; /* refused before any request (bad input): no evidence either way */
    }
    r->br_fails++;
    bool enabled = r->p.breaker_failures > 0; /* 0: never open */
    if (enabled && (r->br_state == BR_HALF_OPEN || r->br_fails >= r->p.breaker_failures)) {
        r->br_state = BR_OPEN;
        r->br_retry_ns = mc_time_ns() + (int64_t)r->p.breaker_cooldown_ms * 1000000;
        r->st.breaker_opens++;
    }
}

/* ---- the escalation log -------------------------------------------------------- */

/* A file name as a JSON string; bytes that are not UTF-8 become '?'. */
static json_t *name_json(const char *s) {
    json_t *j = json_string(s);
    if (j)
        return j;
    char *c = dup_str(s);
    if (!c)
        return NULL;
    for (char *q = c; *q; q++)
        if ((unsigned char)*q >= 0x80)
            *q = '?';
    j = json_string(c);
    free(c);
    return j;
}

static void log_call(mc_remote *r, const char *op, const call *c, const mc_llm_request *rq,
                     const mc_llm_result *res, int rc, double ms) {
    if (!r->log)
        return;
    json_t *o = json_object();
    if (!o)
        return;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char when[64], stamp[80];
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(stamp, sizeof stamp, "%s.%03dZ", when, (int)(ts.tv_nsec / 1000000));
    json_object_set_new(o, "time", json_string(stamp));
    json_object_set_new(o, "op", json_string(op));
    json_object_set_new(o, "url", name_json(r->url));
    json_object_set_new(o, "kind", json_string(mc_remote_kind_name(r->kind)));
    if (c && c->endpoint)
        json_object_set_new(o, "endpoint", json_string(c->endpoint));
    json_object_set_new(o, "status", json_string(rc == 0 ? "ok" : mc_code_name(rc)));
    json_object_set_new(o, "http_status", json_integer(c ? c->http_status : 0));
    json_object_set_new(o, "attempts", json_integer(c ? c->attempts : 0));
    json_object_set_new(o, "latency_ms", json_real(ms));
    json_object_set_new(o, "bytes_sent", json_integer(c ? c->sent : 0));
    json_object_set_new(o, "bytes_received", json_integer(c ? c->received : 0));
    if (rq) {
        json_object_set_new(o, "n_prompt", json_integer(rq->n_prompt));
        json_object_set_new(o, "n_draft", json_integer(rq->n_draft));
        json_object_set_new(o, "max_new", json_integer(rq->max_new));
        json_object_set_new(o, "n_tokens", json_integer(res ? res->gen.n : 0));
        json_object_set_new(o, "n_accepted", json_integer(res ? res->gen.n_accepted : 0));
        json_object_set_new(o, "text_bytes", json_integer(res ? (json_int_t)res->gen.text_len : 0));
        json_object_set_new(o, "verified", json_boolean(res && res->verified));
        json_t *files = json_array();
        for (int i = 0; files && i < rq->n_files; i++)
            if (rq->files && rq->files[i])
                json_array_append_new(files, name_json(rq->files[i]));
        json_object_set_new(o, "files", files);
    }
    json_object_set_new(o, "breaker", json_string(breaker_names[r->br_state]));
    char *line = json_dumps(o, JSON_COMPACT);
    if (line) {
        fprintf(r->log, "%s\n", line);
        fflush(r->log);
        free(line);
    }
    json_decref(o);
}

/* ---- requests: attempts, back-off, status codes --------------------------------- */

/* The server's own words from an error body, if it has any. */
static void error_message(const char *body, size_t len, char *out, size_t cap) {
    out[0] = '\0';
    json_t *j = json_loadb(body, len, 0, NULL);
    if (!j)
        return;
    json_t *e = json_object_get(j, "error");
    const char *m = NULL;
    if (json_is_string(e))
        m = json_string_value(e);
    else if (json_is_object(e) && json_is_string(json_object_get(e, "message")))
        m = json_string_value(json_object_get(e, "message"));
    else if (json_is_string(json_object_get(j, "message")))
        m = json_string_value(json_object_get(j, "message"));
    else if (json_is_string(json_object_get(j, "detail")))
        m = json_string_value(json_object_get(j, "detail"));
    if (m)
        snprintf(out, cap, ": %s", m);
    json_decref(j);
}

/* Sleep ms, waking every 10 ms to look at the cancel flag. */
static int sleep_cancelable(int64_t ms, const volatile int *cancel) {
    int64_t end = mc_time_ns() + ms * 1000000;
    for (;;) {
        if (cancel && *cancel)
            return MC_ECANCELED;
        int64_t left = end - mc_time_ns();
        if (left <= 0)
            return 0;
        if (left > 10000000)
            left = 10000000;
        struct timespec ts = {0, (long)left};
        nanosleep(&ts, NULL);
    }
}

/* One request with retries: GET (body NULL) or POST JSON. On success *out is
 * the parsed answer (caller decrefs). */
static int request(call *c, const char *path, json_t *body, json_t **out, mc_err *err) {
    mc_remote *r = c->r;
    *out = NULL;
    c->endpoint = path;
    char *txt = NULL;
    if (body) {
        txt = json_dumps(body, JSON_COMPACT);
        if (!txt)
            return mc_err_set(err, MC_ENOMEM, -1, "out of memory for the request");
    }
    size_t ul = strlen(r->url) + strlen(path) + 1;
    char *url = malloc(ul);
    if (!url) {
        free(txt);
        return mc_err_set(err, MC_ENOMEM, -1, "out of memory");
    }
    snprintf(url, ul, "%s%s", r->url, path);
    int rc = 0;
    for (int k = 0;; k++) {
        mc__http_resp resp;
        rc = mc__http_once(&r->http, url, txt, txt ? strlen(txt) : 0, r->p.connect_timeout_ms,
                           c->deadline, c->cancel, &resp, err);
        if (resp.started)
            c->attempts++;
        c->sent += resp.bytes_sent;
        c->received += resp.bytes_received;
        if (resp.status)
            c->http_status = resp.status;
        if (rc == 0) {
            int st = resp.status;
            if (st >= 200 && st < 300) {
                json_error_t je;
                *out = json_loadb(resp.body, resp.len, 0, &je);
                if (!*out)
                    rc = mc_err_set(err, MC_EFORMAT, je.position,
                                    "%s answered with malformed JSON (%s at byte %d of %zu)", path,
                                    je.text, je.position, resp.len);
                break;
            }
            char msg[200];
            error_message(resp.body, resp.len, msg, sizeof msg);
            if (st >= 500 || st == 408 || st == 429) {
                rc = mc_err_set(err, MC_ENET, -1, "%s: HTTP %d%s", path, st, msg);
            } else {
                int code = st == 404 || st == 405 || st == 501 ? MC_EUNSUPPORTED
                           : st == 413                         ? MC_EFULL
                                                               : MC_EINVAL;
                rc = mc_err_set(err, code, -1, "%s: the server refused the request (HTTP %d%s%s)",
                                path, st, st == 401 || st == 403 ? ", check the API key" : "", msg);
                break;
            }
        }
        if (rc != MC_ENET || k >= c->max_retries)
            break;
        int64_t delay = (int64_t)r->p.backoff_ms << (k < 20 ? k : 20);
        if (mc_time_ns() + delay * 1000000 >= c->deadline)
            break; /* no time left for another attempt: the last error stands */
        if (sleep_cancelable(delay, c->cancel) != 0) {
            rc = mc_err_set(err, MC_ECANCELED, -1, "canceled");
            break;
        }
        r->st.retries++;
    }
    free(url);
    free(txt);
    return rc;
}

/* ---- JSON helpers --------------------------------------------------------------- */

static json_t *ids_json(const int32_t *ids, int n) {
    json_t *a = json_array();
    for (int i = 0; a && i < n; i++) {
        if (json_array_append_new(a, json_integer(ids[i])) != 0) {
            json_decref(a);
            return NULL;
        }
    }
    return a;
}

/* Set o[key] = v (stolen); false if v is NULL or out of memory. */
static bool jset(json_t *o, const char *key, json_t *v) {
    return v && json_object_set_new(o, key, v) == 0;
}

static double jnum(const json_t *o, const char *key) {
    json_t *v = json_object_get(o, key);
    return json_is_number(v) ? json_number_value(v) : 0.0;
}

/* A token id in the vocabulary of r->tok (any non-negative id without one). */
static bool id_ok(const mc_remote *r, json_int_t v) {
    if (v < 0 || v > INT32_MAX)
        return false;
    return !r->tok || v < mc_tok_n_vocab(r->tok);
}

/* "the server gave no ids" (distinct from every MC_E* code) */
#define NO_IDS 1

/* ids from a "token_ids"-like array; NO_IDS when it is not one. */
static int parse_id_array(const mc_remote *r, const json_t *a, int32_t **ids, int *n) {
    if (!json_is_array(a))
        return NO_IDS;
    size_t m = json_array_size(a);
    int32_t *v = malloc((m ? m : 1) * sizeof *v);
    if (!v)
        return MC_ENOMEM;
    for (size_t i = 0; i < m; i++) {
        json_t *e = json_array_get(a, i);
        if (!json_is_integer(e) || !id_ok(r, json_integer_value(e))) {
            free(v);
            return MC_EFORMAT;
        }
        v[i] = (int32_t)json_integer_value(e);
    }
    *ids = v;
    *n = (int)m;
    return 0;
}

/* The generated ids of a completion choice, in whichever form the server
 * gives them: "token_ids" (vLLM >= 0.10), logprobs.tokens as "token_id:N"
 * (vLLM's return_tokens_as_token_ids), or logprobs.content[].id (llama.cpp).
 * Returns 0 (found), NO_IDS (the server gave none), MC_EFORMAT, MC_ENOMEM. */
static int choice_ids(const mc_remote *r, const json_t *choice, int32_t **ids, int *n) {
    *ids = NULL;
    *n = 0;
    int rc = parse_id_array(r, json_object_get(choice, "token_ids"), ids, n);
    if (rc != NO_IDS)
        return rc;
    json_t *lp = json_object_get(choice, "logprobs");
    json_t *toks = json_object_get(lp, "tokens");
    json_t *content = json_object_get(lp, "content");
    json_t *a = json_is_array(toks) ? toks : content;
    if (!json_is_array(a))
        return NO_IDS;
    size_t m = json_array_size(a);
    int32_t *v = malloc((m ? m : 1) * sizeof *v);
    if (!v)
        return MC_ENOMEM;
    for (size_t i = 0; i < m; i++) {
        json_t *e = json_array_get(a, i);
        long long id = -1;
        if (a == toks) {
            const char *s = json_string_value(e);
            char *end = NULL;
            if (!s || strncmp(s, "token_id:", 9) != 0) {
                free(v);
                return NO_IDS; /* decoded strings: no ids */
            }
            id = strtoll(s + 9, &end, 10);
            if (end == s + 9 || *end) {
                free(v);
                return MC_EFORMAT;
            }
        } else {
            json_t *jid = json_object_get(e, "id");
            if (!json_is_integer(jid)) {
                free(v);
                return NO_IDS;
            }
            id = json_integer_value(jid);
        }
        if (!id_ok(r, id)) {
            free(v);
            return MC_EFORMAT;
        }
        v[i] = (int32_t)id;
    }
    *ids = v;
    *n = (int)m;
    return 0;
}

/* log p of generated token i, if the answer has it (vLLM's token_logprobs,
 * llama.cpp's content[].logprob), else 0. */
static float choice_logprob(const json_t *choice, int i) {
    json_t *lp = json_object_get(choice, "logprobs");
    json_t *v = json_array_get(json_object_get(lp, "token_logprobs"), (size_t)i);
    if (!v)
        v = json_object_get(json_array_get(json_object_get(lp, "content"), (size_t)i), "logprob");
    return json_is_number(v) ? (float)json_number_value(v) : 0.0f;
}

/* choices[0] of a completion answer, or NULL. */
static json_t *first_choice(const json_t *ans) {
    json_t *ch = json_object_get(ans, "choices");
    json_t *c0 = json_array_get(ch, 0);
    return json_is_object(c0) ? c0 : NULL;
}

/* ---- building the result ------------------------------------------------------------ */

typedef struct toks_buf {
    mc_gen_token *v;
    int n, cap;
} toks_buf;

static int toks_add(toks_buf *b, int32_t id, float logprob, bool from_draft) {
    if (b->n == b->cap) {
        int nc = b->cap ? b->cap * 2 : 32;
        mc_gen_token *nv = realloc(b->v, (size_t)nc * sizeof *nv);
        if (!nv)
            return MC_ENOMEM;
        b->v = nv;
        b->cap = nc;
    }
    mc_gen_token *t = &b->v[b->n++];
    memset(t, 0, sizeof *t);
    t->id = id;
    t->logprob = logprob;
    t->from_draft = from_draft;
    return 0;
}

/* Move tokens and text into the result. */
static int finish_gen(mc_gen_result *g, toks_buf *b, mc__text *t, mc_err *err) {
    g->toks = b->v;
    g->n = b->n;
    b->v = NULL;
    int rc = mc__text_finish(t, &g->text, &g->text_len);
    if (rc != 0)
        return mc_err_set(err, MC_ENOMEM, -1, "out of memory for the text");
    return 0;
}

static int stop_from_reason(const char *s, bool stop_newline, int *stop) {
    if (!s)
        return MC_EFORMAT;
    if (strcmp(s, "length") == 0)
        *stop = MC_GEN_LENGTH;
    else if (strcmp(s, "newline") == 0)
        *stop = MC_GEN_NEWLINE;
    else if (strcmp(s, "eog") == 0)
        *stop = MC_GEN_EOG;
    else if (strcmp(s, "ctx_full") == 0)
        *stop = MC_GEN_CTX_FULL;
    else if (strcmp(s, "stop") == 0)
        /* OpenAI's "stop": a stop string (ours is only "\n") or the end token */
        *stop = stop_newline ? MC_GEN_NEWLINE : MC_GEN_EOG;
    else
        return MC_EFORMAT;
    return 0;
}

/* The prompt as text for servers that must heal on their own: the decoded
 * prompt followed by the healing bytes (the server re-tokenizes it). */
static int prompt_text(const mc_remote *r, const mc_llm_request *rq, json_t **out, mc_err *err) {
    *out = NULL;
    if (!r->tok)
        return mc_err_set(err, MC_EINVAL, -1, "healing against this server needs a tokenizer");
    char small[8];
    int64_t n = mc_tok_decode(r->tok, rq->prompt, rq->n_prompt, MC_TOK_DECODE_STRIP_PREFIX, small,
                              sizeof small);
    if (n < 0)
        return mc_err_set(err, MC_EINVAL, -1, "the prompt holds ids outside the vocabulary");
    char *s = malloc((size_t)n + rq->heal_len + 1);
    if (!s)
        return mc_err_set(err, MC_ENOMEM, -1, "out of memory");
    mc_tok_decode(r->tok, rq->prompt, rq->n_prompt, MC_TOK_DECODE_STRIP_PREFIX, s, (size_t)n + 1);
    memcpy(s + n, rq->heal, rq->heal_len);
    s[(size_t)n + rq->heal_len] = '\0';
    *out = json_stringn(s, (size_t)n + rq->heal_len);
    free(s);
    if (!*out)
        return mc_err_set(err, MC_EINVAL, -1, "the healed prompt is not valid UTF-8 text");
    return 0;
}

/* ---- the probe --------------------------------------------------------------------- */

static int set_model(mc_remote *r, const char *id) {
    if (r->model || !id)
        return 0;
    r->model = dup_str(id);
    if (!r->model)
        return MC_ENOMEM;
    r->p.model = r->model;
    return 0;
}

static int probe(call *c, mc_err *err) {
    mc_remote *r = c->r;
    json_t *ans = NULL;
    int rc;
    if (r->kind == MC_REMOTE_MCCOM) {
        rc = request(c, "/health", NULL, &ans, err);
        if (rc != 0)
            return rc;
        json_t *st = json_object_get(ans, "status");
        if (!json_is_string(st) || strcmp(json_string_value(st), "ok") != 0) {
            json_decref(ans);
            return mc_err_set(err, MC_EFORMAT, -1, "/health did not say {\"status\": \"ok\"}");
        }
        rc = set_model(r, json_string_value(json_object_get(ans, "model")));
    } else {
        rc = request(c, "/v1/models", NULL, &ans, err);
        if (rc != 0)
            return rc;
        json_t *m0 = json_array_get(json_object_get(ans, "data"), 0);
        json_t *id = json_object_get(m0, "id");
        if (!json_is_string(id)) {
            json_decref(ans);
            return mc_err_set(err, MC_EFORMAT, -1, "/v1/models lists no model");
        }
        if (r->kind == MC_REMOTE_AUTO) {
            const char *owner = json_string_value(json_object_get(m0, "owned_by"));
            r->kind = owner && strcmp(owner, "mccom") == 0  ? MC_REMOTE_MCCOM
                      : owner && strcmp(owner, "vllm") == 0 ? MC_REMOTE_VLLM
                                                            : MC_REMOTE_OPENAI;
        }
        rc = set_model(r, json_string_value(id));
    }
    json_decref(ans);
    if (rc != 0)
        return mc_err_set(err, MC_ENOMEM, -1, "out of memory");
    r->probed = true;
    update_desc(r);
    return 0;
}

/* A "\n" stop string ends a one-line request on the server; several lines are
 * cut here, at the n-th newline. */
static bool one_line(const mc_llm_request *rq) { return rq->stop_newline && rq->n_lines <= 1; }

/* ---- the three kinds ------------------------------------------------------------------ */

static int gen_mccom(call *c, const mc_llm_request *rq, mc_llm_result *res, mc_err *err) {
    mc_remote *r = c->r;
    json_t *body = json_object();
    bool ok = body && jset(body, "prompt", ids_json(rq->prompt, rq->n_prompt)) &&
              jset(body, "draft", ids_json(rq->draft, rq->n_draft)) &&
              jset(body, "max_tokens", json_integer(rq->max_new)) &&
              jset(body, "stop_at_newline", json_boolean(rq->stop_newline)) &&
              (rq->n_lines <= 1 || jset(body, "n_lines", json_integer(rq->n_lines)));
    if (ok && rq->heal_len > 0) {
        json_t *h = json_stringn(rq->heal, rq->heal_len);
        if (!h) {
            json_decref(body);
            return mc_err_set(err, MC_EINVAL, -1, "the healing bytes are not valid UTF-8");
        }
        ok = jset(body, "heal", h);
    }
    if (!ok) {
        json_decref(body);
        return mc_err_set(err, MC_ENOMEM, -1, "out of memory for the request");
    }
    json_t *ans = NULL;
    int rc = request(c, "/v1/verify", body, &ans, err);
    json_decref(body);
    if (rc != 0)
        return rc;

    toks_buf tb = {0};
    mc__text tx;
    mc__text_init(&tx, r->tok, rq->heal_len, rq->stop_newline, rq->n_lines);
    json_t *toks = json_object_get(ans, "tokens");
    json_t *acc = json_object_get(ans, "accepted");
    json_t *lps = json_object_get(ans, "token_logprobs");
    const char *reason = json_string_value(json_object_get(ans, "finish_reason"));
    json_t *text = json_object_get(ans, "text");
    if (!json_is_array(toks) || !json_is_integer(acc) || !reason ||
        (!r->tok && !json_is_string(text))) {
        rc = mc_err_set(err, MC_EFORMAT, -1,
                        "/v1/verify: the answer lacks tokens, accepted, text or finish_reason");
        goto out;
    }
    int n = (int)json_array_size(toks);
    json_int_t k = json_integer_value(acc);
    if (k < 0 || k > rq->n_draft || k > n || n > k + rq->max_new) {
        rc = mc_err_set(
            err, MC_EFORMAT, -1,
            "/v1/verify: %lld accepted and %d tokens do not fit a draft of %d and max_tokens %d",
            (long long)k, n, rq->n_draft, rq->max_new);
        goto out;
    }
    for (int i = 0; i < n; i++) {
        json_t *e = json_array_get(toks, (size_t)i);
        if (!json_is_integer(e) || !id_ok(r, json_integer_value(e)) ||
            (i < k && json_integer_value(e) != rq->draft[i])) {
            rc = mc_err_set(err, MC_EFORMAT, -1, "/v1/verify: token %d is not a valid id%s", i,
                            i < k ? " equal to the accepted draft token" : "");
            goto out;
        }
        int32_t id = (int32_t)json_integer_value(e);
        json_t *lp = json_array_get(lps, (size_t)i);
        if (toks_add(&tb, id, json_is_number(lp) ? (float)json_number_value(lp) : 0.0f, i < k) !=
                0 ||
            (r->tok && mc__text_push(&tx, id) != 0)) {
            rc = mc_err_set(err, MC_ENOMEM, -1, "out of memory");
            goto out;
        }
    }
    mc_gen_result *g = &res->gen;
    /* a server may shorten a draft that would overflow its context */
    json_t *snd = json_object_get(ans, "n_draft");
    g->n_draft = json_is_integer(snd) && json_integer_value(snd) >= k &&
                         json_integer_value(snd) <= rq->n_draft
                     ? (int)json_integer_value(snd)
                     : rq->n_draft;
    g->n_accepted = (int)k;
    if (stop_from_reason(reason, rq->stop_newline, &g->stop) != 0) {
        rc = mc_err_set(err, MC_EFORMAT, -1, "/v1/verify: unknown finish_reason");
        goto out;
    }
    if (tx.ended)
        g->stop = tx.stop;
    json_t *tm = json_object_get(ans, "timings");
    g->ms_prompt = jnum(tm, "prompt_ms");
    g->ms_gen = jnum(tm, "gen_ms");
    g->n_reused = (int)jnum(tm, "n_reused");
    g->n_computed = (int)jnum(tm, "n_computed");
    g->n_passes = (int)jnum(tm, "n_passes");
    res->ms_server = g->ms_prompt + g->ms_gen;
    res->verified = true;
    if (r->tok) {
        rc = finish_gen(g, &tb, &tx, err);
    } else {
        /* no tokenizer: the server's text, which follows the same rules */
        g->toks = tb.v;
        g->n = tb.n;
        tb.v = NULL;
        g->text_len = json_string_length(text);
        g->text = malloc(g->text_len + 1);
        if (!g->text)
            rc = mc_err_set(err, MC_ENOMEM, -1, "out of memory");
        else
            memcpy(g->text, json_string_value(text), g->text_len + 1);
    }
out:
    free(tb.v);
    mc__text_fini(&tx);
    json_decref(ans);
    return rc;
}

/* A greedy /v1/completions request. prompt: ids or text (stolen). vllm: ask
 * for the generated ids ("token_id:N") and, if prompt_logprobs > 0, for the
 * best tokens at every prompt position. Fills *ans (choices[0] checked). */
static int completion(call *c, json_t *prompt, int max_tokens, bool stop_newline, bool vllm,
                      int prompt_logprobs, json_t **ans, mc_err *err) {
    mc_remote *r = c->r;
    json_t *body = json_object();
    if (!body || !prompt) {
        json_decref(prompt);
        json_decref(body);
        return mc_err_set(err, MC_ENOMEM, -1, "out of memory for the request");
    }
    bool ok = jset(body, "prompt", prompt) &&
              (!r->model || jset(body, "model", json_string(r->model))) &&
              jset(body, "max_tokens", json_integer(max_tokens)) &&
              jset(body, "temperature", json_real(0.0));
    if (ok && stop_newline) {
        json_t *st = json_array();
        ok = st && json_array_append_new(st, json_string("\n")) == 0 && jset(body, "stop", st);
    }
    if (ok && vllm) {
        /* the generated token's id: vLLM names it "token_id:N" when asked */
        ok = jset(body, "logprobs", json_integer(1)) &&
             jset(body, "return_tokens_as_token_ids", json_true());
        if (ok && prompt_logprobs > 0)
            ok = jset(body, "prompt_logprobs", json_integer(prompt_logprobs));
    }
    if (!ok) {
        json_decref(body);
        return mc_err_set(err, MC_ENOMEM, -1, "out of memory for the request");
    }
    int rc = request(c, "/v1/completions", body, ans, err);
    json_decref(body);
    if (rc == 0 && !first_choice(*ans)) {
        json_decref(*ans);
        *ans = NULL;
        rc = mc_err_set(err, MC_EFORMAT, -1, "/v1/completions: the answer has no choices[0]");
    }
    return rc;
}

/* A plain completion's answer into the result: ids (if any) through the text
 * rules, else the server's text. heal_len: bytes of the text that are healing. */
static int take_completion(call *c, const json_t *ans, const mc_llm_request *rq, toks_buf *tb,
                           mc__text *tx, bool need_ids, mc_llm_result *res, mc_err *err) {
    mc_remote *r = c->r;
    const bool stop_newline = rq->stop_newline;
    json_t *ch = first_choice(ans);
    const char *reason = json_string_value(json_object_get(ch, "finish_reason"));
    json_t *text = json_object_get(ch, "text");
    if (!json_is_string(text) || !reason)
        return mc_err_set(err, MC_EFORMAT, -1,
                          "/v1/completions: choices[0] lacks text or finish_reason");
    int32_t *ids = NULL;
    int n = 0;
    int rc = r->tok ? choice_ids(r, ch, &ids, &n) : NO_IDS;
    if (rc == MC_ENOMEM)
        return mc_err_set(err, MC_ENOMEM, -1, "out of memory");
    if (rc == MC_EFORMAT || (rc == NO_IDS && need_ids))
        return mc_err_set(err, MC_EFORMAT, -1, "/v1/completions: %s token ids",
                          rc == NO_IDS ? "the answer carries no" : "bad");
    int stop = MC_GEN_LENGTH;
    if (stop_from_reason(reason, stop_newline, &stop) != 0)
        return mc_err_set(err, MC_EFORMAT, -1, "/v1/completions: unknown finish_reason");
    mc_gen_result *g = &res->gen;
    json_t *tm = json_object_get(ans, "timings"); /* llama.cpp's */
    res->ms_server += jnum(tm, "prompt_ms") + jnum(tm, "predicted_ms");
    if (rc == 0) {
        for (int i = 0; i < n && !tx->ended; i++) {
            if (toks_add(tb, ids[i], choice_logprob(ch, i), false) != 0 ||
                mc__text_push(tx, ids[i]) != 0) {
                free(ids);
                return mc_err_set(err, MC_ENOMEM, -1, "out of memory");
            }
        }
        free(ids);
        g->stop = tx->ended ? tx->stop : stop;
        return 0;
    }
    /* text only: as the server cut it (and cut at a line end it missed) */
    const char *s = json_string_value(text);
    size_t len = json_string_length(text);
    if (stop_newline) {
        int left = rq->n_lines > 1 ? rq->n_lines : 1;
        for (size_t k = 0; k < len; k++) {
            if (s[k] == '\n' && --left == 0) {
                len = k;
                stop = MC_GEN_NEWLINE;
                break;
            }
        }
    }
    g->stop = stop;
    g->text = malloc(len + 1);
    if (!g->text)
        return mc_err_set(err, MC_ENOMEM, -1, "out of memory");
    memcpy(g->text, s, len);
    g->text[len] = '\0';
    g->text_len = len;
    return 0;
}

/* OPENAI, and vLLM when it cannot verify (healing) or has nothing to verify. */
static int gen_plain(call *c, const mc_llm_request *rq, bool vllm, mc_llm_result *res,
                     mc_err *err) {
    mc_remote *r = c->r;
    toks_buf tb = {0};
    mc__text tx;
    mc__text_init(&tx, r->tok, 0, rq->stop_newline, rq->n_lines);
    res->gen.stop = MC_GEN_LENGTH;
    int rc = 0;
    if (rq->max_new > 0) {
        json_t *prompt = NULL;
        if (rq->heal_len > 0)
            rc = prompt_text(r, rq, &prompt, err); /* the server heals by re-tokenizing */
        else if (!(prompt = ids_json(rq->prompt, rq->n_prompt)))
            rc = mc_err_set(err, MC_ENOMEM, -1, "out of memory");
        json_t *ans = NULL;
        if (rc == 0)
            rc = completion(c, prompt, rq->max_new, one_line(rq), vllm, 0, &ans, err);
        if (rc == 0)
            rc = take_completion(c, ans, rq, &tb, &tx, vllm && r->tok, res, err);
        json_decref(ans);
    }
    if (rc == 0 && !res->gen.text)
        rc = finish_gen(&res->gen, &tb, &tx, err);
    res->gen.n_draft = rq->n_draft;
    res->verified = vllm && rq->n_draft == 0 && rq->heal_len == 0;
    free(tb.v);
    mc__text_fini(&tx);
    return rc;
}

/* The rank-1 token of one prompt_logprobs entry ({"<id>": {"logprob": x,
 * "rank": r, ...}}) and its log-probability. */
static int rank1_of(const mc_remote *r, const json_t *entry, int32_t *id, float *logprob) {
    const char *key;
    json_t *v;
    if (!json_is_object(entry))
        return MC_EFORMAT;
    json_object_foreach((json_t *)entry, key, v) {
        json_t *rk = json_object_get(v, "rank");
        if (json_is_integer(rk) && json_integer_value(rk) == 1) {
            char *end = NULL;
            long long x = strtoll(key, &end, 10);
            if (end == key || *end || !id_ok(r, x))
                return MC_EFORMAT;
            *id = (int32_t)x;
            json_t *lp = json_object_get(v, "logprob");
            *logprob = json_is_number(lp) ? (float)json_number_value(lp) : 0.0f;
            return 0;
        }
    }
    return MC_EFORMAT;
}

static int gen_vllm(call *c, const mc_llm_request *rq, mc_llm_result *res, mc_err *err) {
    mc_remote *r = c->r;
    if (!r->tok)
        return mc_err_set(err, MC_EINVAL, -1, "the vLLM kind needs a tokenizer (text from ids)");
    if (rq->n_draft == 0 || rq->heal_len > 0)
        return gen_plain(c, rq, true, res, err);

    /* 1. prompt ⊕ draft, one generated token, the rank-1 token at every position */
    int np = rq->n_prompt, nd = rq->n_draft;
    int32_t *all = malloc((size_t)(np + nd + rq->max_new + 1) * sizeof *all);
    if (!all)
        return mc_err_set(err, MC_ENOMEM, -1, "out of memory");
    memcpy(all, rq->prompt, (size_t)np * sizeof *all);
    memcpy(all + np, rq->draft, (size_t)nd * sizeof *all);
    toks_buf tb = {0};
    mc__text tx;
    mc__text_init(&tx, r->tok, 0, rq->stop_newline, rq->n_lines);
    mc_gen_result *g = &res->gen;
    g->stop = MC_GEN_LENGTH;
    g->n_draft = nd;
    json_t *ans = NULL;
    int32_t *gen_ids = NULL;
    int n_gen = 0;
    int rc = completion(c, ids_json(all, np + nd), 1, false, true, 1, &ans, err);
    if (rc != 0)
        goto out;
    json_t *ch = first_choice(ans);
    json_t *pl = json_object_get(ch, "prompt_logprobs");
    if (!json_is_array(pl))
        pl = json_object_get(ans, "prompt_logprobs");
    if (!json_is_array(pl) || json_array_size(pl) != (size_t)(np + nd)) {
        rc = mc_err_set(err, MC_EFORMAT, -1,
                        "/v1/completions: prompt_logprobs has %zu entries for %d prompt tokens",
                        json_array_size(pl), np + nd);
        goto out;
    }
    rc = choice_ids(r, ch, &gen_ids, &n_gen);
    if (rc == MC_ENOMEM) {
        rc = mc_err_set(err, MC_ENOMEM, -1, "out of memory");
        goto out;
    }
    if (rc != 0 || n_gen < 1) {
        rc = mc_err_set(err, MC_EFORMAT, -1, "/v1/completions: no id for the generated token");
        goto out;
    }
    /* 2. walk the draft as mc_gen_run does */
    int n_own = 0;
    for (int i = 0; i <= nd && !tx.ended; i++) {
        int32_t best;
        float lp;
        if (i < nd) {
            if (rank1_of(r, json_array_get(pl, (size_t)(np + i)), &best, &lp) != 0) {
                rc = mc_err_set(err, MC_EFORMAT, -1,
                                "/v1/completions: prompt_logprobs[%d] has no rank-1 token id",
                                np + i);
                goto out;
            }
        } else {
            best = gen_ids[0]; /* the bonus: every draft token was accepted */
            lp = choice_logprob(ch, 0);
        }
        bool accept = i < nd && best == rq->draft[i];
        if (!accept && rq->max_new == 0)
            break;
        if (toks_add(&tb, best, lp, accept) != 0 || mc__text_push(&tx, best) != 0) {
            rc = mc_err_set(err, MC_ENOMEM, -1, "out of memory");
            goto out;
        }
        if (accept) {
            g->n_accepted++;
            continue;
        }
        n_own = 1;
        break;
    }
    json_decref(ans);
    ans = NULL;
    /* 3. the rest of the line: a plain completion after what is decided */
    if (!tx.ended && n_own == 1 && rq->max_new > 1) {
        for (int i = 0; i < tb.n; i++)
            all[np + i] = tb.v[i].id;
        rc = completion(c, ids_json(all, np + tb.n), rq->max_new - 1, one_line(rq), true, 0,
                        &ans, err);
        if (rc == 0)
            rc = take_completion(c, ans, rq, &tb, &tx, true, res, err);
        if (rc != 0)
            goto out;
    } else if (tx.ended) {
        g->stop = tx.stop;
    }
    rc = finish_gen(g, &tb, &tx, err);
    res->verified = true;
out:
    json_decref(ans);
    free(gen_ids);
    free(all);
    free(tb.v);
    mc__text_fini(&tx);
    return rc;
}

/* ---- the public calls ------------------------------------------------------------------ */

static bool need_probe(const mc_remote *r) {
    if (r->probed)
        return false;
    return r->kind == MC_REMOTE_AUTO || (!r->model && r->kind != MC_REMOTE_MCCOM);
}

int mc_remote_probe(mc_remote *r, mc_err *err) {
    if (!r)
        return mc_err_set(err, MC_EINVAL, -1, "no client");
    if (r->probed)
        return 0;
    int64_t t0 = mc_time_ns();
    call c = {
        .r = r, .deadline = t0 + (int64_t)r->p.timeout_ms * 1000000, .max_retries = r->p.retries};
    bool trial;
    int rc;
    if (!breaker_enter(r, &trial)) {
        rc = mc_err_set(err, MC_ENET, -1,
                        "the circuit breaker is open (the server failed recently)");
    } else {
        if (trial)
            c.max_retries = 0;
        rc = probe(&c, err);
        breaker_leave(r, rc, c.http_status > 0);
    }
    r->st.bytes_sent += c.sent;
    r->st.bytes_received += c.received;
    log_call(r, "probe", &c, NULL, NULL, rc, (double)(mc_time_ns() - t0) / 1e6);
    return rc;
}

int mc_remote_generate(mc_remote *r, const mc_llm_request *rq, mc_llm_result *res, mc_err *err) {
    if (!res)
        return mc_err_set(err, MC_EINVAL, -1, "no result record");
    memset(res, 0, sizeof *res);
    if (!r || !rq)
        return mc_err_set(err, MC_EINVAL, -1, "no client or no request");
    if (!rq->prompt || rq->n_prompt < 1 || rq->n_draft < 0 || (rq->n_draft > 0 && !rq->draft) ||
        rq->max_new < 0 || (rq->heal_len > 0 && !rq->heal) || rq->n_files < 0)
        return mc_err_set(err, MC_EINVAL, -1,
                          "bad request (%d prompt tokens, %d draft tokens, max_new %d)",
                          rq->n_prompt, rq->n_draft, rq->max_new);
    if (r->tok) {
        int32_t nv = mc_tok_n_vocab(r->tok);
        for (int i = 0; i < rq->n_prompt + rq->n_draft; i++) {
            int32_t id = i < rq->n_prompt ? rq->prompt[i] : rq->draft[i - rq->n_prompt];
            if (id < 0 || id >= nv)
                return mc_err_set(err, MC_EINVAL, -1,
                                  "token %d has id %d, outside the vocabulary of %d", i, id, nv);
        }
    }
    int64_t t0 = mc_time_ns();
    call c = {.r = r,
              .cancel = rq->cancel,
              .deadline = t0 + (int64_t)r->p.timeout_ms * 1000000,
              .max_retries = r->p.retries};
    /* the caller's budget for the whole request bounds this call too */
    if (rq->deadline_ns > 0 && rq->deadline_ns < c.deadline)
        c.deadline = rq->deadline_ns;
    r->st.calls++;
    if (rq->deadline_ns > 0 && t0 >= rq->deadline_ns) {
        int rc = mc_err_set(err, MC_ETIMEOUT, -1,
                            "the request's time for the large model is spent; nothing sent");
        r->st.failures++;
        log_call(r, "generate", &c, rq, NULL, rc, 0.0);
        return rc;
    }
    bool trial;
    int rc;
    if (!breaker_enter(r, &trial)) {
        int64_t left = (r->br_retry_ns - mc_time_ns()) / 1000000;
        rc = mc_err_set(
            err, MC_ENET, -1,
            "the circuit breaker is open (the server failed %d times); next trial in %lld ms",
            r->br_fails, (long long)left);
        r->st.failures++;
        log_call(r, "generate", &c, rq, NULL, rc, (double)(mc_time_ns() - t0) / 1e6);
        return rc;
    }
    if (trial)
        c.max_retries = 0; /* one trial request: its outcome decides */
    rc = need_probe(r) ? probe(&c, err) : 0;
    if (rc == 0) {
        switch (r->kind) {
        case MC_REMOTE_MCCOM:
            rc = gen_mccom(&c, rq, res, err);
            break;
        case MC_REMOTE_VLLM:
            rc = gen_vllm(&c, rq, res, err);
            break;
        default:
            rc = gen_plain(&c, rq, false, res, err);
            break;
        }
    }
    double ms = (double)(mc_time_ns() - t0) / 1e6;
    if (rc == 0) {
        res->attempts = c.attempts;
        res->http_status = c.http_status;
        res->bytes_sent = c.sent;
        res->bytes_received = c.received;
        res->ms_total = ms;
        if (rq->n_draft > 0 && !res->verified)
            r->st.unverified++;
    } else {
        mc_llm_result_fini(res); /* a failed call leaves no generation, */
        res->attempts = c.attempts; /* but its cost on the record */
        res->http_status = c.http_status;
        res->bytes_sent = c.sent;
        res->bytes_received = c.received;
        res->ms_total = ms;
        if (rc == MC_ECANCELED)
            r->st.canceled++;
        else
            r->st.failures++;
    }
    r->st.bytes_sent += c.sent;
    r->st.bytes_received += c.received;
    breaker_leave(r, rc, c.http_status > 0);
    log_call(r, "generate", &c, rq, rc == 0 ? res : NULL, rc, ms);
    return rc;
}

/* ---- the mc_llm adapter -------------------------------------------------------------------- */

static int llm_generate(void *self, const mc_llm_request *rq, mc_llm_result *res, mc_err *err) {
    return mc_remote_generate(self, rq, res, err);
}
static bool llm_available(void *self) { return mc_remote_available(self); }
static const char *llm_describe(void *self) { return ((mc_remote *)self)->desc; }
static void llm_destroy(void *self) { mc_remote_free(self); }

int mc_llm_remote_new(const mc_remote_params *p, const mc_tok *tok, mc_llm **out, mc_err *err) {
    if (!out)
        return mc_err_set(err, MC_EINVAL, -1, "no output pointer");
    *out = NULL;
    mc_remote *r = NULL;
    int rc = mc_remote_new(p, tok, &r, err);
    if (rc != 0)
        return rc;
    static const mc_llm_ops ops = {llm_generate, llm_available, llm_describe, llm_destroy};
    *out = mc_llm_new(&ops, r);
    if (!*out) {
        mc_remote_free(r);
        return mc_err_set(err, MC_ENOMEM, -1, "out of memory");
    }
    return 0;
}
