/* src/lsp/lsp_internal.h — shared by the files of the lsp module:
 *   frame.c   the base protocol's framing
 *   text.c    positions, documents, URIs
 *   rpc.c     JSON-RPC messages (parse, build, write)
 *   config.c  the configuration object
 *   server.c  the reading thread: dispatch, documents, queue, index build, progress
 *   worker.c  the worker thread: models, cascade, sessions, completion jobs
 *   run.c     the stdio loop
 *   client.c  a client for tests and benchmarks
 *
 * Lock order: qlock before olock; ilock is never held with another lock.
 * The worker owns everything in `engine` (no lock): models, the cascade, the
 * sessions and the attached index.
 */
#ifndef MCCOM_LSP_INTERNAL_H
#define MCCOM_LSP_INTERNAL_H

#include "mccom/cascade.h"
#include "mccom/lsp.h"

#include <jansson.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>

/* JSON-RPC and LSP error codes. */
enum {
    RPC_PARSE_ERROR = -32700,
    RPC_INVALID_REQUEST = -32600,
    RPC_METHOD_NOT_FOUND = -32601,
    RPC_INVALID_PARAMS = -32602,
    RPC_INTERNAL_ERROR = -32603,
    LSP_SERVER_NOT_INITIALIZED = -32002,
    LSP_REQUEST_CANCELLED = -32800,
    LSP_CONTENT_MODIFIED = -32801,
    LSP_REQUEST_FAILED = -32803,
};

/* ---- text.c ------------------------------------------------------------------ */

/* An immutable, reference-counted document text (a version of a document):
 * the reading thread makes a new one per change, jobs hold references. */
typedef struct mc__lsp_text {
    int refs;
    size_t len;
    char data[]; /* len bytes + NUL */
} mc__lsp_text;

mc__lsp_text *mc__lsp_text_new(const char *s, size_t n);
mc__lsp_text *mc__lsp_text_ref(mc__lsp_text *t);
void mc__lsp_text_unref(mc__lsp_text *t);
/* A new text: t with bytes [a, b) replaced by s[0..n) (a, b clamped). */
mc__lsp_text *mc__lsp_text_splice(const mc__lsp_text *t, size_t a, size_t b, const char *s,
                                  size_t n);
/* Bytes of s[0..n) before the first invalid or incomplete UTF-8 sequence. */
size_t mc__lsp_utf8_valid_prefix(const char *s, size_t n);
/* "file:///a%20b" -> "/a b" (malloc'd), NULL if not a local file URI. */
char *mc__lsp_uri_to_path(const char *uri);
/* path relative to root (malloc'd), NULL if not strictly under root. */
char *mc__lsp_relpath(const char *root, const char *path);

/* ---- rpc.c ---------------------------------------------------------------------- */

typedef enum { MSG_REQUEST, MSG_NOTIFICATION, MSG_RESPONSE, MSG_INVALID } mc__msg_kind;

/* One parsed message. `root` owns everything; id/params/result/error borrow. */
typedef struct mc__rpc_msg {
    int kind;
    json_t *root;
    json_t *id;         /* requests, responses, and invalid messages whose id was readable */
    const char *method;
    json_t *params;     /* object, array or NULL */
    json_t *result, *error;
    int code;           /* MSG_INVALID: the error to answer with */
    char why[256];
} mc__rpc_msg;

/* Parse and classify a body. Never fails: bad input gives MSG_INVALID with a
 * code (parse error, invalid request) and a reason. */
void mc__rpc_parse(const char *body, size_t len, mc__rpc_msg *m);
void mc__rpc_msg_fini(mc__rpc_msg *m);

/* Typed accessors of an object member (NULL/false if absent or of another type). */
const char *mc__json_str(const json_t *o, const char *key);
bool mc__json_uint(const json_t *o, const char *key, uint32_t *out);

/* ---- config.c -------------------------------------------------------------------- */

typedef struct mc__lsp_config {
    char *slm_path, *llm_path, *tokenizer_path, *llm_url, *llm_api_key, *llm_log;
    float tau;
    bool retrieval;
    bool copy;
    float tau_copy;
    int debounce_ms;
    int llm_budget_ms;
    int max_line_tokens;
    int n_threads;
    int n_ctx;
    bool completion;        /* also serve textDocument/completion (decided at initialize) */
} mc__lsp_config;

void mc__lsp_config_from_params(mc__lsp_config *c, const mc_lsp_params *p);
int mc__lsp_config_copy(mc__lsp_config *dst, const mc__lsp_config *src);
void mc__lsp_config_fini(mc__lsp_config *c);
/* Apply the members of a settings object (docs/lsp.md). Unknown keys and bad
 * values are skipped; each problem is described in msg (appended, "; "
 * separated). Returns the number of problems. */
int mc__lsp_config_apply(mc__lsp_config *c, const json_t *o, char *msg, size_t cap);
/* Whether the models must be reloaded to go from a to b. */
bool mc__lsp_config_models_differ(const mc__lsp_config *a, const mc__lsp_config *b);
bool mc__lsp_config_llm_differs(const mc__lsp_config *a, const mc__lsp_config *b);

