/* mccom/remote.h — the HTTP client for the large-model tier.
 *
 * Talks to one server, chosen by URL, of one of three kinds:
 *   MC_REMOTE_MCCOM   `mccom serve`: POST /v1/verify verifies a draft and
 *                     continues (include/mccom/server.h has the protocol);
 *   MC_REMOTE_VLLM    vLLM: POST /v1/completions with the prompt ⊕ draft as
 *                     token ids, temperature 0, max_tokens 1 and
 *                     prompt_logprobs 1: draft token i is accepted while it is
 *                     the rank-1 token at its position; the first rejected
 *                     position's rank-1 token is the correction, and when all
 *                     are accepted the generated token is the bonus. Further
 *                     tokens: a plain completion request. Healing is not
 *                     possible there: a healed request is sent as text;
 *   MC_REMOTE_OPENAI  any other OpenAI-compatible /v1/completions server
 *                     (llama.cpp's llama-server, ...): no verification; the
 *                     draft is ignored and the request is a plain greedy
 *                     completion (result.verified = false; logged and counted).
 * MC_REMOTE_AUTO probes GET /v1/models on first use: "owned_by" "mccom" or
 * "vllm" picks those kinds, anything else is OPENAI.
 *
 * Transport: libcurl's multi interface, one connection kept alive. Every call
 * has a connect timeout and a total deadline; calls are retried with
 * exponential back-off (all calls here are idempotent: greedy, no state on the
 * server but its cache) while the deadline allows; a call is cancelled within
 * ~10 ms of its cancel flag becoming non-zero. A circuit breaker opens after
 * `breaker_failures` consecutive failed calls: while open, calls fail at once
 * with MC_ENET (so the cascade answers locally without waiting); after
 * `breaker_cooldown_ms` one trial call is let through (half-open), and its
 * success closes the breaker.
 *
 * Privacy: nothing is sent anywhere unless a URL is configured. Every call is
 * logged (log_path, JSON Lines): time, URL, kind, bytes sent and received,
 * prompt and draft token counts, the repository files named in the request,
 * status, latency. The log never contains the code itself.
 *
 * Threads: one call at a time per mc_remote; the cancel flag may be set from
 * any thread. libcurl's global initialisation is done once, thread-safely.
 */
#ifndef MCCOM_REMOTE_H
#define MCCOM_REMOTE_H

#include "mccom/common.h"
#include "mccom/llm.h"
#include "mccom/tok.h"

#include <stdbool.h>
#include <stdint.h>

typedef enum mc_remote_kind {
    MC_REMOTE_AUTO = 0,
    MC_REMOTE_MCCOM = 1,
    MC_REMOTE_VLLM = 2,
    MC_REMOTE_OPENAI = 3,
} mc_remote_kind;

/* "auto", "mccom", "vllm", "openai"; parse returns 0 or MC_EINVAL. */
const char *mc_remote_kind_name(mc_remote_kind k);
int mc_remote_kind_parse(const char *s, mc_remote_kind *out);

typedef struct mc_remote_params {
    const char *url;         /* base URL "http://host:port" (a trailing "/" or "/v1" is accepted) */
    const char *api_key;     /* "Authorization: Bearer KEY"; NULL: none */
    const char *model;       /* the "model" field; NULL: the first id of GET /v1/models */
    mc_remote_kind kind;     /* AUTO (default): probe */
    int connect_timeout_ms;  /* 1000 */
    int timeout_ms;          /* deadline of one call, retries included (10000) */
    int retries;             /* extra attempts after a failure (2) */
    int backoff_ms;          /* first retry delay, doubled each time (50) */
    int breaker_failures;    /* consecutive failed calls that open the breaker (3) */
    int breaker_cooldown_ms; /* open time before a trial call (5000) */
    const char *log_path;    /* escalation log (JSON Lines, appended; created 0600, never
                                through a symbolic link); NULL: none */
} mc_remote_params;

mc_remote_params mc_remote_params_default(void);

typedef struct mc_remote mc_remote;

/* Create a client (copies the parameters; no network I/O yet). `tok` (borrowed,
 * may be NULL) decodes ids to text for servers that need text. */
int mc_remote_new(const mc_remote_params *p, const mc_tok *tok, mc_remote **out, mc_err *err);
void mc_remote_free(mc_remote *r);

/* Probe the server now (GET /v1/models; /health for mccom): fills the kind
 * and model when AUTO / NULL. Idempotent; cheap after the first success. */
int mc_remote_probe(mc_remote *r, mc_err *err);
mc_remote_kind mc_remote_kind_of(const mc_remote *r); /* AUTO until probed */

/* One generation (mc_llm_request / mc_llm_result semantics, llm.h). */
int mc_remote_generate(mc_remote *r, const mc_llm_request *rq, mc_llm_result *res, mc_err *err);

/* False while the breaker is open. */
bool mc_remote_available(mc_remote *r);

typedef struct mc_remote_stats {
    int64_t calls, failures, retries, canceled;
    int64_t unverified;      /* calls where a draft was offered but could not be verified */
    int64_t breaker_opens;
    int64_t bytes_sent, bytes_received;
} mc_remote_stats;

void mc_remote_get_stats(const mc_remote *r, mc_remote_stats *st);

/* The client as the cascade's large-model tier (the mc_llm owns the client). */
int mc_llm_remote_new(const mc_remote_params *p, const mc_tok *tok, mc_llm **out, mc_err *err);

#endif
