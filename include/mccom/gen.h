/* mccom/gen.h — turning a prompt into new tokens on one context: greedy or
 * sampled decoding with stop rules, token healing, log-probabilities, and
 * speculative draft verification.
 *
 * One function, mc_gen_run, serves every caller that generates:
 *   - the small model's line suggestion (greedy, stop at the end of the line,
 *     healed prompt, probabilities of the first tokens for confidence routing);
 *   - the large model's draft verification (the server's /v1/verify, and the
 *     in-process large model of the cascade);
 *   - the server's /v1/completions and /infill (sampling, stop strings, top
 *     log-probabilities, streaming through a callback).
 *
 * Draft verification (greedy only). prompt ⊕ draft is evaluated with logits at
 * every draft position in one batched forward pass (two when the prompt's
 * uncached tail is long: the tail alone, with the last row's logits only).
 * Draft token i is accepted while it equals the model's own greedy choice at
 * its position (under the healing constraint) and no stop rule has ended the
 * text; the first rejected
 * position gets the model's own token instead (the correction), and when every
 * draft token is accepted the model's next token follows (the bonus). The
 * rejected tail is rolled back from the KV cache. Then the model continues on
 * its own, one token per forward pass. The returned tokens are exactly those
 * that greedy decoding without a draft returns, provided the engine's logits of
 * a position do not depend on how many tokens were evaluated with it (the
 * engine's kernels are written so; tests/test_gen.c checks the equivalence).
 *
 * Token healing. A prompt that ends inside a word (mc_tok_heal) is shortened to
 * the word's start, and `heal` holds the removed bytes: the first generated
 * tokens are restricted to those whose bytes agree with `heal`, and the removed
 * bytes are not part of the returned text (they are already in the document).
 *
 * Text. The result's text is the decoded bytes of the generated tokens, minus
 * the healed bytes, cut before the first newline (stop_newline; the n-th with
 * n_lines) or the first occurrence of a stop string. End-of-generation tokens
 * end generation and
 * contribute no text. Token ids are kept in full (the token that contains a
 * cut point is the last one returned).
 *
 * Cache. The context's KV cache is reused for the longest common prefix of its
 * history and prompt ⊕ draft; afterwards it holds the prompt and the returned
 * tokens (all but possibly the last), so that a follow-up request that extends
 * this one computes only its new tail.
 *
 * Not here: prompt construction (cascade, server), the HTTP protocol (server,
 * remote).
 */
#ifndef MCCOM_GEN_H
#define MCCOM_GEN_H

#include "mccom/common.h"
#include "mccom/model.h"
#include "mccom/tok.h"

#include <stdbool.h>
#include <stdint.h>

/* Why generation ended. */
#define MC_GEN_STOPS(X)                                                  \
    X(MC_GEN_LENGTH, "length")       /* max_new (or max_total) reached */ \
    X(MC_GEN_NEWLINE, "newline")     /* the line ended (stop_newline) */  \
    X(MC_GEN_STOP, "stop")           /* a stop string occurred */         \
    X(MC_GEN_EOG, "eog")             /* an end-of-generation token */     \
    X(MC_GEN_CTX_FULL, "ctx_full")   /* the KV cache is full */           \
    X(MC_GEN_CANCELED, "canceled")   /* *cancel became non-zero, or on_token asked */

enum mc_gen_stop {
#define MC__GEN_ENUM(name, str) name,
    MC_GEN_STOPS(MC__GEN_ENUM)
#undef MC__GEN_ENUM
};

/* "length", "newline", ... */
const char *mc_gen_stop_name(int stop);

/* The most alternatives recorded per position (OpenAI allows 5, vLLM 20). */
#define MC_GEN_MAX_TOP 20

/* One decided token, as given to on_token and stored in the result. */
typedef struct mc_gen_token {
    int32_t id;
    float logprob;    /* log p(id) under the model's full softmax (temperature 1) */
    int rank;         /* 1 + the number of tokens with a strictly higher logit
                         (vLLM's rank); 0 where nothing predicts the token */
    bool from_draft;  /* an accepted draft token */
    int n_top;        /* alternatives recorded below (params.n_top) */
    int32_t top_id[MC_GEN_MAX_TOP];      /* best first; ties: lower id first */
    float top_logprob[MC_GEN_MAX_TOP];
    /* Text this token adds to the result's text (after healing and cuts;
     * streaming-safe: a partial UTF-8 sequence is held back until complete).
     * Valid only during the on_token call. */
    const char *text;
    size_t text_len;
} mc_gen_token;

