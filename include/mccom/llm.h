/* mccom/llm.h — the large-model tier as the cascade sees it: one operation,
 * "generate after this prompt, verifying this draft first", behind a small
 * interface with two implementations:
 *   - in-process (mc_llm_local_new): a model and context in this process, through
 *     mc_gen_run (tests, evaluation, a one-machine set-up);
 *   - remote (mc_llm_remote_new, include/mccom/remote.h): `mccom serve`'s
 *     /v1/verify, a vLLM server (prompt_logprobs), or any OpenAI-compatible
 *     /v1/completions server (no verification).
 * Both tiers share the small model's vocabulary: prompts and drafts are token
 * ids of that vocabulary.
 *
 * Threads: an mc_llm serves one request at a time (the caller serializes);
 * the request's cancel flag may be set from any thread.
 */
#ifndef MCCOM_LLM_H
#define MCCOM_LLM_H

#include "mccom/common.h"
#include "mccom/gen.h"
#include "mccom/model.h"
#include "mccom/tok.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct mc_llm_request {
    const int32_t *prompt; /* token ids, at least one */
    int n_prompt;
    const int32_t *draft;  /* ids to verify first (may be NULL when n_draft is 0) */
    int n_draft;
    int max_new;           /* model tokens after the accepted prefix (as mc_gen_params) */
    bool stop_newline;     /* end at a '\n' of the text: */
    int n_lines;           /* the n-th (0 or 1: the first) */
    const char *heal;      /* healing constraint (as mc_gen_params), or NULL */
    size_t heal_len;
    /* For the escalation log only: the repository files whose windows the
     * prompt contains (what leaves the machine). */
    const char *const *files;
    int n_files;
    const volatile int *cancel; /* may be NULL */
    /* mc_time_ns() by which the call must be over, retries included (0: the
     * tier's own per-call timeout only). It is the caller's budget for the
     * whole request: the remote tier stops at the earlier of the two with
     * MC_ETIMEOUT and sends nothing once it has passed. The in-process tier
     * runs to the end (a forward pass cannot be interrupted mid-way; use
     * cancel). */
    int64_t deadline_ns;
} mc_llm_request;

typedef struct mc_llm_result {
    mc_gen_result gen;   /* tokens, accepted count, text, stop reason. A server
                            that returns only text (plain OpenAI completion)
                            leaves gen.n == 0 and fills gen.text. */
    bool verified;       /* the draft was checked by the model (false: the
                            backend cannot verify and the draft was ignored) */
    int attempts;        /* requests sent (retries included); 1 in-process */
    int http_status;     /* last HTTP status; 0 in-process */
    double ms_total;     /* wall time of the call, as the caller saw it (failed calls too) */
    double ms_server;    /* model time reported by the server (in-process: ms_prompt + ms_gen) */
    int64_t bytes_sent;
    int64_t bytes_received;
} mc_llm_result;

void mc_llm_result_fini(mc_llm_result *r);

typedef struct mc_llm mc_llm;

/* The interface an implementation fills in. */
typedef struct mc_llm_ops {
    /* Returns 0 and fills res, or a negative code (MC_ENET, MC_ETIMEOUT,
     * MC_ECANCELED, MC_EFORMAT for a garbled answer, MC_EUNSUPPORTED, ...)
     * with res holding no generation but its accounting: attempts,
     * http_status, bytes_sent/received (ms_total is set by mc_llm_generate),
     * so that a failed call is counted with what it really cost. */
    int (*generate)(void *self, const mc_llm_request *rq, mc_llm_result *res, mc_err *err);
    /* False while the tier is known to be down (a circuit breaker is open):
     * the cascade then answers locally without trying. */
    bool (*available)(void *self);
    /* One line: "in-process models/x.gguf", "mccom http://...", ... */
    const char *(*describe)(void *self);
    void (*destroy)(void *self);
} mc_llm_ops;

/* Wrap an implementation (self is owned by the mc_llm and destroyed with it). */
mc_llm *mc_llm_new(const mc_llm_ops *ops, void *self);
void mc_llm_free(mc_llm *l);
int mc_llm_generate(mc_llm *l, const mc_llm_request *rq, mc_llm_result *res, mc_err *err);
bool mc_llm_available(mc_llm *l);
const char *mc_llm_describe(mc_llm *l);

/* In-process tier over a loaded model (borrowed: must outlive the mc_llm) and
 * its tokenizer (borrowed); the context is created with `cp` (NULL: defaults)
 * and owned. */
int mc_llm_local_new(mc_model *m, const mc_tok *tok, const mc_ctx_params *cp, mc_llm **out,
                     mc_err *err);

#endif
