/* src/server/server_internal.h — what the server's files share, not public.
 *
 *   api.c      request bodies → mc__srv_req (parse and validate, tokenize; no
 *              model is run), and every response body: JSON documents, SSE
 *              events, errors;
 *   metrics.c  counters and histograms, rendered as Prometheus text;
 *   server.c   HTTP (libmicrohttpd), the queue, the engine thread, slots.
 *
 * The public contract is include/mccom/server.h.
 */
#ifndef MCCOM_SERVER_INTERNAL_H
#define MCCOM_SERVER_INTERNAL_H

#include "mccom/gen.h"
#include "mccom/server.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

/* ---- requests (api.c) ----------------------------------------------------- */

enum mc__srv_kind {
    MC__SRV_COMPLETIONS = 0, /* POST /v1/completions */
    MC__SRV_INFILL = 1,      /* POST /infill */
    MC__SRV_VERIFY = 2,      /* POST /v1/verify */
};

#define MC__SRV_MAX_STOP 8
#define MC__SRV_MAX_STOP_LEN 1024 /* bytes of one stop string */

/* What parsing needs to know about the model being served. */
typedef struct mc__srv_env {
    const mc_tok *tok;
    int n_vocab;        /* the model's */
    int n_ctx;          /* tokens one slot holds */
    int max_json_depth; /* nesting of arrays and objects; deeper is refused before parsing */
    size_t max_piece;   /* mc_tok_max_piece(tok): a text of n bytes has at least n / max_piece
                           tokens, so a longer one is refused before it is tokenized (0: no
                           such check) */
} mc__srv_env;

/* A validated request: everything the engine needs, nothing it has to check.
 * Owns its arrays and strings (mc__srv_req_fini). */
typedef struct mc__srv_req {
    int kind;                 /* enum mc__srv_kind */
    int32_t *prompt;          /* (n_prompt) 1 <= n_prompt <= n_ctx, ids in range */
    int n_prompt;
    int32_t *draft;           /* (n_draft) verify only; NULL when empty */
    int n_draft;
    char *prompt_text;        /* a string prompt as sent (for echo), else NULL */
    size_t prompt_text_len;
    int max_tokens;           /* gen's max_new; fits the context (see api.c) */
    float temperature;        /* <= 0: greedy */
    int top_k;                /* 0: off */
    float top_p;              /* 1: off */
    bool seeded;
    uint64_t seed;
    char *stop[MC__SRV_MAX_STOP]; /* NUL-terminated copies */
    int n_stop;
    int logprobs;             /* alternatives per generated token; -1: no logprobs */
    int prompt_logprobs;      /* vLLM's; -1: none */
    bool echo, stream, stop_newline;
    int n_lines; /* /v1/verify: with stop_newline, end at the n-th newline */
    char *heal;               /* verify: healing constraint, or NULL */
    size_t heal_len;
} mc__srv_req;

/* Parse and validate a request body of endpoint `kind`: JSON nesting depth
 * (checked by a scan before jansson sees the bytes), syntax, UTF-8, every
 * field's presence, type and range, then tokenization and the context limits.
 * Untrusted text is measured before it is tokenized: more bytes than the
 * context's tokens can cover (env->max_piece) is refused at once, and
 * tokenizing stops as soon as the context is exceeded (MC_TOK_STOP_FULL), so
 * a huge prompt costs neither tokenizer time nor memory.
 * On success fills `out` (caller calls mc__srv_req_fini) and returns 0. On
 * failure returns a negative code with out zeroed, err->msg a sentence that
 * names the field ("max_tokens: expected an integer, got string"), err->offset
 * the byte offset of a syntax error (else -1), and `param` (if non-NULL, of
 * param_cap bytes) the field at fault ("" when none). Every failure is the
 * client's: the server answers 400. Runs no model; safe on any bytes. */
int mc__srv_parse(int kind, const char *body, size_t len, const mc__srv_env *env,
                  mc__srv_req *out, char *param, size_t param_cap, mc_err *err);
void mc__srv_req_fini(mc__srv_req *r);

/* ---- responses (api.c) ---------------------------------------------------- */

/* Identity of one response. */
typedef struct mc__srv_meta {
    const char *model;  /* the served model's id */
    const char *id;     /* "cmpl-..." */
    int64_t created;    /* Unix seconds */
    double queue_ms;    /* time spent waiting for the engine */
} mc__srv_meta;

/* What the engine produced for a request. */
typedef struct mc__srv_out {
    mc_gen_result gen;
    mc_gen_token *scored;  /* (n_scored) the prompt scored by mc_gen_score, or NULL */
    int n_scored;
} mc__srv_out;

/* The response body of a finished request, malloc'd, NUL-terminated; *len
 * gets its length. NULL on allocation failure. */