typedef struct mc_gen_params {
    int max_new;        /* most tokens the model adds after the accepted draft
                           prefix, correction/bonus included (default 64; 0:
                           verify the draft only) */
    int max_total;      /* most tokens returned in all, draft included (0: no cap) */
    bool stop_newline;  /* end at a '\n' of the text (line completion) */
    int n_lines;        /* with stop_newline: end at the n-th '\n' (0 or 1: the
                           first), so the text holds n lines (statements) */
    const char *const *stop; /* stop strings (not included in the text) */
    int n_stop;
    const char *heal;   /* healing constraint (mc_tok_heal's removed bytes), or NULL */
    size_t heal_len;
    const mc_sampler *sampler; /* NULL or temperature <= 0: greedy. A draft
                                  requires greedy (MC_EINVAL otherwise). */
    int n_top;          /* alternatives to record per token, 0..MC_GEN_MAX_TOP */
    /* Called once per decided token, in order; a non-zero return cancels
     * (stop = MC_GEN_CANCELED; the token is kept). May be NULL. */
    int (*on_token)(void *ud, const mc_gen_token *t);
    void *ud;
    /* Polled between forward passes; non-zero cancels. May be NULL. */
    const volatile int *cancel;
} mc_gen_params;

mc_gen_params mc_gen_params_default(void);

typedef struct mc_gen_result {
    mc_gen_token *toks; /* n tokens after the prompt (malloc'd; text pointers NULL) */
    int n;
    int n_draft;        /* draft tokens offered */
    int n_accepted;     /* leading draft tokens accepted */
    char *text;         /* NUL-terminated, malloc'd */
    size_t text_len;
    int stop;           /* enum mc_gen_stop */
    int n_reused;       /* prompt tokens whose KV came from the cache */
    int n_computed;     /* tokens run through the model (prompt tail + draft + own) */
    int n_passes;       /* forward passes (mc_ctx_decode calls) */
    double ms_prompt;   /* prompt tail + draft pass */
    double ms_gen;      /* the model's own tokens */
} mc_gen_result;

/* Free what a result owns and zero it (a zeroed result is a no-op). */
void mc_gen_result_fini(mc_gen_result *r);

/* Generate after prompt[0..n_prompt) (n_prompt >= 1), verifying draft[0..n_draft)
 * first if n_draft > 0 (draft may be NULL when n_draft is 0). `tok` is needed
 * for text, stop rules and healing; with tok NULL the text is empty and
 * stop_newline, stop strings and heal are refused (MC_EINVAL).
 * On success r is filled (caller calls mc_gen_result_fini). On failure (bad
 * ids, MC_ENOMEM, a decode error) r is zeroed and the error returned; the
 * context may have lost cached tokens but stays usable. Cancellation and a
 * full cache are not failures: they end generation with r->stop set. */
int mc_gen_run(mc_ctx *c, const mc_tok *tok, const int32_t *prompt, int n_prompt,
               const int32_t *draft, int n_draft, const mc_gen_params *p, mc_gen_result *r,
               mc_err *err);

/* Score a sequence: out[i] (i in 1..n-1) gets log p(tokens[i] | tokens[0..i))
 * with its rank and n_top best alternatives; out[0] gets id tokens[0],
 * logprob 0, rank 0, no alternatives (nothing predicts it). Evaluates the
 * whole sequence with logits at every position (the cache is rebuilt from
 * position 0). For vLLM's
 * prompt_logprobs and OpenAI's echo. out has n entries. */
int mc_gen_score(mc_ctx *c, const int32_t *tokens, int n, int n_top, mc_gen_token *out,
                 mc_err *err);

/* Log-softmax helpers over one logit row (exposed for tests and servers). */
/* log p(id) under softmax(logits). */
float mc_gen_logprob(const float *logits, int n_vocab, int32_t id);
/* 1 + the number of ids whose logit is strictly higher than id's (ranks
 * start at 1, as vLLM's); 0 for an id out of range. */
int mc_gen_rank(const float *logits, int n_vocab, int32_t id);
/* The k best ids of a row, best first (ties: lower id), with their logprobs.
 * Returns how many were written (min(k, n_vocab)). */
int mc_gen_top(const float *logits, int n_vocab, int k, int32_t *ids, float *logprobs);

#endif
