/* src/remote/remote_internal.h — what the remote module's files share: the
 * HTTP transport (http.c) and the text rebuilt from token ids (text.c).
 * Not installed; nothing outside src/remote includes it. */
#ifndef MCCOM_REMOTE_INTERNAL_H
#define MCCOM_REMOTE_INTERNAL_H

#include "mccom/gen.h"
#include "mccom/tok.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- transport (http.c) ---------------------------------------------------- */

/* One libcurl easy handle driven by a multi handle: the multi handle keeps
 * the connection alive between requests, and lets a transfer be polled in
 * short slices so that a cancel flag is seen within ~10 ms. */
typedef struct mc__http {
    void *multi;   /* CURLM * */
    void *easy;    /* CURL * */
    void *headers; /* struct curl_slist * */
    char *buf;     /* response body of the last attempt, NUL-terminated */
    size_t len, cap;
    bool overflow;
    int64_t n_out, n_in; /* bytes of the current attempt, each way */
    char errbuf[256];
} mc__http;

/* The answer to one attempt. */
typedef struct mc__http_resp {
    bool started;     /* the attempt reached the network */
    int status;       /* HTTP status (0 if none arrived) */
    const char *body; /* owned by the mc__http, valid until its next attempt */
    size_t len;
    int64_t bytes_sent;     /* request line, headers and body */
    int64_t bytes_received; /* status line, headers and body */
} mc__http_resp;

/* The most bytes of one response body kept (a longer one is MC_EFORMAT). */
#define MC__HTTP_MAX_BODY ((size_t)32 << 20)

/* libcurl's global initialisation, once per process (thread-safe). */
int mc__http_global_init(mc_err *err);
/* api_key may be NULL. Errors: MC_ENOMEM, MC_EIO (libcurl refused). */
int mc__http_init(mc__http *h, const char *api_key, mc_err *err);
void mc__http_fini(mc__http *h);

/* One attempt: GET url (body NULL) or POST body as JSON. Returns 0 when an
 * HTTP answer arrived, whatever its status (resp filled); MC_ENET (no
 * connection, reset, incomplete answer; retryable), MC_ETIMEOUT (deadline_ns,
 * on mc_time_ns's clock, passed), MC_ECANCELED (*cancel became non-zero),
 * MC_EFORMAT (body larger than MC__HTTP_MAX_BODY). resp's byte counts are
 * filled on every path. */
int mc__http_once(mc__http *h, const char *url, const char *body, size_t body_len,
                  int connect_timeout_ms, int64_t deadline_ns, const volatile int *cancel,
                  mc__http_resp *resp, mc_err *err);

/* ---- text from token ids (text.c) ------------------------------------------ */

/* Rebuilds a generation's text from its token ids exactly as mc_gen_run does
 * (gen.h): pieces concatenated, the healed bytes skipped, cut before the first
 * '\n' (stop_newline; the n_lines-th), an end-of-generation token ends it
 * without text. */
typedef struct mc__text {
    const mc_tok *tok;
    size_t heal_len;
    bool stop_newline;
    int n_lines;   /* newlines that end the text (>= 1) */
    int n_nl;      /* newlines of the text so far */
    char *raw; /* every byte of every piece */
    size_t raw_len, raw_cap;
    size_t text_end; /* end of the text in raw */
    bool ended;
    int stop; /* enum mc_gen_stop, when ended */
} mc__text;

void mc__text_init(mc__text *t, const mc_tok *tok, size_t heal_len, bool stop_newline,
                   int n_lines);
/* Add one token. Returns 0, MC_EINVAL (id out of the vocabulary), MC_ENOMEM.
 * A token after the end changes nothing. */
int mc__text_push(mc__text *t, int32_t id);
/* The text (malloc'd, NUL-terminated) and its length; t is freed. */
int mc__text_finish(mc__text *t, char **text, size_t *len);
void mc__text_fini(mc__text *t);

#endif