char *mc__srv_render(const mc__srv_req *rq, const mc__srv_meta *meta, const mc__srv_out *o,
                     const mc_tok *tok, size_t *len);

/* Streaming (server-sent events). Each returns one or more complete events
 * ("data: ...\n\n"), malloc'd, or NULL on allocation failure. */
/* The prompt, first, when a completion echoes it (o->scored: its logprobs);
 * *offset is advanced by the prompt text's length. */
char *mc__srv_sse_echo(const mc__srv_req *rq, const mc__srv_meta *meta, const mc__srv_out *o,
                       const mc_tok *tok, size_t *offset, size_t *len);
/* One decided token (t->id == -1: text gen held back until the end). *offset
 * is the text offset of the token within the streamed text; advanced here. */
char *mc__srv_sse_token(const mc__srv_req *rq, const mc__srv_meta *meta, const mc_gen_token *t,
                        const mc_tok *tok, size_t *offset, size_t *len);
/* The last event(s): the finish reason and usage (completions, then
 * "data: [DONE]"), or llama.cpp's final object (infill). */
char *mc__srv_sse_final(const mc__srv_req *rq, const mc__srv_meta *meta, const mc__srv_out *o,
                        const mc_tok *tok, size_t *len);
/* {"error": {"message", "type", "param", "code"}} for an HTTP status. */
char *mc__srv_error_json(int status, const char *msg, const char *param, size_t *len);
/* The same as one SSE event (an error after a stream began). */
char *mc__srv_sse_error(int status, const char *msg, size_t *len);

/* ---- metrics (metrics.c) --------------------------------------------------- */

enum mc__srv_endpoint {
    MC__EP_COMPLETIONS = 0, /* the first three equal enum mc__srv_kind */
    MC__EP_INFILL,
    MC__EP_VERIFY,
    MC__EP_MODELS,
    MC__EP_HEALTH,
    MC__EP_METRICS,
    MC__EP_OTHER,
    MC__EP_N
};

/* Path of an endpoint ("/v1/completions"; "other"). */
const char *mc__srv_endpoint_path(int ep);

#define MC__SRV_N_CODES 11  /* 200 400 401 404 405 413 429 499 500 503, and any other */
#define MC__SRV_N_BUCKETS 14

typedef struct mc__srv_hist {
    uint64_t bucket[MC__SRV_N_BUCKETS]; /* cumulative at render time, not here */
    uint64_t count;
    double sum;
} mc__srv_hist;

/* Everything /metrics reports; one per server, guarded by its mutex. */
typedef struct mc__srv_metrics {
    pthread_mutex_t mu;
    uint64_t requests[MC__EP_N][MC__SRV_N_CODES];
    uint64_t prompt_tokens, cached_tokens, generated_tokens, draft_tokens, accepted_tokens;
    uint64_t cancellations;
    double engine_s;          /* time the engine spent on requests */
    mc__srv_hist latency[3];  /* per generating endpoint: receipt to response ready */
    mc__srv_hist queue_wait;  /* enqueue to engine start */
    mc__srv_hist first_token; /* streaming: enqueue to the first token */
    /* connections closed by the server's defences (server.c, "Hostile clients") */
    uint64_t conn_timed_out;  /* no complete request within request_timeout_s */
    uint64_t conn_evicted;    /* the oldest idle one, closed to admit a new one at a limit */
    uint64_t conn_refused;    /* at a limit with nothing idle to close */
} mc__srv_metrics;

enum mc__srv_conn_event { MC__CONN_TIMED_OUT, MC__CONN_EVICTED, MC__CONN_REFUSED };

void mc__srv_metrics_init(mc__srv_metrics *m);
void mc__srv_metrics_fini(mc__srv_metrics *m);
/* One answered request (status 499: the client went away first). */
void mc__srv_metrics_request(mc__srv_metrics *m, int ep, int status);
/* One request the engine took up (or skipped, canceled while queued): gen may
 * be NULL; busy_s is the engine time it took. */
void mc__srv_metrics_job(mc__srv_metrics *m, int ep, int n_prompt, const mc_gen_result *gen,
                         double queue_s, double busy_s, bool canceled);
void mc__srv_metrics_latency(mc__srv_metrics *m, int ep, double seconds);
void mc__srv_metrics_first_token(mc__srv_metrics *m, double seconds);
void mc__srv_metrics_conn(mc__srv_metrics *m, int event); /* enum mc__srv_conn_event */
/* Gauges read at render time. */
typedef struct mc__srv_gauges {
    int n_queued, n_running, n_slots;
    int n_connections;      /* open client connections */
    size_t inflight_bytes;  /* of the in-flight memory budget, reserved */
} mc__srv_gauges;
/* Prometheus text exposition format (version 0.0.4), malloc'd. */
char *mc__srv_metrics_render(mc__srv_metrics *m, const mc__srv_gauges *g, size_t *len);

#endif