/* ---- jobs (server.c queues, worker.c runs) ---------------------------------------- */

typedef enum {
    JOB_CONFIG,       /* cfg: (re)load models, set parameters */
    JOB_COMPLETE,     /* a textDocument/inlineCompletion request */
    JOB_EVENT,        /* mccom/didShow, didAccept, didReject (+ escalation) */
    JOB_INDEX_SET,    /* an edited buffer's text for the index */
    JOB_INDEX_DISK,   /* re-read a file from disk into the index (save, close) */
    JOB_INDEX_ATTACH, /* the built index, handed to the worker */
    JOB_CLOSE,        /* a document was closed: drop its session */
} mc__job_kind;

typedef enum { EV_SHOW, EV_ACCEPT, EV_REJECT } mc__event;

typedef struct mc__lsp_job {
    struct mc__lsp_job *next;
    int kind;
    volatile int cancel;    /* raised by the reading thread under qlock */
    int cancel_code;        /* LSP_REQUEST_CANCELLED or LSP_CONTENT_MODIFIED */
    const char *cancel_why;
    json_t *id;             /* JOB_COMPLETE: the request id (owned reference) */
    char *uri;
    char *path;             /* the cascade's path: relative under the root, else absolute */
    char *rel;              /* relative path under the root, or NULL */
    mc__lsp_text *text;     /* the document when the job was queued */
    int version;
    size_t cursor;          /* byte offset */
    uint32_t line;
    int trigger;            /* InlineCompletionTriggerKind: 1 invoked, 2 automatic */
    bool as_completion;     /* textDocument/completion: answer a CompletionList */
    double t_queued;
    /* JOB_EVENT */
    int event;
    bool has_sug_id;
    uint64_t sug_id;
    char *arg;              /* accepted / typed text, or NULL */
    size_t arg_len;
    bool has_cursor;        /* a reject with a cursor: may escalate */
    /* JOB_CONFIG */
    mc__lsp_config cfg;
    /* JOB_INDEX_ATTACH */
    mc_retr_index *ix;
} mc__lsp_job;

void mc__lsp_job_free(mc__lsp_job *j);

/* ---- the server ---------------------------------------------------------------------- */

typedef struct mc__lsp_doc {
    char *uri;
    char *path; /* local path, or NULL */
    char *rel;  /* under the root, or NULL */
    mc__lsp_text *text;
    int version;
    bool has_last;          /* the last inlineCompletion position */
    uint32_t last_line, last_char;
} mc__lsp_doc;

typedef enum { IDX_NONE, IDX_BUILDING, IDX_DONE, IDX_FAILED } mc__idx_state;
typedef enum { PROG_NONE, PROG_CREATING, PROG_READY, PROG_ACTIVE, PROG_DONE } mc__prog_state;

/* The worker's state (worker.c). */
typedef struct mc__lsp_engine mc__lsp_engine;

struct mc_lsp_server {
    mc_lsp_params p;
    char *version;
    mc_lsp_write_fn write;
    void *write_ud;
    pthread_mutex_t olock; /* output */
    bool dead;             /* the output failed: stop writing */
    FILE *log;
    pthread_mutex_t loglock;

    mc_lsp_framer *fr;
    bool initialized, shutdown, exited;
    mc_lsp_encoding enc;
    char *root;            /* workspace root path, or NULL */
    char *root_real;
    bool cap_progress;     /* client: window.workDoneProgress */
    mc__lsp_config cfg;    /* the configuration as the reading thread knows it */
    mc__lsp_doc *docs;
    int n_docs, cap_docs;
    int n_server_requests;

    /* the queue */
    pthread_mutex_t qlock;
    pthread_cond_t qcond;
    mc__lsp_job *qhead, *qtail;
    mc__lsp_job *running;
    bool stop;
    pthread_t worker;
    bool worker_started;
    mc__lsp_engine *eng;

    /* the index build */
    pthread_mutex_t ilock;
    pthread_t indexer;
    bool indexer_started;
    int idx_state;         /* mc__idx_state */
    double idx_t0, idx_t1;
    mc_retr_sync_stats idx_stats;
    int idx_files, idx_windows;
    char idx_error[256];
    bool idx_enabled;      /* the index exists (or is being built) */
    int prog;              /* mc__prog_state (reading thread only) */
    double prog_last;
    int wake[2];           /* the indexer writes a byte when done */
};

/* rpc.c: writing messages (any thread). */
void mc__lsp_send(mc_lsp_server *s, json_t *msg); /* steals msg */
void mc__lsp_reply(mc_lsp_server *s, json_t *id, json_t *result); /* steals result */
void mc__lsp_reply_error(mc_lsp_server *s, json_t *id, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void mc__lsp_notify(mc_lsp_server *s, const char *method, json_t *params); /* steals params */
void mc__lsp_show_message(mc_lsp_server *s, int type, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void mc__lsp_log(mc_lsp_server *s, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* worker.c */
int mc__lsp_worker_start(mc_lsp_server *s, mc_err *err);
void mc__lsp_worker_join(mc_lsp_server *s);

/* 64-bit FNV-1a. */
uint64_t mc__lsp_hash(const char *s, size_t n);

#endif
